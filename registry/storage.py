"""Where registries live on the data root, and architecture names on disk.

Layout (compat §8): `<data>/registry/<instance>/deb/` is a reprepro base
directory (`conf/`, `db/`, `dists/`, `pool/`), `<data>/registry/<instance>/rpm/`
holds `<distribution>/<derivative>/<architecture>/{Packages,repodata}/`, with
source RPMs in the `source` architecture folder.
"""

from pathlib import Path

from django.conf import settings

from registry.constants import NOARCH_ARCHITECTURE, SOURCE_ARCHITECTURE

# Fatbuildr architecture names -> Debian's; anything else keeps its name.
DEB_ARCHITECTURES = {
    SOURCE_ARCHITECTURE: "source",
    NOARCH_ARCHITECTURE: "all",
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "armhf",
    "i686": "i386",
    "ppc64le": "ppc64el",
}
FATBUILDR_ARCHITECTURES = {deb: ours for ours, deb in DEB_ARCHITECTURES.items()}

# The rpm repository folder of source packages.
RPM_SOURCE_FOLDER = "source"


def registries_root() -> Path:
    return Path(settings.FATBUILDR_DATA_DIR) / "registry"


def instance_registry_root(instance_id: str) -> Path:
    """The folder of all the registries of an instance (it may not exist yet)."""
    return registries_root() / instance_id


def format_root(instance_id: str, fmt: str) -> Path:
    return instance_registry_root(instance_id) / fmt


def deb_architecture(architecture: str) -> str:
    """Debian's name of a Fatbuildr architecture (x86_64 -> amd64, noarch -> all)."""
    return DEB_ARCHITECTURES.get(architecture, architecture)


def fatbuildr_architecture(deb_name: str) -> str:
    """Fatbuildr's name of a Debian architecture (amd64 -> x86_64, all -> noarch)."""
    return FATBUILDR_ARCHITECTURES.get(deb_name, deb_name)


def rpm_folder(architecture: str) -> str:
    """The repository folder of an rpm architecture (src -> source)."""
    return RPM_SOURCE_FOLDER if architecture == SOURCE_ARCHITECTURE else architecture

"""deb registries: one reprepro base directory per instance, `deb/{conf,db,dists,pool}`."""

import logging
import subprocess
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from debian.debian_support import Version

from instances.selectors import get_pipelines
from registry import indexing, signing
from registry.constants import NOARCH_ARCHITECTURE, SOURCE_ARCHITECTURE, ArtifactFormat
from registry.models import Artifact, RegistryDerivative
from registry.packages import (
    PackageError,
    PackageInfo,
    changes_files,
    read_deb,
    read_dsc,
)
from registry.repositories.base import Log, PublishError, Repository, Target, write_atomically
from registry.storage import deb_architecture, fatbuildr_architecture

if TYPE_CHECKING:
    from registry.publishing import Section

# ${$architecture} is the index an entry is listed in (architecture-independent packages
# are listed in every one), ${Architecture} the package's own field.
LIST_FORMAT = "${$component}|${package}|${$architecture}|${Architecture}|${version}|${$filekey}\\n"


@dataclass(frozen=True)
class DebListing:
    component: str
    name: str
    architecture: str  # Fatbuildr name
    version: str
    filekey: str


class DebRepository(Repository):
    """A reprepro base directory: `deb/{conf,db,dists,pool}`."""

    format = ArtifactFormat.DEB
    # reprepro's configuration and database.
    private_folders = ("conf", "db")

    @classmethod
    def lock_names(cls, instance_id: str, distribution: str) -> list[str]:
        # reprepro keeps one database for all the distributions of a registry.
        return [
            *super().lock_names(instance_id, distribution),
            f"registry:{instance_id}:{cls.format}",
        ]

    @classmethod
    def read_packages(cls, paths: Sequence[Path]) -> list[PackageInfo]:
        """Every package in *paths* (a .changes stands for the packages it lists)."""
        packages: list[PackageInfo] = []
        for path in paths:
            if path.name.endswith(".changes"):
                packages.extend(cls.read_packages(changes_files(path)))
            elif path.name.endswith(".deb"):
                packages.append(read_deb(path))
            elif path.name.endswith(".dsc"):
                packages.append(read_dsc(path))
            else:
                raise PackageError(f"{path.name}: not a Debian package (.changes, .deb, .dsc)")
        return packages

    def _reprepro(self, *args: str) -> None:
        self.run(
            ["reprepro", "--basedir", str(self.root), *args],
            env=signing.gpg_environment(self.instance.pk),
        )

    def distributions_conf(self) -> str:
        """conf/distributions from the instance pipelines (upstream template)."""
        pipelines = get_pipelines(self.instance)
        architectures = [deb_architecture(a) for a in self.instance.pipeline_architectures()]
        key = signing.signing_key(self.instance.pk)
        stanzas = []
        for distribution in pipelines.distributions:
            if distribution.format != self.format:
                continue
            components = pipelines.dist_derivatives(distribution)
            stanzas.append(
                f"Origin: {self.instance.name}\n"
                f"Label: {self.instance.name}\n"
                f"Codename: {distribution.name}\n"
                f"Architectures: {' '.join([*architectures, 'source'])}\n"
                f"Components: {' '.join(components)}\n"
                f"Description: {self.instance.name} Deb {distribution.name} packages\n"
                f"SignWith: {key}\n"
            )
        return "\n".join(stanzas)

    def configure(self) -> None:
        conf = self.root / "conf" / "distributions"
        wanted = self.distributions_conf()
        if conf.exists() and conf.read_text() == wanted:
            return
        conf.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(conf, wanted)

    def publish(
        self,
        target: Target,
        paths: Sequence[Path],
        packages: list[PackageInfo],
        *,
        section: "AbstractContextManager[Section]",
        log: Log,
        workspace: Path | None,
    ) -> list[PackageInfo]:
        with section as held:
            self.configure()
            existing = indexing.find_derivative(
                target.instance, target.format, target.distribution, target.derivative
            )
            # The index is what reprepro holds (same lock): it tells which packages reprepro
            # will keep because the registry has a newer version.
            kept = {
                (name, architecture): version
                for name, architecture, version in Artifact.objects.filter(
                    derivative=existing, name__in={p.name for p in packages}
                ).values_list("name", "architecture", "version")
            }
            self.include(target, paths, packages)
            published = []
            for package in packages:
                current = kept.get((package.name, package.architecture))
                if current is not None and Version(current) > Version(package.version):
                    log(
                        f"{package.name} {current} stays in {target}: reprepro does not replace "
                        f"it with older version {package.version}",
                        logging.WARNING,
                    )
                else:
                    published.append(package)
            with held.index():
                derivative = indexing.derivative_row(
                    target.instance, target.format, target.distribution, target.derivative
                )
                indexing.record_packages(derivative, published)
        return published

    def include(
        self, target: Target, paths: Sequence[Path], packages: Sequence[PackageInfo]
    ) -> None:
        signing.preset_agent_passphrase(self.instance.pk)
        common = ["--component", target.derivative]
        for path in (p for p in paths if p.name.endswith(".changes")):
            # Builds name their own distribution; imports may not: the target decides.
            self._reprepro(
                *common,
                "--ignore=wrongdistribution",
                "--ignore=missingfile",
                "include",
                target.distribution,
                str(path),
            )
        for path in (p for p in paths if p.name.endswith(".dsc")):
            self._reprepro(*common, "includedsc", target.distribution, str(path))
        # reprepro refuses a .deb without section or priority (only recommended by
        # Debian policy): those get Debian's defaults, the others keep their own.
        debs = {p.path: p for p in packages}
        groups: dict[tuple[str, ...], list[str]] = {}
        for path in (p for p in paths if p.name.endswith(".deb")):
            defaults: tuple[str, ...] = ()
            if not debs[path].section:
                defaults += ("--section", "misc")
            if not debs[path].priority:
                defaults += ("--priority", "optional")
            groups.setdefault(defaults, []).append(str(path))
        for defaults, files in groups.items():
            self._reprepro(*common, *defaults, "includedeb", target.distribution, *files)

    def delete_files(
        self, target: Target, derivative: RegistryDerivative, removed: list[tuple[str, str]]
    ) -> None:
        self.configure()
        self.remove(target, removed)

    def remove(self, target: Target, keys: Sequence[tuple[str, str]]) -> None:
        """Remove (name, architecture) packages: a source comes with all its binaries."""
        signing.preset_agent_passphrase(self.instance.pk)
        common = ["--component", target.derivative]
        names = sorted({name for name, _ in keys})
        if any(architecture == SOURCE_ARCHITECTURE for _, architecture in keys):
            # Everything named here was built from that source (`removesrc` cannot be
            # limited to one component).
            self._reprepro(*common, "remove", target.distribution, *names)
            return
        for name, architecture in keys:
            restriction = ["--type", "deb"]
            # Architecture-independent packages are in every architecture's index.
            if architecture != NOARCH_ARCHITECTURE:
                restriction += ["--architecture", deb_architecture(architecture)]
            self._reprepro(*common, *restriction, "remove", target.distribution, name)

    def listing(self, distribution: str) -> list[DebListing]:
        """Every package reprepro holds for a distribution, noarch ones once."""
        query = ["--list-format", LIST_FORMAT, "list", distribution]
        output = _capture(["reprepro", "--basedir", str(self.root), *query])
        rows: dict[tuple[str, str, str], DebListing] = {}
        for line in output.splitlines():
            component, name, architecture, own, version, filekey = line.split("|", 5)
            if architecture != "source" and own == "all":
                architecture = own
            item = DebListing(
                component, name, fatbuildr_architecture(architecture), version, filekey
            )
            rows[(component, name, item.architecture)] = item
        return list(rows.values())

    def distributions_on_disk(self) -> list[str]:
        dists = self.root / "dists"
        return sorted(p.name for p in dists.iterdir() if p.is_dir()) if dists.is_dir() else []

    def read(self, item: DebListing) -> PackageInfo:
        path = self.root / item.filekey
        return read_dsc(path) if item.architecture == SOURCE_ARCHITECTURE else read_deb(path)

    def read_distribution(self, distribution: str, *, log: Log) -> dict[str, list[PackageInfo]]:
        found: dict[str, list[PackageInfo]] = {}
        if (self.root / "db").is_dir() and distribution in self.distributions_on_disk():
            for item in self.listing(distribution):
                try:
                    found.setdefault(item.component, []).append(self.read(item))
                except PackageError as error:
                    log(f"Skipping {item.filekey}: {error}", logging.WARNING)
        return found


def _capture(command: list[str]) -> str:
    """A read-only tool query (reprepro list): its output, PublishError when it fails."""
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PublishError(f"{command[0]} failed: {error}") from error
    if completed.returncode != 0:
        raise PublishError(f"{command[0]} failed: {completed.stderr.strip()[-500:]}")
    return completed.stdout

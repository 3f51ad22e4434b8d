"""Build roots: one Debian tree per (instance, format, environment, architecture).

`mmdebstrap` makes each root from the instance's Debian mirror as a tarball,
kept under `envs/` (the image a root can be made again from), extracted next
to it: that tree is the read-only lower layer of every build's overlay
(builds/sandbox.py). An update runs apt inside the tree, then writes the
tarball again.

deb roots hold what dpkg-buildpackage and lintian need; the build
dependencies of each artifact are installed in its own overlay. There are no
EL build roots reachable from these machines: rpm roots are Debian trees with
Debian's rpm toolchain (rpmbuild, rpmlint).

Creation and update take the environment lock exclusively (builds take it
shared), so an update never changes a root under a running build.
"""

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from builds.sandbox import bwrap_command
from instances.models import Instance
from instances.selectors import get_pipelines
from registry.storage import DEB_ARCHITECTURES, deb_architecture
from tasks.advisory import session_locks
from tasks.runner import command_environment

Run = Callable[..., None]
Log = Callable[[str], None]

APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
QEMU_NAMES = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64", "i386": "i386"}


class BuildEnvironmentError(Exception):
    """A build environment cannot be made, found or used (message for the journal)."""


@dataclass(frozen=True)
class BuildEnvironment:
    """Where the root of (instance, format, environment, architecture) lives."""

    instance_id: str
    format: str
    environment: str
    architecture: str

    @property
    def name(self) -> str:
        return f"{self.format}-{self.environment}-{self.architecture}"

    @property
    def folder(self) -> Path:
        return Path(settings.FATBUILDR_ENVS_DIR) / self.instance_id

    @property
    def root(self) -> Path:
        return self.folder / self.name

    @property
    def tarball(self) -> Path:
        return self.folder / f"{self.name}.tar"

    def exists(self) -> bool:
        return (self.root / "usr").is_dir() and self.tarball.is_file()

    def __str__(self) -> str:
        return f"build environment {self.name}"


def environment_of(instance: Instance, fmt: str, distribution: str) -> str:
    """The environment name the pipelines give a distribution."""
    dist = get_pipelines(instance).distribution(distribution)
    if dist is None or dist.format != fmt or not dist.environment:
        raise BuildEnvironmentError(f"distribution {distribution} has no {fmt} build environment")
    return dist.environment


def check_environment_name(environment: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", environment):
        raise BuildEnvironmentError(f"invalid environment name {environment!r}")


def root_recipe(env: BuildEnvironment) -> tuple[str, tuple[str, ...]]:
    """The Debian suite of a root and its packages on top of mmdebstrap's `buildd` variant
    (build-essential): the format's builder knows them."""
    # Imported here: the builders (builds/formats/) import this module.
    from builds.formats import BUILDERS

    kind = BUILDERS.get(env.format)
    if kind is None:
        raise BuildEnvironmentError(f"format {env.format} has no build environments")
    return kind.root_suite(env), kind.root_packages


def host_suite() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.partition("=")[2].strip().strip('"')
    raise BuildEnvironmentError("cannot tell this machine's Debian suite: set FATBUILDR_RPM_SUITE")


def mirror() -> str:
    """The Debian mirror of the roots: the setting, else the machine's own apt source."""
    if settings.FATBUILDR_MIRROR:
        return settings.FATBUILDR_MIRROR
    for uri in _apt_source_uris():
        if "security" not in uri and uri.startswith(("http://", "https://")):
            return uri
    raise BuildEnvironmentError("no Debian mirror found in the apt sources: set FATBUILDR_MIRROR")


def _apt_source_uris() -> list[str]:
    files: list[Path] = []
    for source in APT_SOURCES:
        if source.is_dir():
            files += sorted(source.glob("*.list")) + sorted(source.glob("*.sources"))
        elif source.is_file():
            files.append(source)
    uris = []
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            words = line.split("#", 1)[0].split()
            if words[:1] == ["deb"]:
                uris += [word for word in words[1:] if "://" in word][:1]
            elif words[:1] == ["URIs:"]:
                uris += words[1:]
    return uris


def check_architecture(architecture: str) -> None:
    """Refuse, with the reason, an architecture this host cannot run."""
    host = settings.FATBUILDR_HOST_ARCHITECTURE
    if architecture == host or {architecture, host} <= {"x86_64", "i386"}:
        return
    if architecture not in DEB_ARCHITECTURES:
        raise BuildEnvironmentError(f"unsupported architecture {architecture}")
    qemu = QEMU_NAMES.get(architecture, architecture)
    binfmt = Path(f"/proc/sys/fs/binfmt_misc/qemu-{qemu}")
    if shutil.which(f"qemu-{qemu}-static") is None or not binfmt.is_file():
        raise BuildEnvironmentError(
            f"building for {architecture} on this {host} host needs qemu-user-static and a "
            f"binfmt_misc registration for qemu-{qemu} (missing here)"
        )
    if "enabled" not in binfmt.read_text():
        raise BuildEnvironmentError(f"binfmt_misc registration qemu-{qemu} is disabled")


def create(env: BuildEnvironment, *, run: Run, log: Log, replace: bool = False) -> None:
    """Make the root with mmdebstrap, then extract it next to its tarball."""
    check_environment_name(env.environment)
    check_architecture(env.architecture)
    if env.exists() and not replace:
        raise BuildEnvironmentError(f"{env} already exists")
    env.folder.mkdir(parents=True, exist_ok=True)
    os.chmod(env.folder, 0o755)
    staging = env.folder / f".{env.name}.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        (suite, packages), source = root_recipe(env), mirror()
        log(f"Creating {env} from {source} {suite} ({deb_architecture(env.architecture)})")
        tarball = staging / "root.tar"
        run(
            [
                "mmdebstrap",
                "--mode=root",
                "--variant=buildd",
                f"--architectures={deb_architecture(env.architecture)}",
                f"--include={','.join(packages)}",
                suite,
                str(tarball),
                source,
            ],
            env=command_environment({"TMPDIR": str(staging)}),
        )
        root = staging / "root"
        root.mkdir()
        run(["tar", "--extract", "--numeric-owner", "-C", str(root), "-f", str(tarball)])
        _swap_in(env, root, tarball)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"{env.format} {env} is ready")


def update(env: BuildEnvironment, *, run: Run, log: Log) -> None:
    """Upgrade the packages of the root in place, then write its tarball again."""
    if not env.exists():
        raise BuildEnvironmentError(f"{env} does not exist")
    log(f"Updating {env}")
    apt = (
        "apt-get update && apt-get dist-upgrade -y -o Dpkg::Options::=--force-confold "
        "&& apt-get clean"
    )
    # The root itself, writable: no build runs on it meanwhile (the environment lock).
    run(
        bwrap_command(
            env.root, ["sh", "-c", apt], privileged=True, env={"DEBIAN_FRONTEND": "noninteractive"}
        )
    )
    staging = env.folder / f".{env.name}.tar.new"
    run(["tar", "--create", "--numeric-owner", "-C", str(env.root), "-f", str(staging), "."])
    os.replace(staging, env.tarball)
    log(f"{env} is up to date")


def _swap_in(env: BuildEnvironment, root: Path, tarball: Path) -> None:
    """Put a new root in place; an old one (replace) goes away after the swap."""
    old = env.folder / f".{env.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if env.root.exists():
        env.root.rename(old)
    root.rename(env.root)
    os.replace(tarball, env.tarball)
    shutil.rmtree(old, ignore_errors=True)


def ensure(env: BuildEnvironment, *, run: Run, log: Log) -> None:
    """Create the root of a build if it is missing; two builds wanting it make it once."""
    if env.exists():
        return
    # A session lock, not a transaction: mmdebstrap runs for minutes, and no transaction
    # may stay open across a command (tasks/advisory.py).
    with session_locks([f"environment-creation:{env.instance_id}:{env.name}"]):
        if env.exists():
            return
        log(f"{env} is missing: creating it first")
        create(env, run=run, log=log, replace=True)

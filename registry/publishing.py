"""The publish service: package files into signed registries, and the index in step.

Every change to a registry (publish, delete, reindex) runs in one critical
section per (instance, format, distribution): it holds a PostgreSQL advisory
lock (a session lock: no transaction stays open while the tools run, see
tasks/advisory.py), changes the files with the real tools (reprepro; rpmsign
+ createrepo_c + gpg), then writes the index rows and the section's revision
in one short transaction. What the index needs from the packages is read
before the lock, so the section holds the lock only for the tools and a few
queries.

A crash between the file changes and the commit leaves the files ahead of the
index. Each section writes its token in a marker file before the files
change, and commits the same token in a RegistryRevision row with the index:
a section that finds a marker token that was never committed rebuilds that
distribution's index from disk first. `manage.py registry reindex` rebuilds
everything by hand.
"""

import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from debian.debian_support import Version
from django.db import transaction

from instances.models import Instance
from instances.selectors import get_pipelines
from registry import indexing, signing
from registry.constants import NOARCH_ARCHITECTURE, SOURCE_ARCHITECTURE, ArtifactFormat
from registry.models import Artifact, RegistryDerivative, RegistryRevision
from registry.packages import (
    PackageError,
    PackageInfo,
    read_deb,
    read_dsc,
    read_packages,
    read_rpms,
)
from registry.storage import (
    deb_architecture,
    fatbuildr_architecture,
    format_root,
    rpm_folder,
)
from tasks.advisory import session_locks
from tasks.engine import Lock, submit
from tasks.models import Task, TaskName

Log = Callable[..., None]
Run = Callable[..., None]

PUBLISHED_FORMATS = (ArtifactFormat.DEB, ArtifactFormat.RPM)
READ_BATCH = 500


class PublishError(Exception):
    """A publication, deletion or reindex was refused or failed; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where packages go: a derivative of a distribution of a format registry."""

    instance: Instance
    format: str
    distribution: str
    derivative: str

    def __str__(self) -> str:
        return f"{self.format} registry {self.distribution}/{self.derivative}"


def check_target(target: Target) -> None:
    """Refuse a target the instance pipelines do not declare."""
    if target.format not in PUBLISHED_FORMATS:
        raise PublishError(f"Format {target.format} has no registry to publish into")
    pipelines = get_pipelines(target.instance)
    if target.format not in pipelines.formats:
        raise PublishError(f"Format {target.format} not supported by instance pipelines")
    distribution = pipelines.distribution(target.distribution)
    if distribution is None or distribution.format != target.format:
        raise PublishError(
            f"Distribution {target.distribution} not found in {target.format} pipelines"
        )
    if target.derivative not in pipelines.dist_derivatives(distribution):
        raise PublishError(
            f"Derivative {target.derivative} not found for distribution {target.distribution}"
        )


# --- The critical section ------------------------------------------------------------------


def lock_names(instance_id: str, fmt: str, distribution: str) -> list[str]:
    names = [f"registry:{instance_id}:{fmt}:{distribution}"]
    if fmt == ArtifactFormat.DEB:
        # reprepro keeps one database for all the distributions of a registry.
        names.append(f"registry:{instance_id}:{fmt}")
    return names


@contextmanager
def registry_snapshot_lock(instance: Instance, fmt: str, distribution: str) -> Iterator[None]:
    """Hold off publications into a distribution while its files are read (shared: readers
    do not wait for each other), e.g. to copy a consistent set of its indexes."""
    with session_locks(lock_names(instance.pk, fmt, distribution), shared=True):
        yield


def _marker(instance_id: str, fmt: str, distribution: str) -> Path:
    return format_root(instance_id, fmt) / f".changing-{distribution}"


def _died_before_commit(instance: Instance, fmt: str, distribution: str, marker: Path) -> bool:
    """Whether the last change that started on this distribution did not commit.

    The marker holds the token of the last change that started; the revision
    row the token of the last one that committed. The marker stays after a
    commit: removing it after the commit could race with the next change.
    """
    try:
        token = marker.read_text().strip()
    except FileNotFoundError:
        return False
    committed = (
        RegistryRevision.objects.filter(instance=instance, format=fmt, distribution=distribution)
        .values_list("token", flat=True)
        .first()
    )
    return str(committed) != token


@dataclass
class Section:
    """A critical section under way: its changes commit through `index()`."""

    instance: Instance
    format: str
    distribution: str
    token: str
    committed: bool = False

    @contextmanager
    def index(self) -> Iterator[None]:
        """The one transaction writing the index after the files changed; it commits the
        section's token with it, which tells later sections the index caught up."""
        with transaction.atomic():
            yield
            RegistryRevision.objects.update_or_create(
                instance=self.instance,
                format=self.format,
                distribution=self.distribution,
                defaults={"token": self.token},
            )
        self.committed = True


@contextmanager
def critical_section(
    instance: Instance, fmt: str, distribution: str, *, log: Log, run: Run
) -> Iterator[Section]:
    """Hold the registry lock of a distribution; the body changes the files, then writes the
    index in `section.index()`.

    Repairs the index first when an earlier section died between its file
    changes and its commit (or failed before it).
    """
    with session_locks(lock_names(instance.pk, fmt, distribution)):
        marker = _marker(instance.pk, fmt, distribution)
        if _died_before_commit(instance, fmt, distribution, marker):
            log(f"An earlier change of {fmt}/{distribution} did not finish: reindexing it first")
            _reindex_distribution(instance, fmt, distribution, log=log, run=run)
        token = str(uuid.uuid4())
        marker.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(marker, token)
        section = Section(instance, fmt, distribution, token)
        yield section
        if not section.committed:
            with section.index():
                pass


# --- deb -----------------------------------------------------------------------------------

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


class Repository:
    """The registry of one format of an instance, changed through the tools with *run*."""

    format: str

    def __init__(self, instance: Instance, *, run: Run) -> None:
        self.instance = instance
        self.root = format_root(instance.pk, self.format)
        self.run = run

    def distributions_on_disk(self) -> list[str]:
        raise NotImplementedError


class DebRepository(Repository):
    """A reprepro base directory: `deb/{conf,db,dists,pool}`."""

    format = ArtifactFormat.DEB

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
            if distribution.format != ArtifactFormat.DEB:
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
        _write_atomically(conf, wanted)

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


# --- rpm -----------------------------------------------------------------------------------


def rpm_file_name(name: str, version: str, architecture: str) -> str:
    """The canonical file name of an rpm in a repository (version is version-release)."""
    suffix = "src" if architecture == SOURCE_ARCHITECTURE else architecture
    return f"{name}-{version}.{suffix}.rpm"


def _rpm_key_of(file_name: str) -> tuple[str, str] | None:
    """(name, architecture) of name-version-release.arch.rpm (version and release hold no
    dash), src for source packages."""
    stem, _, architecture = file_name.removesuffix(".rpm").rpartition(".")
    parts = stem.rsplit("-", 2)
    if len(parts) != 3:
        return None
    return parts[0], SOURCE_ARCHITECTURE if architecture in ("src", "nosrc") else architecture


class RpmRepository(Repository):
    """`rpm/<distribution>/<derivative>/<arch>/{Packages,repodata}` with createrepo_c."""

    format = ArtifactFormat.RPM

    def folder(self, target: Target, architecture: str) -> Path:
        return self.root / target.distribution / target.derivative / rpm_folder(architecture)

    def folders_of(self, target: Target, architecture: str) -> list[Path]:
        """Where a package goes: noarch ones into every architecture's repository."""
        if architecture == NOARCH_ARCHITECTURE:
            return [self.folder(target, a) for a in self.instance.pipeline_architectures()]
        return [self.folder(target, architecture)]

    def sign_packages(self, packages: Sequence[PackageInfo], staging: Path) -> dict[Path, Path]:
        """Signed copies of the packages, by original path; the originals stay untouched."""
        copies = {}
        for package in packages:
            copy = staging / rpm_file_name(package.name, package.version, package.architecture)
            shutil.copyfile(package.path, copy)
            copies[package.path] = copy
        signing.ensure_agent(self.instance.pk)
        self.run(signing.rpmsign_command(self.instance.pk, list(copies.values())))
        return copies

    def remove_packages(self, folders: Iterable[Path], keys: set[tuple[str, str]]) -> set[Path]:
        """Delete the rpms of these (name, architecture) packages; the folders that changed."""
        changed = set()
        for folder in folders:
            packages = folder / "Packages"
            if not packages.is_dir():
                continue
            with os.scandir(packages) as entries:
                for entry in entries:
                    if entry.name.endswith(".rpm") and _rpm_key_of(entry.name) in keys:
                        os.unlink(entry.path)
                        changed.add(folder)
        return changed

    def add(self, folder: Path, signed: Path) -> None:
        packages = folder / "Packages"
        packages.mkdir(parents=True, exist_ok=True)
        temporary = packages / f".{signed.name}.tmp"
        shutil.copyfile(signed, temporary)
        os.replace(temporary, packages / signed.name)

    def refresh(self, folders: Iterable[Path]) -> None:
        """Regenerate and sign the metadata of the repositories that changed."""
        signing.ensure_agent(self.instance.pk)
        for folder in sorted(set(folders)):
            (folder / "Packages").mkdir(parents=True, exist_ok=True)
            self.run(["createrepo_c", "--update", "--no-database", "--quiet", str(folder)])
            repomd = folder / "repodata" / "repomd.xml"
            self.run(
                signing.detach_sign_command(
                    self.instance.pk, repomd, repomd.with_name("repomd.xml.asc")
                )
            )

    def derivative_folders(self, target: Target) -> list[Path]:
        base = self.root / target.distribution / target.derivative
        return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def scan(self, distribution: str) -> dict[str, list[Path]]:
        """Every rpm of a distribution on disk, by derivative."""
        base = self.root / distribution
        found: dict[str, list[Path]] = {}
        if not base.is_dir():
            return found
        for derivative in sorted(p for p in base.iterdir() if p.is_dir()):
            files = sorted(derivative.glob("*/Packages/*.rpm"))
            if files:
                found[derivative.name] = files
        return found

    def distributions_on_disk(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())


# --- Operations ----------------------------------------------------------------------------


def publish(
    target: Target, paths: Sequence[Path], *, run: Run, log: Log, workspace: Path | None = None
) -> list[PackageInfo]:
    """Publish package files into a registry and the index; the packages published.

    deb accepts .changes (with the files it lists beside it), .deb and .dsc
    (with its tarballs beside it); rpm accepts .rpm and .src.rpm. One version
    of a package per distribution and derivative: a publication replaces it.
    """
    check_target(target)
    paths = [Path(p) for p in paths]
    if not paths:
        raise PublishError("No package file to publish")
    try:
        packages = read_packages(target.format, paths)
    except PackageError as error:
        raise PublishError(str(error)) from error
    _check_architectures(target, packages)
    log(
        f"Publishing {len(packages)} package(s) in {target}: "
        + ", ".join(f"{p.name}_{p.version}_{p.architecture}" for p in packages)
    )
    section = critical_section(
        target.instance, target.format, target.distribution, log=log, run=run
    )
    if target.format == ArtifactFormat.DEB:
        with section as held:
            packages = _publish_deb(target, paths, packages, held, run=run, log=log)
    else:
        repository = RpmRepository(target.instance, run=run)
        packages = indexing.unique_packages(packages)
        with tempfile.TemporaryDirectory(prefix="publish-", dir=workspace) as staging:
            # Signing touches only copies in the staging folder: outside the lock.
            signed = repository.sign_packages(packages, Path(staging))
            with section as held:
                _publish_rpm(target, repository, packages, signed, held)
    log(f"Published in {target}")
    return packages


def _check_architectures(target: Target, packages: Sequence[PackageInfo]) -> None:
    allowed = {SOURCE_ARCHITECTURE, NOARCH_ARCHITECTURE, *target.instance.pipeline_architectures()}
    for package in packages:
        if package.architecture not in allowed:
            raise PublishError(
                f"{package.path.name}: architecture {package.architecture} is not one of the "
                f"instance pipelines ({', '.join(sorted(allowed))})"
            )


def _publish_deb(
    target: Target,
    paths: Sequence[Path],
    packages: list[PackageInfo],
    section: Section,
    *,
    run: Run,
    log: Log,
) -> list[PackageInfo]:
    repository = DebRepository(target.instance, run=run)
    repository.configure()
    existing = indexing.find_derivative(
        target.instance, target.format, target.distribution, target.derivative
    )
    # The index is what reprepro holds (same lock): it tells which packages reprepro
    # will keep because the registry has a newer version.
    held = {
        (name, architecture): version
        for name, architecture, version in Artifact.objects.filter(
            derivative=existing, name__in={p.name for p in packages}
        ).values_list("name", "architecture", "version")
    }
    repository.include(target, paths, packages)
    published = []
    for package in packages:
        current = held.get((package.name, package.architecture))
        if current is not None and Version(current) > Version(package.version):
            log(
                f"{package.name} {current} stays in {target}: reprepro does not replace it "
                f"with older version {package.version}",
                logging.WARNING,
            )
        else:
            published.append(package)
    with section.index():
        derivative = indexing.derivative_row(
            target.instance, target.format, target.distribution, target.derivative
        )
        indexing.record_packages(derivative, published)
    return published


def _publish_rpm(
    target: Target,
    repository: RpmRepository,
    packages: list[PackageInfo],
    signed: dict[Path, Path],
    section: Section,
) -> None:
    existing = indexing.find_derivative(
        target.instance, target.format, target.distribution, target.derivative
    )
    # A package replaces its other version; a source also replaces what was built
    # from its other versions (binaries it no longer builds go).
    replaced = {(p.name, p.architecture) for p in packages}
    if existing is not None:
        for source in (p for p in packages if p.is_source):
            replaced.update(
                indexing.artifacts_of_source(existing, source.name, other_than=source.version)
            )
    touched = repository.remove_packages(
        [repository.folder(target, SOURCE_ARCHITECTURE), *repository.derivative_folders(target)],
        replaced,
    )
    for package in packages:
        for folder in repository.folders_of(target, package.architecture):
            repository.add(folder, signed[package.path])
            touched.add(folder)
    repository.refresh(touched)
    with section.index():
        derivative = indexing.derivative_row(
            target.instance, target.format, target.distribution, target.derivative
        )
        indexing.record_packages(derivative, packages)
        indexing.forget_artifacts(
            derivative, replaced - {(p.name, p.architecture) for p in packages}
        )


def delete(
    target: Target, name: str, architecture: str, version: str, *, run: Run, log: Log
) -> list[tuple[str, str]]:
    """Remove one artifact version (a source with its binaries); what was removed."""
    with critical_section(
        target.instance, target.format, target.distribution, log=log, run=run
    ) as section:
        derivative = indexing.find_derivative(
            target.instance, target.format, target.distribution, target.derivative
        )
        artifact = (
            Artifact.objects.filter(derivative=derivative, name=name, architecture=architecture)
            .only("version")
            .first()
            if derivative
            else None
        )
        if derivative is None or artifact is None or artifact.version != version:
            raise PublishError(
                f"Artifact {name} version {version} with architecture {architecture} is not in "
                f"{target}"
            )
        if architecture == SOURCE_ARCHITECTURE:
            removed = indexing.artifacts_of_source(derivative, name)
        else:
            removed = [(name, architecture)]
        log(f"Removing {', '.join(f'{n} ({a})' for n, a in removed)} from {target}")
        if target.format == ArtifactFormat.DEB:
            repository = DebRepository(target.instance, run=run)
            repository.configure()
            repository.remove(target, removed)
        else:
            _delete_rpm(target, derivative, removed, run=run, log=log)
        with section.index():
            indexing.forget_artifacts(derivative, removed)
    return removed


def _delete_rpm(
    target: Target,
    derivative: RegistryDerivative,
    removed: list[tuple[str, str]],
    *,
    run: Run,
    log: Log,
) -> None:
    repository = RpmRepository(target.instance, run=run)
    wanted = set(removed)
    rows = Artifact.objects.filter(derivative=derivative, name__in={n for n, _ in wanted})
    touched = set()
    for name, architecture, version in rows.values_list("name", "architecture", "version"):
        if (name, architecture) not in wanted:
            continue
        file_name = rpm_file_name(name, version, architecture)
        for folder in repository.folders_of(target, architecture):
            path = folder / "Packages" / file_name
            if path.exists():
                path.unlink()
                touched.add(folder)
    repository.refresh(touched)


# --- Reindex -------------------------------------------------------------------------------


def reindex(instance: Instance, *, run: Run, log: Log) -> dict[str, int]:
    """Rebuild the whole index of an instance from its registries on disk; counts by format."""
    counts = {}
    for fmt in PUBLISHED_FORMATS:
        repository = _repository(instance, fmt, run=run)
        counts[str(fmt)] = 0
        on_disk = set(repository.distributions_on_disk())
        indexed = set(
            instance.registry_formats.filter(name=fmt).values_list("distributions__name", flat=True)
        ) - {None}
        for distribution in sorted(on_disk | indexed):
            with critical_section(instance, fmt, distribution, log=log, run=run) as section:
                counts[str(fmt)] += _reindex_distribution(
                    instance, fmt, distribution, log=log, run=run, section=section
                )
    return counts


def _repository(instance: Instance, fmt: str, *, run: Run) -> Repository:
    kind = DebRepository if fmt == ArtifactFormat.DEB else RpmRepository
    return kind(instance, run=run)


def _reindex_distribution(
    instance: Instance,
    fmt: str,
    distribution: str,
    *,
    log: Log,
    run: Run,
    section: Section | None = None,
) -> int:
    """Replace the index of one distribution with what is on disk (lock held); the index is
    written in one transaction, the section's own when given."""
    found: dict[str, list[PackageInfo]] = {}
    if fmt == ArtifactFormat.DEB:
        repository = DebRepository(instance, run=run)
        if (repository.root / "db").is_dir() and distribution in repository.distributions_on_disk():
            for item in repository.listing(distribution):
                try:
                    found.setdefault(item.component, []).append(repository.read(item))
                except PackageError as error:
                    log(f"Skipping {item.filekey}: {error}", logging.WARNING)
    else:
        rpm_repository = RpmRepository(instance, run=run)
        for derivative, files in rpm_repository.scan(distribution).items():
            for start in range(0, len(files), READ_BATCH):
                found.setdefault(derivative, []).extend(
                    _read_rpms_skipping_bad(files[start : start + READ_BATCH], log)
                )
    total = 0
    with section.index() if section else transaction.atomic():
        indexing.clear_distribution(instance, fmt, distribution)
        for derivative, packages in found.items():
            row = indexing.derivative_row(instance, fmt, distribution, derivative)
            indexing.record_packages(row, packages)
            total += len(indexing.unique_packages(packages))
    log(f"Indexed {total} artifact(s) of {fmt}/{distribution}")
    return total


# --- Helpers -------------------------------------------------------------------------------


def _read_rpms_skipping_bad(files: list[Path], log: Log) -> list[PackageInfo]:
    """A batch in one rpm query; when one file is unreadable, the others one by one, so
    that it alone is left out of the index."""
    try:
        return read_rpms(files)
    except PackageError:
        packages = []
        for path in files:
            try:
                packages.extend(read_rpms([path]))
            except PackageError as error:
                log(f"Skipping {path.name}: {error}", logging.WARNING)
        return packages


def _capture(command: list[str]) -> str:
    """A read-only tool query (reprepro list): its output, PublishError when it fails."""
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PublishError(f"{command[0]} failed: {error}") from error
    if completed.returncode != 0:
        raise PublishError(f"{command[0]} failed: {completed.stderr.strip()[-500:]}")
    return completed.stdout


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


# --- Deletion tasks ------------------------------------------------------------------------


def artifact_lock(target: Target, source_name: str) -> Lock:
    """The task lock of an artifact: its builds and deletions run one at a time, in order."""
    return Lock(
        f"artifact:{target.instance.pk}:{target.format}:{target.distribution}:"
        f"{target.derivative}:{source_name}"
    )


def queue_deletion(target: Target, artifact: Artifact, *, user: str) -> Task:
    """Queue the `artifact deletion` task of one indexed artifact version."""
    source_name = artifact.name if artifact.is_source else artifact.source_name or artifact.name
    return submit(
        target.instance,
        TaskName.ARTIFACT_DELETION,
        user=user,
        locks=[artifact_lock(target, source_name)],
        format=target.format,
        distribution=target.distribution,
        derivative=target.derivative,
        artifact=artifact.name,
        artifact_architecture=artifact.architecture,
        artifact_version=artifact.version,
        artifact_size=artifact.size,
    )

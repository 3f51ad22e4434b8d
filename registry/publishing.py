"""The publish service: package files into signed registries, and the index in step.

Every change to a registry (publish, delete, reindex) runs in one critical
section per (instance, format, distribution): it holds a PostgreSQL advisory
lock (a session lock: no transaction stays open while the tools run, see
tasks/advisory.py), changes the files with the real tools through the
format's `Repository` (registry/repositories/: reprepro for deb; rpmsign +
createrepo_c + gpg for rpm), then writes the index rows and the section's revision
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

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from instances.models import Instance
from instances.selectors import get_pipelines
from registry import indexing
from registry.constants import NOARCH_ARCHITECTURE, SOURCE_ARCHITECTURE
from registry.models import Artifact, RegistryRevision
from registry.packages import PackageError, PackageInfo
from registry.repositories import REPOSITORIES, repository_class
from registry.repositories.base import Log, Run, write_atomically
from registry.repositories.base import PublishError as PublishError  # the service's error
from registry.repositories.base import Target as Target  # and its argument
from registry.storage import format_root
from tasks.advisory import session_locks
from tasks.engine import Lock, submit
from tasks.models import Task, TaskName


def check_target(target: Target) -> None:
    """Refuse a target the instance pipelines do not declare."""
    repository_class(target.format)  # refuses a format without a registry
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
    """The advisory locks of a change to a distribution (the format may add its own)."""
    return repository_class(fmt).lock_names(instance_id, distribution)


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
        write_atomically(marker, token)
        section = Section(instance, fmt, distribution, token)
        yield section
        if not section.committed:
            with section.index():
                pass


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
    kind = repository_class(target.format)
    paths = [Path(p) for p in paths]
    if not paths:
        raise PublishError("No package file to publish")
    try:
        packages = kind.read_packages(paths)
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
    packages = kind(target.instance, run=run).publish(
        target, paths, packages, section=section, log=log, workspace=workspace
    )
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
        repository = repository_class(target.format)(target.instance, run=run)
        repository.delete_files(target, derivative, removed)
        with section.index():
            indexing.forget_artifacts(derivative, removed)
    return removed


# --- Reindex -------------------------------------------------------------------------------


def reindex(instance: Instance, *, run: Run, log: Log) -> dict[str, int]:
    """Rebuild the whole index of an instance from its registries on disk; counts by format."""
    counts = {}
    for fmt, kind in REPOSITORIES.items():
        repository = kind(instance, run=run)
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
    repository = repository_class(fmt)(instance, run=run)
    found = repository.read_distribution(distribution, log=log)
    total = 0
    with section.index() if section else transaction.atomic():
        indexing.clear_distribution(instance, fmt, distribution)
        for derivative, packages in found.items():
            row = indexing.derivative_row(instance, fmt, distribution, derivative)
            indexing.record_packages(row, packages)
            total += len(indexing.unique_packages(packages))
    log(f"Indexed {total} artifact(s) of {fmt}/{distribution}")
    return total


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

"""Finished-task history: its listing and its purge (compat §6.4).

Upstream keeps one purge policy for every instance (`[tasks] purge`, default
`last:100`) and applies it to the archived tasks walked newest first; a purged
task loses its whole workspace. Here the history is the finished Task rows, so
a purge removes the workspace and then the row. Pending and running tasks are
never considered.
"""

import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from instances.models import Instance
from tasks.models import Task, TaskName, TaskState, instance_workspaces_root

logger = logging.getLogger(__name__)

ACCEPTED_FORMS = (
    "older:<n><h|d|m|y>, last:<n>, each:<n> or size:<number><MB|GB|TB|Mb|Gb|Tb>"
    " (e.g. older:30d, last:100, each:5, size:1.5GB)"
)

# Seconds per unit of the older policy; upstream counts a month as 30 days and a year as 365.
_AGE_UNITS = {"h": 3600, "d": 86400, "m": 30 * 86400, "y": 365 * 86400}
# Bytes per unit of the size policy: capitals are binary bytes, lower-case b are decimal bits.
_SIZE_UNITS = {
    "MB": 1024**2,
    "GB": 1024**3,
    "TB": 1024**4,
    "Mb": 10**6 / 8,
    "Gb": 10**9 / 8,
    "Tb": 10**12 / 8,
}
_AGE_RE = re.compile(r"(\d+)([hdmy])")
_COUNT_RE = re.compile(r"\d+")
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)(MB|GB|TB|Mb|Gb|Tb)")

# Columns the purge reads: selection (name and build fields for each:n) and removal (place).
_PURGE_COLUMNS = (
    "id",
    "name",
    "submission",
    "place",
    "format",
    "distribution",
    "derivative",
    "artifact",
)


class PurgeKind(StrEnum):
    """The four upstream purge policies."""

    OLDER = "older"
    LAST = "last"
    EACH = "each"
    SIZE = "size"


@dataclass(frozen=True)
class PurgePolicy:
    """A parsed purge policy.

    `value` is in the unit the policy compares: seconds for `older`, a number
    of tasks for `last` and `each`, bytes for `size`.
    """

    kind: PurgeKind
    value: int
    text: str

    def __str__(self) -> str:
        return self.text


def parse_purge_policy(text: str) -> PurgePolicy:
    """Parse `<policy>:<value>` as in upstream `[tasks] purge`.

    Raises ValueError naming the accepted forms when *text* is not one of them.
    Unlike upstream, which searches the value with an unanchored pattern, the
    whole value must match (`last:10x` is refused, not read as `last:10`).
    """
    kind_text, sep, value = text.strip().partition(":")
    if not sep:
        raise ValueError(f"invalid purge policy {text!r}: expected {ACCEPTED_FORMS}")
    try:
        kind = PurgeKind(kind_text.strip())
    except ValueError:
        raise ValueError(
            f"unknown purge policy {kind_text!r} in {text!r}: expected {ACCEPTED_FORMS}"
        ) from None
    value = value.strip()
    if kind is PurgeKind.OLDER:
        match = _AGE_RE.fullmatch(value)
        if match:
            seconds = int(match.group(1)) * _AGE_UNITS[match.group(2)]
            return PurgePolicy(kind, seconds, f"{kind}:{value}")
    elif kind in (PurgeKind.LAST, PurgeKind.EACH):
        if _COUNT_RE.fullmatch(value):
            return PurgePolicy(kind, int(value), f"{kind}:{value}")
    else:
        match = _SIZE_RE.fullmatch(value)
        if match:
            limit = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
            return PurgePolicy(kind, limit, f"{kind}:{value}")
    raise ValueError(f"invalid value {value!r} for purge policy {kind}: expected {ACCEPTED_FORMS}")


def history_id(task: Task) -> tuple[str, ...]:
    """The group of a task under `each:<n>`.

    Upstream joins the task name with `-` to the build's format, distribution,
    derivative and artifact; other task types group by name alone. The parts
    are kept apart here so that `a-b` + `c` and `a` + `b-c` stay different.
    """
    if task.name == TaskName.ARTIFACT_BUILD:
        return (task.name, task.format, task.distribution, task.derivative, task.artifact)
    return (task.name,)


def iter_tasks_to_purge(
    tasks_newest_first: Iterable[Task],
    policy: PurgePolicy,
    *,
    now: datetime,
    workspace_size: Callable[[Task], int],
) -> Iterator[Task]:
    """Yield, lazily and in input order, the tasks *policy* removes.

    *tasks_newest_first* must be finished tasks sorted by submission, newest
    first. *workspace_size* is only called by the size policy, and only until
    the limit is reached: every task after that one is removed unmeasured.
    """
    if policy.kind is PurgeKind.OLDER:
        cutoff = now - timedelta(seconds=policy.value)
        yield from (task for task in tasks_newest_first if task.submission < cutoff)
    elif policy.kind is PurgeKind.LAST:
        for position, task in enumerate(tasks_newest_first):
            if position >= policy.value:
                yield task
    elif policy.kind is PurgeKind.EACH:
        seen: dict[tuple[str, ...], int] = {}
        for task in tasks_newest_first:
            group = history_id(task)
            seen[group] = seen.get(group, 0) + 1
            if seen[group] > policy.value:
                yield task
    else:
        total = 0
        for task in tasks_newest_first:
            if total < policy.value:
                total += workspace_size(task)
            if total >= policy.value:
                yield task


def history_queryset(
    instance: Instance | str,
    *,
    name: str | None = None,
    result: str | None = None,
    artifact: str | None = None,
) -> QuerySet[Task]:
    """Finished tasks of *instance* (an Instance or its id), newest first, optionally filtered."""
    queryset = Task.objects.filter(instance_id=_instance_id(instance), state=TaskState.FINISHED)
    if name is not None:
        queryset = queryset.filter(name=name)
    if result is not None:
        queryset = queryset.filter(result=result)
    if artifact is not None:
        queryset = queryset.filter(artifact=artifact)
    return queryset.order_by("-submission", "-id")


def workspace_size(path: str | os.PathLike[str]) -> int:
    """Total size in bytes of the regular files under *path*, symlinks not followed.

    0 when *path* is missing or is itself a symlink; unreadable entries count 0.
    """
    total = 0
    pending = [os.fspath(path)]
    try:
        if not stat.S_ISDIR(os.lstat(pending[0]).st_mode):
            return 0
    except OSError:
        return 0
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


@dataclass
class PurgeReport:
    """What a purge of one instance removed (or would remove, in a dry run)."""

    instance: str
    policy: str
    dry_run: bool = False
    removed: int = 0
    bytes_freed: int = 0
    # Rows kept because their workspace could not be removed; the next purge retries them.
    failed: list[str] = field(default_factory=list)
    # Rows removed whose recorded workspace lies outside the instance root and was left alone.
    workspaces_skipped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.summary()

    def summary(self) -> str:
        """One line for logs and the command output."""
        verb = "would remove" if self.dry_run else "removed"
        line = (
            f"instance {self.instance} ({self.policy}): {verb} {self.removed} task(s), "
            f"{self.bytes_freed} bytes ({self.bytes_freed / 1024**2:.3f} MiB)"
        )
        if self.failed:
            line += f"; {len(self.failed)} workspace(s) could not be removed, rows kept"
        if self.workspaces_skipped:
            line += f"; {len(self.workspaces_skipped)} workspace(s) outside the data root left"
        return line


def purge_history(
    instance: Instance | str,
    policy: PurgePolicy,
    *,
    batch_size: int = 500,
    dry_run: bool = False,
    log: Callable[[str], object] | None = None,
    now: datetime | None = None,
) -> PurgeReport:
    """Apply *policy* to the finished tasks of *instance* (an Instance or its id).

    Tasks are walked newest first with a server-side cursor; the selected ones
    are removed in batches of *batch_size*: their workspaces first, then their
    rows with one DELETE per batch, so an interruption leaves rows whose
    workspace is gone (removed by the next purge), never a workspace without a
    row. A workspace is only removed when it is a direct child of
    `<data dir>/workspaces/<instance>/`. *log* receives one line per removed
    task and the summary (default: this module's logger).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    emit = log or logger.info
    instance_id = _instance_id(instance)
    report = PurgeReport(instance=instance_id, policy=str(policy), dry_run=dry_run)
    root = instance_workspaces_root(instance_id).resolve()
    tasks = (
        history_queryset(instance_id)
        .only(*_PURGE_COLUMNS)
        .iterator(chunk_size=max(batch_size, 100))
    )
    selected = iter_tasks_to_purge(
        tasks,
        policy,
        now=now or timezone.now(),
        workspace_size=lambda task: _measure(task, root),
    )
    for batch in _batches(selected, batch_size):
        _purge_batch(batch, root=root, report=report, dry_run=dry_run, emit=emit)
    emit(report.summary())
    return report


def _purge_batch(
    batch: list[Task],
    *,
    root: Path,
    report: PurgeReport,
    dry_run: bool,
    emit: Callable[[str], object],
) -> None:
    """Remove the workspaces of *batch*, then its rows in one DELETE."""
    deletable = []
    for task in batch:
        workspace = _confined_workspace(task, root)
        size = workspace_size(workspace) if workspace else 0
        verb = "would remove" if dry_run else "removing"
        if workspace is None:
            report.workspaces_skipped.append(str(task.id))
            emit(
                f"{verb} task {task.id} ({task.name}, submitted {task.submission.isoformat()}); "
                f"its workspace {task.place!r} is outside {root} and is left alone"
            )
        else:
            emit(
                f"{verb} task {task.id} ({task.name}, submitted {task.submission.isoformat()}), "
                f"{size} bytes"
            )
        if not dry_run and workspace is not None:
            try:
                _remove_workspace(workspace)
            except OSError as error:
                report.failed.append(str(task.id))
                emit(f"unable to remove workspace {workspace} of task {task.id}, kept: {error}")
                continue
        deletable.append(task.pk)
        report.removed += 1
        report.bytes_freed += size
    if deletable and not dry_run:
        # Dependent rows (locks) cascade; only the ids are loaded to find them.
        with transaction.atomic():
            Task.objects.filter(pk__in=deletable, state=TaskState.FINISHED).only("pk").delete()


def _confined_workspace(task: Task, root: Path) -> Path | None:
    """The workspace of *task* when it is a direct child of *root*, else None.

    The parent is resolved (so `..` and symlinked parents cannot escape) but
    the workspace itself is not: a workspace that is a symlink is unlinked,
    never followed.
    """
    if not task.place:
        return None
    place = Path(task.place)
    if not place.is_absolute() or place.name in ("", ".", ".."):
        return None
    candidate = place.parent.resolve() / place.name
    return candidate if candidate.parent == root else None


def _measure(task: Task, root: Path) -> int:
    workspace = _confined_workspace(task, root)
    return workspace_size(workspace) if workspace else 0


def _remove_workspace(path: Path) -> None:
    """Delete a workspace without following symlinks; a missing one is already done."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        # rmtree unlinks symlinks found inside without following them.
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            # Removed under our feet (by a concurrent purge): done if nothing is left.
            if os.path.lexists(path):
                raise
    else:
        path.unlink(missing_ok=True)


def _batches(items: Iterable[Task], size: int) -> Iterator[list[Task]]:
    batch: list[Task] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _instance_id(instance: Instance | str) -> str:
    return instance if isinstance(instance, str) else instance.pk

"""The task engine: submission, scheduling, execution, cancellation, recovery.

The Task row is the truth. A Celery message carries only a task id and is a
hint to "look at this task now": it is sent when the submission commits, sent
again when a blocking task ends, and re-sent by the reconciler when it may
have been lost. Every state change is a guarded update, so a duplicate or a
late message is a no-op, and a task runs at most once.

Scheduling: a task declares resource locks at submission. A worker starts it
only once no running task holds a conflicting lock and no task queued before
it (in `queue_order`) waits for one; otherwise the message is dropped and the
task is dispatched again when its blocker finishes. That gives FIFO order per
resource and parallelism across resources, with no lock held while waiting.
"""

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from fatbuildr_site.errors import ConflictError
from instances.models import Instance
from tasks.models import Task, TaskLock, TaskResult, TaskState
from tasks.runner import CommandError, CommandRunner, JournalWriter, kill_process_group
from tasks.workspaces import instance_workspaces

logger = logging.getLogger(__name__)

ACTIVE_STATES = (TaskState.PENDING, TaskState.RUNNING)
WORKER_LOST = "worker lost"
# How often a running task looks for a cancellation request.
CANCEL_POLL_INTERVAL = 0.5


@dataclass(frozen=True)
class Lock:
    """A resource a task holds for its whole run, e.g. `keyring:default`."""

    resource: str
    exclusive: bool = True


class TaskFailure(Exception):
    """A handler's clean failure: its message is the reason shown in the journal."""


class TaskNotCancellable(ConflictError):
    """The task is already finished."""


Handler = Callable[["TaskContext"], None]
_handlers: dict[str, Handler] = {}


def handler(name: str) -> Callable[[Handler], Handler]:
    """Register the function that runs tasks named *name* (modules register at import)."""

    def register(function: Handler) -> Handler:
        _handlers[name] = function
        return function

    return register


def worker_id() -> str:
    """This process, as recorded on the tasks it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


# --- Submission and cancellation -------------------------------------------


def submit(
    instance: Instance, name: str, *, user: str, locks: Sequence[Lock] = (), **fields
) -> Task:
    """Queue a task; its message is sent once the surrounding transaction commits."""
    with transaction.atomic():
        now = timezone.now()
        task = Task.objects.create(
            instance=instance,
            name=name,
            user=user,
            dispatched_at=now,
            dispatch_count=1,
            redispatch_at=now + timedelta(seconds=settings.FATBUILDR_TASK_REDISPATCH_AFTER),
            **fields,
        )
        TaskLock.objects.bulk_create(
            TaskLock(task=task, resource=lock.resource, exclusive=lock.exclusive) for lock in locks
        )
        transaction.on_commit(lambda: send(task.pk))
    return task


def send(task_id: object) -> None:
    """Send the Celery message of a task. A broker outage is not the submitter's
    failure: the row is committed and the reconciler sends it again later."""
    try:
        enqueue_message(task_id)
    except Exception:
        logger.warning("task %s: not sent, the reconciler will retry", task_id, exc_info=True)


def enqueue_message(task_id: object) -> None:
    """Put the message of a task on the broker."""
    from tasks.tasks import run_task

    run_task.apply_async(args=[str(task_id)], retry=False)


def cancel_task(task: Task, *, by: str) -> Task:
    """Cancel a pending task at once, or ask the worker of a running one to kill it."""
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=task.pk)
        if task.state == TaskState.FINISHED:
            raise TaskNotCancellable(f"task {task.pk} is already finished")
        task.cancel_requested_by = by
        if task.state == TaskState.RUNNING:
            task.save(update_fields=["cancel_requested_by"])
            return task
        reason = f"canceled by {by}"
        task.state, task.result = TaskState.FINISHED, TaskResult.CANCELED
        task.finished_at, task.error = timezone.now(), reason
        task.save(update_fields=["cancel_requested_by", "state", "result", "finished_at", "error"])
        # A watcher of a finished task replays its journal: give it one that says why.
        with JournalWriter(task.journal_path) as journal:
            journal.log(f"Task canceled by {by} before it started", logging.WARNING)
            journal.end(False, reason, task_id=str(task.pk))
        transaction.on_commit(lambda: dispatch_successors(task))
    return task


# --- Scheduling ------------------------------------------------------------


def _blocked() -> Exists:
    """True for a task (the outer query's row) that one of its locks keeps waiting.

    A lock is blocked by a conflicting lock (same resource, either exclusive)
    of another task that runs, or that is pending and queued before it. A
    running task blocks whatever its place in the queue: `queue_order` comes
    from a sequence at insert time, so a task can commit after a later one.
    """
    outer_exclusive = ExpressionWrapper(OuterRef("exclusive"), output_field=BooleanField())
    blocking = (
        TaskLock.objects.filter(resource=OuterRef("resource"), task__state__in=ACTIVE_STATES)
        .exclude(task_id=OuterRef("task_id"))
        .filter(Q(exclusive=True) | Q(outer_exclusive))
        .filter(
            Q(task__state=TaskState.RUNNING)
            | Q(task__queue_order__lt=OuterRef("task__queue_order"))
        )
    )
    return Exists(TaskLock.objects.filter(task_id=OuterRef("pk")).filter(Exists(blocking)))


def runnable_pending() -> QuerySet[Task]:
    """Pending tasks that no lock keeps waiting, in queue order."""
    return Task.objects.filter(state=TaskState.PENDING).exclude(_blocked()).order_by("queue_order")


def is_blocked(task: Task) -> bool:
    """Whether *task* must wait for a task holding or queued for a conflicting lock."""
    return Task.objects.filter(pk=task.pk).filter(_blocked()).exists()


def dispatch(task: Task) -> None:
    count = task.dispatch_count + 1
    backoff = settings.FATBUILDR_TASK_REDISPATCH_AFTER * 2 ** min(count - 1, 4)
    now = timezone.now()
    Task.objects.filter(pk=task.pk, state=TaskState.PENDING).update(
        dispatched_at=now, dispatch_count=count, redispatch_at=now + timedelta(seconds=backoff)
    )
    send(task.pk)


def dispatch_successors(task: Task) -> None:
    """Send the pending tasks that waited for a resource of *task* and may now run."""
    resources = list(task.locks.values_list("resource", flat=True))
    if not resources:
        return
    waiting = runnable_pending().filter(
        Exists(TaskLock.objects.filter(task_id=OuterRef("pk"), resource__in=resources))
    )
    for candidate in waiting:
        dispatch(candidate)


def claim(task_id: str) -> Task | None:
    """Move a pending, unblocked task to running for this process; None when it is not ours
    to run (unknown, already started or finished, or waiting for a resource)."""
    try:
        pk = uuid.UUID(str(task_id))
    except ValueError:
        return None
    with transaction.atomic():
        task = Task.objects.select_for_update().filter(pk=pk).first()
        if task is None or task.state != TaskState.PENDING:
            return None
        # Claims of tasks sharing a resource take turns: the second one sees the
        # first one running once it gets the lock (each statement of a READ
        # COMMITTED transaction reads what committed before it started).
        resources = sorted(task.locks.values_list("resource", flat=True))
        with connection.cursor() as cursor:
            for resource in resources:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [resource])
        if resources and is_blocked(task):
            return None
        now = timezone.now()
        task.state, task.started_at, task.worker = TaskState.RUNNING, now, worker_id()
        task.save(update_fields=["state", "started_at", "worker"])
        # Heartbeats are dated by the database's clock, which the reaper reads too: hosts
        # with skewed clocks never make a live task look stale.
        Task.objects.filter(pk=task.pk).update(heartbeat_at=Now())
    return task


# --- Execution -------------------------------------------------------------


class TaskContext:
    """What a handler gets: its task, workspace, journal and command runner."""

    def __init__(
        self, task: Task, journal: JournalWriter, runner: CommandRunner, monitor: "TaskMonitor"
    ) -> None:
        self.task = task
        self.instance = task.instance
        self.workspace = Path(task.place)
        self.journal = journal
        self._runner = runner
        self._monitor = monitor

    def log(self, message: str, level: int = logging.INFO) -> None:
        self.check_interrupted()
        self.journal.log(message, level)

    def run(self, cmd: Sequence[str], **kwargs) -> None:
        """Run a command (see CommandRunner.run), its output in the journal."""
        self.check_interrupted()
        self._runner.run(cmd, **kwargs)

    def check_interrupted(self) -> None:
        reason = self._monitor.interruption()
        if reason:
            raise TaskFailure(reason)


class TaskMonitor(threading.Thread):
    """Beside a running task: writes its heartbeat, watches for cancellation and for the
    loss of its lease (the reaper gave up on us).

    It writes the task row on its own connection, in autocommit, and is the
    only writer of that row while the task runs (the process group of the
    running command included, `record_process_group`): whatever the handler
    does on the worker's connection, no lock of its can hold up the heartbeat.
    """

    # How long the handler waits for its process group to be recorded before it goes on.
    RECORD_TIMEOUT = 10.0

    def __init__(self, task: Task) -> None:
        super().__init__(name=f"task-monitor-{task.pk}", daemon=True)
        self.task_id = task.pk
        self.worker = task.worker
        self.canceled_by = ""
        self.lease_lost = False
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._group_lock = threading.Lock()
        self._group_request: list[int | None] = []
        self._group_recorded = threading.Event()

    def record_process_group(self, pgid: int | None) -> None:
        """Record the process group of the running command (None: no command) before it goes
        on: a reaper on this host kills that group if this worker dies."""
        if not self.is_alive():
            return
        with self._group_lock:
            self._group_request[:] = [pgid]
            self._group_recorded.clear()
        self._wake.set()
        if not self._group_recorded.wait(self.RECORD_TIMEOUT):
            logger.warning("task %s: process group %s not recorded in time", self.task_id, pgid)

    def interruption(self) -> str | None:
        if self.canceled_by:
            return f"canceled by {self.canceled_by}"
        if self.lease_lost:
            return WORKER_LOST
        return None

    def stop(self) -> None:
        self._stop_event.set()
        self._wake.set()
        self.join()

    def _write_process_group(self, mine: QuerySet[Task]) -> None:
        with self._group_lock:
            if not self._group_request:
                return
            pgid = self._group_request[0]
        mine.update(process_group=pgid)  # A failure leaves the request for the next turn.
        with self._group_lock:
            if self._group_request == [pgid]:
                self._group_request.clear()
                self._group_recorded.set()

    def run(self) -> None:
        interval = settings.FATBUILDR_TASK_HEARTBEAT_INTERVAL
        last_beat = timezone.now()
        mine = Task.objects.filter(pk=self.task_id, state=TaskState.RUNNING, worker=self.worker)
        try:
            while True:
                self._wake.wait(CANCEL_POLL_INTERVAL)
                self._wake.clear()
                if self._stop_event.is_set():
                    return
                try:
                    self._write_process_group(mine)
                    now = timezone.now()
                    if (now - last_beat).total_seconds() >= interval:
                        if not mine.update(heartbeat_at=Now()):
                            self.lease_lost = True
                            return
                        last_beat = now
                    canceled_by = mine.values_list("cancel_requested_by", flat=True).first()
                except DatabaseError:
                    # A database blip must not end a long build: retry on a new
                    # connection; only a heartbeat timeout gives the task up.
                    logger.warning("task %s: monitor query failed", self.task_id, exc_info=True)
                    connection.close()
                    continue
                if canceled_by is None:
                    self.lease_lost = True
                    return
                # Heartbeats go on after a cancellation: the handler may need a moment.
                self.canceled_by = canceled_by
        finally:
            connection.close()


def execute(task_id: str) -> bool:
    """Run a task if it is ours to run; True when this call ran it."""
    close_old_connections()
    task = claim(task_id)
    if task is None:
        return False
    instance_workspaces(task.instance_id)  # The web server creates workspaces there too.
    Path(task.place).mkdir(parents=True, exist_ok=True)
    journal = JournalWriter(task.journal_path)
    monitor = TaskMonitor(task)
    runner = CommandRunner(
        journal,
        interrupted=monitor.interruption,
        on_start=monitor.record_process_group,
        default_timeout=settings.FATBUILDR_TASK_COMMAND_TIMEOUT,
    )
    context = TaskContext(task, journal, runner, monitor)
    monitor.start()
    reason = detail = ""
    try:
        journal.log(f"Starting task {task.name} {task.pk} on {task.worker}")
        run = _handlers.get(task.name)
        if run is None:
            raise TaskFailure(f"no handler for tasks named {task.name!r}")
        run(context)
        context.check_interrupted()
    except CommandError as error:
        reason = str(error)
        detail = error.output_tail
    except TaskFailure as error:
        reason = str(error)
    except Exception as error:
        logger.exception("task %s failed", task.pk)
        reason = f"internal error: {error.__class__.__name__}: {error}"
    finally:
        monitor.stop()
    if monitor.canceled_by:
        result, reason = TaskResult.CANCELED, f"canceled by {monitor.canceled_by}"
    else:
        result = TaskResult.FAILED if reason else TaskResult.SUCCESS
    if not monitor.lease_lost:
        _reconnecting(lambda: _finish(task, result, reason, journal, detail=detail))
    journal.close()
    dispatch_successors(task)
    return True


def _reconnecting(function: Callable[[], object]) -> object:
    """Run a database step once more on a new connection if the connection was lost during
    a long command (database restart, idle timeout), rather than leave the task to the reaper."""
    try:
        return function()
    except (OperationalError, InterfaceError):
        connection.close()
        return function()


def _finish(
    task: Task, result: str, reason: str, journal: JournalWriter, *, detail: str = ""
) -> None:
    """Mark the task finished and write its end frames; *detail* (the end of a failed
    command's output) is kept with the reason on the row, for the admin."""
    with transaction.atomic():
        finished = Task.objects.filter(
            pk=task.pk, state=TaskState.RUNNING, worker=task.worker
        ).update(
            state=TaskState.FINISHED,
            result=result,
            error=f"{reason}\n{detail}" if detail else reason,
            finished_at=timezone.now(),
            process_group=None,
        )
        if finished:  # Otherwise the reaper ended it and wrote the end frames.
            journal.end(result == TaskResult.SUCCESS, reason, task_id=str(task.pk))


# --- Recovery (run periodically by beat) -----------------------------------


def reap_lost_tasks() -> list[Task]:
    """Fail running tasks whose worker stopped writing heartbeats ("worker lost")."""
    deadline = Now() - timedelta(seconds=settings.FATBUILDR_TASK_HEARTBEAT_TIMEOUT)
    reaped = []
    stale = Task.objects.filter(state=TaskState.RUNNING, heartbeat_at__lt=deadline)
    for task in stale.order_by("queue_order"):
        with transaction.atomic():
            result, reason = TaskResult.FAILED, WORKER_LOST
            if task.cancel_requested_by:
                result = TaskResult.CANCELED
                reason = f"canceled by {task.cancel_requested_by} ({WORKER_LOST})"
            if not stale.filter(pk=task.pk).update(
                state=TaskState.FINISHED,
                result=result,
                error=reason,
                finished_at=timezone.now(),
                process_group=None,
            ):
                continue
            with JournalWriter(task.journal_path) as journal:
                journal.end(False, reason, task_id=str(task.pk))
        _kill_orphans(task)
        logger.warning("task %s: worker %s lost", task.pk, task.worker)
        reaped.append(task)
        dispatch_successors(task)
    return reaped


def _kill_orphans(task: Task) -> None:
    """Commands run in their own process group and outlive a killed worker: when the worker
    ran on this host, kill what is left of the command it was running."""
    host = task.worker.rpartition(":")[0]
    if task.process_group and host == socket.gethostname():
        kill_process_group(task.process_group)


def redispatch_pending(limit: int = 1000) -> list[Task]:
    """Send again the messages of runnable pending tasks that should have started by now.

    A message can be lost (broker restart or flush); duplicates are harmless,
    so the reconciler errs on the side of sending, with a backoff per task
    (`redispatch_at`) so that a long queue behind busy workers does not fill
    the broker. Blocked tasks are left to their blockers' dispatch.
    """
    overdue = runnable_pending().filter(redispatch_at__lt=timezone.now())[:limit]
    sent = list(overdue)
    for task in sent:
        dispatch(task)
    return sent

"""Reads of the task table."""

import time
import uuid
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.db import connection

from instances.models import Instance
from tasks.models import Task, TaskState


def running_task(instance: Instance) -> Task | None:
    """The oldest running task of the instance, or None when idle."""
    return (
        Task.objects.filter(instance=instance, state=TaskState.RUNNING)
        .order_by("started_at", "queue_order")
        .first()
    )


def running_tasks(instance: Instance) -> list[Task]:
    """Every running task of the instance (several workers may run tasks at once), oldest
    first."""
    return list(
        Task.objects.filter(instance=instance, state=TaskState.RUNNING).order_by(
            "started_at", "queue_order"
        )
    )


def pending_tasks(instance: Instance) -> list[Task]:
    """Pending tasks in submission (FIFO) order."""
    return list(
        Task.objects.filter(instance=instance, state=TaskState.PENDING).order_by("queue_order")
    )


def get_task(instance: Instance, task_id: str) -> Task | None:
    """A task of the instance by id, whatever its state; None for unknown or malformed ids."""
    try:
        parsed = uuid.UUID(task_id)
    except ValueError:
        return None
    return Task.objects.filter(instance=instance, pk=parsed).first()


def has_journal(task: Task) -> bool:
    """Whether the task journal holds at least one byte."""
    try:
        return task.journal_path.stat().st_size > 0
    except OSError:
        return False


def finished_checker(task: Task, *, min_interval: float) -> Callable[[], bool]:
    """A callable telling whether *task* has finished, asking the database at most every
    *min_interval* seconds (journal followers poll the file much more often)."""
    last_check = 0.0
    finished = task.state == TaskState.FINISHED

    def is_finished() -> bool:
        nonlocal last_check, finished
        if not finished and time.monotonic() - last_check >= min_interval:
            last_check = time.monotonic()
            finished = Task.objects.filter(pk=task.pk, state=TaskState.FINISHED).exists()
        return finished

    return is_finished


@sync_to_async
def _finished_now(task_id: uuid.UUID) -> bool:
    try:
        return Task.objects.filter(pk=task_id, state=TaskState.FINISHED).exists()
    finally:
        # A stream lasts as long as its task: it must not hold a pooled connection
        # between two checks, or a few hundred watchers would exhaust the pool.
        connection.close()


def afinished_checker(task: Task, *, min_interval: float) -> Callable[[], Awaitable[bool]]:
    """`finished_checker` for asynchronous journal streams."""
    last_check = 0.0
    finished = task.state == TaskState.FINISHED

    async def is_finished() -> bool:
        nonlocal last_check, finished
        if not finished and time.monotonic() - last_check >= min_interval:
            last_check = time.monotonic()
            finished = await _finished_now(task.pk)
        return finished

    return is_finished

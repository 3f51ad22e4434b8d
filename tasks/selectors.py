"""Reads of the task table."""

import uuid

from registry.models import Instance
from tasks.models import Task, TaskState


def running_task(instance: Instance) -> Task | None:
    """The oldest running task of the instance, or None when idle."""
    return (
        Task.objects.filter(instance=instance, state=TaskState.RUNNING)
        .order_by("started_at", "submission")
        .first()
    )


def pending_tasks(instance: Instance) -> list[Task]:
    """Pending tasks in submission (FIFO) order."""
    return list(
        Task.objects.filter(instance=instance, state=TaskState.PENDING).order_by("submission", "id")
    )


def get_task(instance: Instance, task_id: str) -> Task | None:
    """A task of the instance by id, whatever its state; None for unknown or malformed ids."""
    try:
        parsed = uuid.UUID(task_id)
    except ValueError:
        return None
    return Task.objects.filter(instance=instance, pk=parsed).first()

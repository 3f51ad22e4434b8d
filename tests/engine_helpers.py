"""Helpers of the in-process engine tests: locks, tasks submitted in a given state, journal
frames, threads with their own database connection."""

import threading

from django.db import connection
from django.utils import timezone

from tasks import engine
from tasks.engine import Lock
from tasks.journal import Command, is_end_frame
from tasks.models import Task, TaskResult, TaskState
from tests.task_handlers import NOOP
from tests.workers import journal_frames, wait_for


def X(resource: str) -> Lock:
    """An exclusive lock."""
    return Lock(resource)


def S(resource: str) -> Lock:
    """A shared lock."""
    return Lock(resource, exclusive=False)


def make(instance, *locks: Lock, state: str = TaskState.PENDING, name: str = NOOP, **fields):
    """A submitted task, moved to *state* (running: on another host; finished: succeeded)."""
    task = engine.submit(instance, name, user="tester", locks=locks, **fields)
    now = timezone.now()
    if state == TaskState.RUNNING:
        Task.objects.filter(pk=task.pk).update(
            state=state, worker="elsewhere:1", started_at=now, heartbeat_at=now
        )
    elif state == TaskState.FINISHED:
        Task.objects.filter(pk=task.pk).update(
            state=state, result=fields.get("result", TaskResult.SUCCESS), finished_at=now
        )
    return Task.objects.get(pk=task.pk)


def fresh(task: Task) -> Task:
    return Task.objects.get(pk=task.pk)


def end_frames(task: Task) -> list[tuple[int, bytes]]:
    return [frame for frame in journal_frames(task) if is_end_frame(*frame)]


def failure_frames(task: Task, reason: str) -> list[tuple[int, bytes]]:
    return [
        (Command.LOG, f"40:error while running task {task.pk}: {reason}".encode()),
        (Command.LOG, f"20:Task failed: {reason}".encode()),
    ]


def in_thread(function, *args) -> tuple[threading.Thread, dict]:
    """Run *function* in a thread with its own database connection; its outcome in the dict."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # reported to the test
            outcome["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def wait_command_started(task: Task) -> int:
    return wait_for(
        lambda: Task.objects.filter(pk=task.pk).values_list("process_group", flat=True).first(),
        timeout=10,
        message="the command to start",
    )

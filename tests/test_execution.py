"""tasks.engine.execute: the journal of a run, failures, dispatch of the next task, a worker
that lost its lease, database connections dropped while a task runs.

No Celery worker here (see test_engine_e2e.py for those): engine functions are called
directly and `tasks.engine.send` is replaced by a recorder of the task ids it is given
(`send_calls`).

Tests of `execute` use a transactional database: its TaskMonitor thread has its own
connection and must see the committed rows.
"""

import logging

import pytest
from django.db import connection
from django.utils import timezone

from tasks import engine
from tasks.journal import Command
from tasks.models import Task, TaskResult, TaskState
from tasks.runner import kill_process_group, process_group_alive
from tests.engine_helpers import (
    X,
    end_frames,
    failure_frames,
    fresh,
    in_thread,
    make,
    wait_command_started,
)
from tests.task_handlers import SHELL
from tests.workers import journal_frames, wait_for

pytestmark = pytest.mark.usefixtures("data_dir", "send_calls")


# --- Execution -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_execute_success_journal(engine_instance):
    task = make(engine_instance, name=SHELL, message="echo hello; echo oops >&2")
    assert engine.execute(str(task.pk)) is True
    task = fresh(task)
    assert (task.state, task.result, task.error) == (TaskState.FINISHED, TaskResult.SUCCESS, "")
    assert task.finished_at is not None and task.process_group is None
    frames = journal_frames(task)
    assert frames[0] == (
        Command.LOG,
        f"20:Starting task test shell {task.pk} on {engine.worker_id()}".encode(),
    )
    assert frames[1] == (Command.LOG, b"20:Running command: sh -c 'echo hello; echo oops >&2'")
    assert b"".join(p for c, p in frames if c == Command.BYTES) == b"hello\noops\n"
    assert all(payload for command, payload in frames if command == Command.BYTES)
    assert frames[-1] == (Command.LOG, b"20:Task succeeded")
    assert end_frames(task) == [frames[-1]]


@pytest.mark.django_db(transaction=True)
def test_execute_failure_journal(engine_instance):
    task = make(engine_instance, name=SHELL, message="echo bad; exit 3")
    assert engine.execute(str(task.pk)) is True
    task = fresh(task)
    reason = "command sh -c 'echo bad; exit 3' failed with exit code 3"
    # The row keeps the end of the command's output after the reason, for the admin.
    assert (task.state, task.result, task.error) == (
        TaskState.FINISHED,
        TaskResult.FAILED,
        f"{reason}\nbad\n",
    )
    frames = journal_frames(task)
    assert (Command.BYTES, b"bad\n") in frames
    assert frames[-2:] == failure_frames(task, reason)
    assert len(end_frames(task)) == 1


@pytest.mark.django_db(transaction=True)
def test_execute_handler_raising_an_unexpected_exception_fails_the_task(
    engine_instance, temporary_handler
):
    def boom(context):
        context.log("about to break")
        raise ValueError("boom")

    temporary_handler("test boom", boom)
    task = make(engine_instance, name="test boom")
    assert engine.execute(str(task.pk)) is True
    task = fresh(task)
    reason = "internal error: ValueError: boom"
    assert (task.state, task.result, task.error) == (TaskState.FINISHED, TaskResult.FAILED, reason)
    frames = journal_frames(task)
    assert (Command.LOG, b"20:about to break") in frames
    assert frames[-2:] == failure_frames(task, reason)


@pytest.mark.django_db(transaction=True)
def test_execute_unknown_task_name_fails_with_no_handler(engine_instance):
    task = make(engine_instance, name="test nobody handles this")
    assert engine.execute(str(task.pk)) is True
    task = fresh(task)
    reason = "no handler for tasks named 'test nobody handles this'"
    assert (task.result, task.error) == (TaskResult.FAILED, reason)
    assert journal_frames(task)[-2:] == failure_frames(task, reason)


@pytest.mark.django_db(transaction=True)
def test_a_handler_log_line_starting_with_task_failed_is_not_an_end_frame(
    engine_instance, temporary_handler
):
    def liar(context):
        context.log("Task failed: not really", logging.WARNING)
        context.journal.log("Task succeeded, or so it says")
        context.run(["sh", "-c", "echo 'Task failed'"])

    temporary_handler("test liar", liar)
    task = make(engine_instance, name="test liar")
    assert engine.execute(str(task.pk)) is True
    frames = journal_frames(task)
    assert end_frames(task) == [(Command.LOG, b"20:Task succeeded")] == frames[-1:]
    logs = [payload for command, payload in frames if command == Command.LOG]
    assert any(b"Task failed: not really" in payload for payload in logs)
    assert any(b"Task succeeded, or so it says" in payload for payload in logs)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("state", [TaskState.RUNNING, TaskState.FINISHED])
def test_execute_of_a_task_not_pending_does_nothing(engine_instance, send_calls, state):
    task = make(engine_instance, X("build:a"), name=SHELL, message="echo ran", state=state)
    make(engine_instance, X("build:a"))
    send_calls.clear()
    assert engine.execute(str(task.pk)) is False
    assert not task.journal_path.exists()
    after = fresh(task)
    assert (after.state, after.result, after.worker) == (task.state, task.result, task.worker)
    assert send_calls == []


@pytest.mark.django_db(transaction=True)
def test_execute_dispatches_the_next_task_on_the_same_resource(engine_instance, send_calls):
    first = make(engine_instance, X("build:a"), name=SHELL, message="true")
    second = make(engine_instance, X("build:a"))
    make(engine_instance, X("build:a"))  # behind the second: still blocked
    make(engine_instance, X("build:other"))  # not waiting for this resource
    send_calls.clear()
    before = fresh(second)
    assert engine.execute(str(first.pk)) is True
    assert send_calls == [second.pk]
    after = fresh(second)
    assert after.dispatch_count == before.dispatch_count + 1
    assert after.dispatched_at > before.dispatched_at
    assert engine.execute(str(second.pk)) is True
    assert fresh(second).result == TaskResult.SUCCESS


# --- Lease loss ----------------------------------------------------------------------------


def give_up(task_id) -> None:
    """What the reaper does to a task it believes lost (its journal frames left out)."""
    Task.objects.filter(pk=task_id).update(
        state=TaskState.FINISHED,
        result=TaskResult.FAILED,
        error=engine.WORKER_LOST,
        finished_at=timezone.now(),
        worker="elsewhere:1",
        process_group=None,
    )


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_lost_its_lease_does_not_overwrite_the_task(
    engine_instance, temporary_handler
):
    temporary_handler("test lease", lambda context: give_up(context.task.pk))
    task = make(engine_instance, name="test lease")
    assert engine.execute(str(task.pk)) is True
    task = fresh(task)
    assert (task.state, task.result, task.error, task.worker) == (
        TaskState.FINISHED,
        TaskResult.FAILED,
        "worker lost",
        "elsewhere:1",
    )
    frames = journal_frames(task)
    assert end_frames(task) == []
    assert not any(b"error while running task" in payload for _, payload in frames)


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_lost_its_lease_stops_its_command(engine_instance):
    task = make(engine_instance, name=SHELL, message="echo started; sleep 30")
    thread, outcome = in_thread(engine.execute, str(task.pk))
    try:
        group = wait_command_started(task)
        give_up(task.pk)
        thread.join(timeout=10)
        assert not thread.is_alive(), "execute went on after losing its lease"
    finally:
        if thread.is_alive():
            kill_process_group(group)
            thread.join(timeout=10)
    assert outcome == {"value": True}
    assert not process_group_alive(group)
    task = fresh(task)
    assert (task.result, task.error, task.worker, task.process_group) == (
        TaskResult.FAILED,
        "worker lost",
        "elsewhere:1",
        None,
    )
    assert (Command.BYTES, b"started\n") in journal_frames(task)
    assert end_frames(task) == []


# --- Database connections lost while a task runs -------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_task_survives_its_database_connections_being_dropped(engine_instance, tmp_path):
    started = tmp_path / "started"
    task = make(engine_instance, name=SHELL, message=f"touch {started}; sleep 2")
    thread, outcome = in_thread(engine.execute, str(task.pk))
    wait_for(started.exists, timeout=10, message="the command to start")
    with connection.cursor() as cursor:  # As a database restart would.
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchall(), "the worker's connections were dropped"
    thread.join(timeout=20)
    assert outcome == {"value": True}
    task = fresh(task)
    assert (task.state, task.result) == (TaskState.FINISHED, TaskResult.SUCCESS)
    assert journal_frames(task)[-1] == (Command.LOG, b"20:Task succeeded")

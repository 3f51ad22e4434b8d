"""tasks.engine.cancel_task: pending tasks finish at once, running ones are killed by their
worker, finished ones are refused.

No Celery worker here (see test_engine_e2e.py for those): engine functions are called
directly and `tasks.engine.send` is replaced by a recorder of the task ids it is given
(`send_calls`).
"""

import time

import pytest

from tasks import engine
from tasks.journal import Command
from tasks.models import TaskResult, TaskState
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
from tests.workers import journal_frames, process_running, wait_for

pytestmark = pytest.mark.usefixtures("data_dir", "send_calls")


# --- Cancellation --------------------------------------------------------------------------


def test_cancel_pending_task_finishes_it_at_once(
    engine_instance, send_calls, django_capture_on_commit_callbacks
):
    task = make(engine_instance, X("build:a"))
    successor = make(engine_instance, X("build:a"))
    with django_capture_on_commit_callbacks(execute=True):
        canceled = engine.cancel_task(task, by="alice")
    assert (canceled.state, canceled.result) == (TaskState.FINISHED, TaskResult.CANCELED)
    task = fresh(task)
    assert (task.state, task.result, task.error, task.cancel_requested_by) == (
        TaskState.FINISHED,
        TaskResult.CANCELED,
        "canceled by alice",
        "alice",
    )
    assert task.finished_at is not None
    frames = journal_frames(task)
    assert frames[0] == (Command.LOG, b"30:Task canceled by alice before it started")
    assert frames[1:] == failure_frames(task, "canceled by alice")
    assert frames[-1] == (Command.LOG, b"20:Task failed: canceled by alice")
    assert send_calls == [successor.pk]
    assert engine.claim(str(task.pk)) is None


def test_cancel_running_task_only_records_the_request(engine_instance, send_calls):
    task = make(engine_instance, X("build:a"), state=TaskState.RUNNING)
    make(engine_instance, X("build:a"))
    send_calls.clear()
    returned = engine.cancel_task(task, by="bob")
    assert returned.state == TaskState.RUNNING
    after = fresh(task)
    assert (after.state, after.result, after.error, after.cancel_requested_by) == (
        TaskState.RUNNING,
        TaskResult.UNKNOWN,
        "",
        "bob",
    )
    assert after.finished_at is None
    assert not task.journal_path.exists()
    assert send_calls == []


@pytest.mark.parametrize("result", [TaskResult.SUCCESS, TaskResult.CANCELED])
def test_cancel_finished_task_is_refused(engine_instance, result):
    task = make(engine_instance, state=TaskState.FINISHED, result=result)
    with pytest.raises(engine.TaskNotCancellable, match=f"task {task.pk} is already finished"):
        engine.cancel_task(task, by="alice")
    assert fresh(task).cancel_requested_by == ""


@pytest.mark.django_db(transaction=True)
def test_cancel_running_execute_kills_its_command(engine_instance, tmp_path):
    child = tmp_path / "child"
    task = make(engine_instance, name=SHELL, message=f"sleep 60 & echo $! > {child}; sleep 30")
    thread, outcome = in_thread(engine.execute, str(task.pk))
    try:
        group = wait_command_started(task)
        wait_for(lambda: child.exists() and child.read_text().strip(), message="the child")
        start = time.monotonic()
        engine.cancel_task(task, by="carol")
        thread.join(timeout=10)
        assert not thread.is_alive(), "execute did not stop after the cancellation"
        assert time.monotonic() - start < 5
    finally:
        if thread.is_alive():
            kill_process_group(wait_command_started(task))
            thread.join(timeout=10)
    assert outcome == {"value": True}
    task = fresh(task)
    assert (task.state, task.result, task.error) == (
        TaskState.FINISHED,
        TaskResult.CANCELED,
        "canceled by carol",
    )
    assert task.process_group is None
    assert journal_frames(task)[-1] == (Command.LOG, b"20:Task failed: canceled by carol")
    assert len(end_frames(task)) == 1
    assert not process_group_alive(group)
    assert not process_running(int(child.read_text()))

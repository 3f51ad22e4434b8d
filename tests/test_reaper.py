"""tasks.engine's reaper: running tasks whose worker went silent are failed (or canceled) and
their process groups killed on this host.

No Celery worker here (see test_engine_e2e.py for those): engine functions are called
directly and `tasks.engine.send` is replaced by a recorder of the task ids it is given
(`send_calls`).
"""

import socket
import subprocess
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks import engine
from tasks.journal import Command
from tasks.models import Task, TaskResult, TaskState
from tasks.runner import JournalWriter, kill_process_group, process_group_alive
from tests.engine_helpers import X, end_frames, failure_frames, fresh, make
from tests.workers import journal_frames

pytestmark = pytest.mark.usefixtures("data_dir", "send_calls")


# --- Reaper --------------------------------------------------------------------------------


@pytest.fixture
def heartbeat_timeout(settings) -> float:
    settings.FATBUILDR_TASK_HEARTBEAT_TIMEOUT = 60
    return 60


def running_task(instance, *locks, beat_ago: float, **fields) -> Task:
    task = make(instance, *locks, state=TaskState.RUNNING)
    fields.setdefault("heartbeat_at", timezone.now() - timedelta(seconds=beat_ago))
    Task.objects.filter(pk=task.pk).update(**fields)
    return fresh(task)


def test_reaper_fails_a_running_task_whose_worker_went_silent(
    engine_instance, send_calls, heartbeat_timeout
):
    lost = running_task(engine_instance, X("build:a"), beat_ago=120, process_group=4242)
    successor = make(engine_instance, X("build:a"))
    lost.journal_path.parent.mkdir(parents=True)
    with JournalWriter(lost.journal_path) as journal:
        journal.log("Starting task")
    send_calls.clear()
    assert [task.pk for task in engine.reap_lost_tasks()] == [lost.pk]
    lost = fresh(lost)
    assert (lost.state, lost.result, lost.error) == (
        TaskState.FINISHED,
        TaskResult.FAILED,
        "worker lost",
    )
    assert lost.finished_at is not None and lost.process_group is None
    assert journal_frames(lost) == [
        (Command.LOG, b"20:Starting task"),
        *failure_frames(lost, "worker lost"),
    ]
    assert send_calls == [successor.pk]
    assert engine.reap_lost_tasks() == []
    assert len(end_frames(lost)) == 1


def test_reaper_leaves_tasks_with_a_fresh_heartbeat_and_other_states(
    engine_instance, send_calls, heartbeat_timeout
):
    alive = running_task(engine_instance, X("build:a"), beat_ago=5)
    old = timezone.now() - timedelta(hours=1)
    pending = make(engine_instance, X("build:b"))
    Task.objects.filter(pk=pending.pk).update(heartbeat_at=old)
    finished = make(engine_instance, state=TaskState.FINISHED)
    Task.objects.filter(pk=finished.pk).update(heartbeat_at=old)
    make(engine_instance, X("build:a"))
    send_calls.clear()
    assert engine.reap_lost_tasks() == []
    assert (fresh(alive).state, fresh(alive).result) == (TaskState.RUNNING, TaskResult.UNKNOWN)
    assert fresh(pending).state == TaskState.PENDING
    assert fresh(finished).result == TaskResult.SUCCESS
    assert not alive.journal_path.exists()
    assert send_calls == []


def test_heartbeats_and_the_reaper_read_the_database_clock_not_the_hosts(
    engine_instance, send_calls, heartbeat_timeout, monkeypatch
):
    """A reaper host whose clock runs an hour ahead (or a worker's behind) takes no live
    task for lost: both sides date heartbeats with the database's clock."""
    task = engine.claim(make(engine_instance).pk)
    ahead = timezone.now() + timedelta(hours=1)
    monkeypatch.setattr(timezone, "now", lambda: ahead)
    assert engine.reap_lost_tasks() == []
    assert fresh(task).state == TaskState.RUNNING


def test_reaper_ends_a_lost_task_whose_cancellation_was_requested_as_canceled(
    engine_instance, heartbeat_timeout
):
    lost = running_task(engine_instance, beat_ago=120, cancel_requested_by="alice")
    engine.reap_lost_tasks()
    lost = fresh(lost)
    assert (lost.state, lost.result) == (TaskState.FINISHED, TaskResult.CANCELED)
    assert journal_frames(lost)[-1][1].startswith(b"20:Task failed")


@pytest.mark.parametrize(("here", "killed"), [(True, True), (False, False)])
def test_reaper_kills_the_process_group_of_a_lost_worker_of_this_host(
    engine_instance, heartbeat_timeout, here, killed
):
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        host = socket.gethostname() if here else f"not-{socket.gethostname()}"
        lost = running_task(
            engine_instance, beat_ago=120, worker=f"{host}:999999", process_group=process.pid
        )
        assert [task.pk for task in engine.reap_lost_tasks()] == [lost.pk]
        if killed:
            assert process.wait(timeout=5) < 0
            assert not process_group_alive(process.pid)
        else:
            time.sleep(0.2)
            assert process.poll() is None, "a process of another host's pid was killed"
    finally:
        if process.poll() is None:
            kill_process_group(process.pid)
        process.wait()

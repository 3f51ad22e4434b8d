"""tasks.engine scheduling: which pending task its locks block, the guarded claim, submission
and the order of submissions across transactions.

No Celery worker here (see test_engine_e2e.py for those): engine functions are called
directly and `tasks.engine.send` is replaced by a recorder of the task ids it is given
(`send_calls`).
"""

import os
import socket
import threading
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction

from tasks import engine
from tasks.models import Task, TaskLock, TaskResult, TaskState
from tests.engine_helpers import S, X, fresh, in_thread, make
from tests.factories import TaskFactory
from tests.task_handlers import NOOP

pytestmark = pytest.mark.usefixtures("data_dir", "send_calls")


# --- Scheduling: is_blocked ----------------------------------------------------------------


def test_tasks_without_locks_are_never_blocked(engine_instance):
    make(engine_instance, X("build:a"), state=TaskState.RUNNING)
    make(engine_instance, X("build:a"))
    free = make(engine_instance)
    assert engine.is_blocked(free) is False


@pytest.mark.parametrize("older_state", [TaskState.PENDING, TaskState.RUNNING])
def test_exclusive_waits_for_an_older_exclusive(engine_instance, older_state):
    make(engine_instance, X("build:a"), state=older_state)
    assert engine.is_blocked(make(engine_instance, X("build:a"))) is True


@pytest.mark.parametrize("older_state", [TaskState.PENDING, TaskState.RUNNING])
def test_shared_locks_run_together(engine_instance, older_state):
    make(engine_instance, S("keyring:a"), state=older_state)
    make(engine_instance, S("keyring:a"), state=older_state)
    assert engine.is_blocked(make(engine_instance, S("keyring:a"))) is False


@pytest.mark.parametrize("older_state", [TaskState.PENDING, TaskState.RUNNING])
def test_exclusive_after_shared_waits(engine_instance, older_state):
    make(engine_instance, S("keyring:a"), state=older_state)
    assert engine.is_blocked(make(engine_instance, X("keyring:a"))) is True


@pytest.mark.parametrize("older_state", [TaskState.PENDING, TaskState.RUNNING])
def test_shared_after_an_exclusive_waits_fifo(engine_instance, older_state):
    """A shared lock does not overtake an exclusive one queued before it."""
    make(engine_instance, S("keyring:a"), state=TaskState.RUNNING)
    make(engine_instance, X("keyring:a"), state=older_state)
    assert engine.is_blocked(make(engine_instance, S("keyring:a"))) is True


@pytest.mark.parametrize("result", [TaskResult.SUCCESS, TaskResult.FAILED, TaskResult.CANCELED])
def test_finished_predecessors_do_not_block(engine_instance, result):
    make(engine_instance, X("build:a"), state=TaskState.FINISHED, result=result)
    assert engine.is_blocked(make(engine_instance, X("build:a"))) is False


def test_canceled_pending_predecessor_does_not_block(engine_instance):
    older = make(engine_instance, X("build:a"))
    task = make(engine_instance, X("build:a"))
    assert engine.is_blocked(task) is True
    engine.cancel_task(older, by="alice")
    assert engine.is_blocked(task) is False


def test_different_resources_do_not_block(engine_instance):
    make(engine_instance, X("build:a"), state=TaskState.RUNNING)
    make(engine_instance, X("build:b"))
    make(engine_instance, X("build:a"), X("build:b"), state=TaskState.FINISHED)
    assert engine.is_blocked(make(engine_instance, X("build:c"), S("keyring:a"))) is False


def test_one_conflicting_lock_among_several_blocks(engine_instance):
    make(engine_instance, X("build:b"), state=TaskState.RUNNING)
    assert engine.is_blocked(make(engine_instance, X("build:a"), S("build:b"))) is True


def test_newer_tasks_do_not_block_older_pending_ones(engine_instance):
    older = make(engine_instance, X("build:a"))
    make(engine_instance, X("build:a"))
    make(engine_instance, S("build:a"))
    assert engine.is_blocked(older) is False


def test_queue_order_strictly_increases_in_insertion_order(engine_instance):
    tasks = [make(engine_instance) for _ in range(3)] + [TaskFactory(instance=engine_instance)]
    tasks += [make(engine_instance, X("build:a"))]
    orders = [task.queue_order for task in tasks]
    assert all(isinstance(order, int) for order in orders)
    assert orders == sorted(set(orders)), orders
    assert orders == [fresh(task).queue_order for task in tasks]
    assert list(Task.objects.values_list("id", flat=True)) == [task.pk for task in tasks]


# --- Scheduling: claim ---------------------------------------------------------------------


def test_claim_is_a_guarded_transition(engine_instance):
    task = make(engine_instance, X("build:a"))
    claimed = engine.claim(str(task.pk))
    assert claimed is not None and claimed.pk == task.pk
    task = fresh(task)
    assert task.state == TaskState.RUNNING
    assert task.worker == engine.worker_id() == f"{socket.gethostname()}:{os.getpid()}"
    assert task.started_at is not None and task.heartbeat_at is not None
    assert engine.claim(str(task.pk)) is None
    assert fresh(task).started_at == task.started_at


@pytest.mark.parametrize("state", [TaskState.RUNNING, TaskState.FINISHED])
def test_claim_of_a_started_or_finished_task_is_none(engine_instance, state):
    task = make(engine_instance, state=state)
    assert engine.claim(str(task.pk)) is None
    assert fresh(task).state == state
    assert fresh(task).worker == task.worker


def test_claim_of_an_unknown_task_is_none(engine_instance):
    assert engine.claim(str(uuid.uuid4())) is None


def test_claim_of_a_blocked_task_is_none_and_leaves_it_pending(engine_instance):
    make(engine_instance, X("build:a"), state=TaskState.RUNNING)
    task = make(engine_instance, X("build:a"))
    assert engine.claim(str(task.pk)) is None
    assert (fresh(task).state, fresh(task).worker) == (TaskState.PENDING, "")


# --- Submission ----------------------------------------------------------------------------


def test_submit_creates_the_row_and_its_locks_and_sends_once_after_commit(
    engine_instance, send_calls, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        task = engine.submit(
            engine_instance, NOOP, user="alice", locks=[X("build:a"), S("keyring:a")], message="hi"
        )
        assert send_calls == [], "sent before the commit"
    assert len(callbacks) == 1
    assert send_calls == [task.pk]
    task = fresh(task)
    assert (task.state, task.result, task.user, task.message) == (
        TaskState.PENDING,
        TaskResult.UNKNOWN,
        "alice",
        "hi",
    )
    assert task.dispatch_count == 1 and task.dispatched_at is not None
    assert task.place == str(Path(settings.FATBUILDR_DATA_DIR) / "workspaces/engine" / str(task.pk))
    assert set(task.locks.values_list("resource", "exclusive")) == {
        ("build:a", True),
        ("keyring:a", False),
    }


def test_submit_sends_nothing_when_the_transaction_rolls_back(
    engine_instance, send_calls, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        engine.submit(engine_instance, NOOP, user="alice", locks=[X("build:a")])
        raise RuntimeError("rollback")
    assert callbacks == [] and send_calls == []
    assert not Task.objects.exists() and not TaskLock.objects.exists()


# --- Ordering across transactions ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_exclusive_lock_is_never_held_twice(engine_instance):
    inserted, release = threading.Event(), threading.Event()

    def slow_submission():
        with transaction.atomic():
            task = engine.submit(engine_instance, NOOP, user="slow", locks=[X("build:a")])
            inserted.set()
            release.wait(10)
        return task

    thread, outcome = in_thread(slow_submission)
    try:
        assert inserted.wait(10)
        newer = engine.submit(engine_instance, NOOP, user="fast", locks=[X("build:a")])
        assert engine.claim(str(newer.pk)) is not None  # the older one is not visible yet
    finally:
        release.set()
        thread.join(timeout=10)
    older = outcome["value"]
    assert older.queue_order < newer.queue_order
    assert engine.claim(str(older.pk)) is None, "two running tasks hold build:a exclusively"

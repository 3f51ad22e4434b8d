"""tasks.engine's reconciler: pending tasks whose message is overdue are sent again, with a
backoff per task, never starved by blocked ones.

No Celery worker here (see test_engine_e2e.py for those): engine functions are called
directly and `tasks.engine.send` is replaced by a recorder of the task ids it is given
(`send_calls`).
"""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from tasks import engine
from tasks.models import Task, TaskLock, TaskState
from tests.engine_helpers import X, fresh, make
from tests.task_handlers import NOOP

pytestmark = pytest.mark.usefixtures("data_dir", "send_calls")


# --- Reconciler ----------------------------------------------------------------------------


@pytest.fixture
def redispatch_after(settings) -> float:
    settings.FATBUILDR_TASK_REDISPATCH_AFTER = 60
    return 60


def pending_task(instance, *locks, sent_ago: float, count: int = 1) -> Task:
    """A pending task whose message was sent *sent_ago* seconds ago, for the *count*th time
    (the reconciler waits REDISPATCH_AFTER x 2^(count - 1), at most x 16, before the next)."""
    task = make(instance, *locks)
    sent_at = timezone.now() - timedelta(seconds=sent_ago)
    backoff = settings.FATBUILDR_TASK_REDISPATCH_AFTER * 2 ** min(count - 1, 4)
    Task.objects.filter(pk=task.pk).update(
        dispatched_at=sent_at,
        dispatch_count=count,
        redispatch_at=sent_at + timedelta(seconds=backoff),
    )
    return fresh(task)


def test_reconciler_resends_overdue_pending_tasks(engine_instance, send_calls, redispatch_after):
    overdue = pending_task(engine_instance, X("build:a"), sent_ago=120)
    pending_task(engine_instance, X("build:b"), sent_ago=10)  # not overdue yet
    before = timezone.now()
    send_calls.clear()
    assert [task.pk for task in engine.redispatch_pending()] == [overdue.pk]
    assert send_calls == [overdue.pk]
    after = fresh(overdue)
    assert after.dispatch_count == 2 and after.dispatched_at >= before
    send_calls.clear()
    assert engine.redispatch_pending() == [] and send_calls == []


def test_reconciler_skips_blocked_tasks(engine_instance, send_calls, redispatch_after):
    make(engine_instance, X("build:a"), state=TaskState.RUNNING)
    blocked = pending_task(engine_instance, X("build:a"), sent_ago=600)
    send_calls.clear()
    assert engine.redispatch_pending() == [] and send_calls == []
    assert fresh(blocked).dispatch_count == 1


@pytest.mark.parametrize(
    ("count", "sent_ago", "expected"),
    [
        (2, 100, False),  # backoff 120 s
        (2, 130, True),
        (3, 200, False),  # backoff 240 s
        (3, 250, True),
        (10, 900, False),  # backoff capped at 16 x 60 = 960 s
        (10, 1000, True),
    ],
)
def test_reconciler_backs_off_per_task(
    engine_instance, send_calls, redispatch_after, count, sent_ago, expected
):
    task = pending_task(engine_instance, sent_ago=sent_ago, count=count)
    send_calls.clear()
    assert ([t.pk for t in engine.redispatch_pending()] == [task.pk]) is expected
    assert send_calls == ([task.pk] if expected else [])
    assert fresh(task).dispatch_count == count + expected


def test_reconciler_never_touches_running_or_finished_tasks(
    engine_instance, send_calls, redispatch_after
):
    old = timezone.now() - timedelta(hours=1)
    running = make(engine_instance, state=TaskState.RUNNING)
    finished = make(engine_instance, state=TaskState.FINISHED)
    Task.objects.filter(pk__in=[running.pk, finished.pk]).update(
        dispatched_at=old, redispatch_at=old
    )
    send_calls.clear()
    assert engine.redispatch_pending() == [] and send_calls == []
    for task in (running, finished):
        assert (fresh(task).dispatched_at, fresh(task).dispatch_count) == (old, 1)


def test_reconciler_is_not_starved_by_many_blocked_tasks(
    engine_instance, send_calls, redispatch_after
):
    make(engine_instance, X("build:busy"), state=TaskState.RUNNING)
    old = timezone.now() - timedelta(hours=1)
    queued = Task.objects.bulk_create(
        Task(
            instance=engine_instance, name=NOOP, user="tester", dispatched_at=old, redispatch_at=old
        )
        for _ in range(1000)
    )
    TaskLock.objects.bulk_create(TaskLock(task=task, resource="build:busy") for task in queued)
    lost = pending_task(engine_instance, X("build:free"), sent_ago=3600)
    send_calls.clear()
    engine.redispatch_pending()
    assert send_calls == [lost.pk]

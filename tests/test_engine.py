"""The task engine in-process: scheduling, submission, execution, cancellation, recovery.

No Celery worker here (see test_engine_e2e.py for those): engine functions are called
directly and `tasks.engine.send` is replaced by a recorder of the task ids it is given.
Tests of `execute` use a transactional database: its TaskMonitor thread has its own
connection and must see the committed rows.
"""

import logging
import os
import socket
import subprocess
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.policy import _load
from tasks import engine
from tasks.engine import Lock
from tasks.journal import Command, is_end_frame
from tasks.models import Task, TaskLock, TaskResult, TaskState
from tasks.runner import JournalWriter, kill_process_group, process_group_alive
from tests.factories import InstanceFactory, TaskFactory
from tests.task_handlers import NOOP, SHELL
from tests.workers import journal_frames, process_running, wait_for

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _private_data_dir(settings, tmp_path):
    settings.FATBUILDR_DATA_DIR = tmp_path / "data"


@pytest.fixture(autouse=True)
def sent(monkeypatch) -> list:
    """Task ids given to `engine.send`, in order (nothing reaches Redis)."""
    messages: list = []
    monkeypatch.setattr(engine, "send", messages.append)
    return messages


@pytest.fixture
def instance(db):
    return InstanceFactory(id="engine")


@pytest.fixture
def temporary_handler():
    """register(name, function): a handler that exists for this test only."""
    names: list[str] = []

    def register(name: str, function) -> None:
        engine.handler(name)(function)
        names.append(name)

    yield register
    for name in names:
        engine._handlers.pop(name, None)


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


# --- Scheduling: is_blocked ----------------------------------------------------------------


def test_tasks_without_locks_are_never_blocked(instance):
    make(instance, X("build:a"), state=TaskState.RUNNING)
    make(instance, X("build:a"))
    free = make(instance)
    assert engine.is_blocked(free) is False


@pytest.mark.parametrize("older_state", [TaskState.PENDING, TaskState.RUNNING])
def test_exclusive_waits_for_an_older_exclusive(instance, older_state):
    make(instance, X("build:a"), state=older_state)
    assert engine.is_blocked(make(instance, X("build:a"))) is True


@pytest.mark.parametrize("older_state", [TaskState.PENDING, TaskState.RUNNING])
def test_shared_locks_run_together(instance, older_state):
    make(instance, S("keyring:a"), state=older_state)
    make(instance, S("keyring:a"), state=older_state)
    assert engine.is_blocked(make(instance, S("keyring:a"))) is False


@pytest.mark.parametrize("older_state", [TaskState.PENDING, TaskState.RUNNING])
def test_exclusive_after_shared_waits(instance, older_state):
    make(instance, S("keyring:a"), state=older_state)
    assert engine.is_blocked(make(instance, X("keyring:a"))) is True


@pytest.mark.parametrize("older_state", [TaskState.PENDING, TaskState.RUNNING])
def test_shared_after_an_exclusive_waits_fifo(instance, older_state):
    """A shared lock does not overtake an exclusive one queued before it."""
    make(instance, S("keyring:a"), state=TaskState.RUNNING)
    make(instance, X("keyring:a"), state=older_state)
    assert engine.is_blocked(make(instance, S("keyring:a"))) is True


@pytest.mark.parametrize("result", [TaskResult.SUCCESS, TaskResult.FAILED, TaskResult.CANCELED])
def test_finished_predecessors_do_not_block(instance, result):
    make(instance, X("build:a"), state=TaskState.FINISHED, result=result)
    assert engine.is_blocked(make(instance, X("build:a"))) is False


def test_canceled_pending_predecessor_does_not_block(instance):
    older = make(instance, X("build:a"))
    task = make(instance, X("build:a"))
    assert engine.is_blocked(task) is True
    engine.cancel_task(older, by="alice")
    assert engine.is_blocked(task) is False


def test_different_resources_do_not_block(instance):
    make(instance, X("build:a"), state=TaskState.RUNNING)
    make(instance, X("build:b"))
    make(instance, X("build:a"), X("build:b"), state=TaskState.FINISHED)
    assert engine.is_blocked(make(instance, X("build:c"), S("keyring:a"))) is False


def test_one_conflicting_lock_among_several_blocks(instance):
    make(instance, X("build:b"), state=TaskState.RUNNING)
    assert engine.is_blocked(make(instance, X("build:a"), S("build:b"))) is True


def test_newer_tasks_do_not_block_older_pending_ones(instance):
    older = make(instance, X("build:a"))
    make(instance, X("build:a"))
    make(instance, S("build:a"))
    assert engine.is_blocked(older) is False


def test_queue_order_strictly_increases_in_insertion_order(instance):
    tasks = [make(instance) for _ in range(3)] + [TaskFactory(instance=instance)]
    tasks += [make(instance, X("build:a"))]
    orders = [task.queue_order for task in tasks]
    assert all(isinstance(order, int) for order in orders)
    assert orders == sorted(set(orders)), orders
    assert orders == [fresh(task).queue_order for task in tasks]
    assert list(Task.objects.values_list("id", flat=True)) == [task.pk for task in tasks]


# --- Scheduling: claim ---------------------------------------------------------------------


def test_claim_is_a_guarded_transition(instance):
    task = make(instance, X("build:a"))
    claimed = engine.claim(str(task.pk))
    assert claimed is not None and claimed.pk == task.pk
    task = fresh(task)
    assert task.state == TaskState.RUNNING
    assert task.worker == engine.worker_id() == f"{socket.gethostname()}:{os.getpid()}"
    assert task.started_at is not None and task.heartbeat_at is not None
    assert engine.claim(str(task.pk)) is None
    assert fresh(task).started_at == task.started_at


@pytest.mark.parametrize("state", [TaskState.RUNNING, TaskState.FINISHED])
def test_claim_of_a_started_or_finished_task_is_none(instance, state):
    task = make(instance, state=state)
    assert engine.claim(str(task.pk)) is None
    assert fresh(task).state == state
    assert fresh(task).worker == task.worker


def test_claim_of_an_unknown_task_is_none(instance):
    assert engine.claim(str(uuid.uuid4())) is None


def test_claim_of_a_blocked_task_is_none_and_leaves_it_pending(instance):
    make(instance, X("build:a"), state=TaskState.RUNNING)
    task = make(instance, X("build:a"))
    assert engine.claim(str(task.pk)) is None
    assert (fresh(task).state, fresh(task).worker) == (TaskState.PENDING, "")


# --- Submission ----------------------------------------------------------------------------


def test_submit_creates_the_row_and_its_locks_and_sends_once_after_commit(
    instance, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        task = engine.submit(
            instance, NOOP, user="alice", locks=[X("build:a"), S("keyring:a")], message="hi"
        )
        assert sent == [], "sent before the commit"
    assert len(callbacks) == 1
    assert sent == [task.pk]
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
    instance, sent, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        engine.submit(instance, NOOP, user="alice", locks=[X("build:a")])
        raise RuntimeError("rollback")
    assert callbacks == [] and sent == []
    assert not Task.objects.exists() and not TaskLock.objects.exists()


# --- Execution -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_execute_success_journal(instance):
    task = make(instance, name=SHELL, message="echo hello; echo oops >&2")
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
def test_execute_failure_journal(instance):
    task = make(instance, name=SHELL, message="echo bad; exit 3")
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
    instance, temporary_handler
):
    def boom(context):
        context.log("about to break")
        raise ValueError("boom")

    temporary_handler("test boom", boom)
    task = make(instance, name="test boom")
    assert engine.execute(str(task.pk)) is True
    task = fresh(task)
    reason = "internal error: ValueError: boom"
    assert (task.state, task.result, task.error) == (TaskState.FINISHED, TaskResult.FAILED, reason)
    frames = journal_frames(task)
    assert (Command.LOG, b"20:about to break") in frames
    assert frames[-2:] == failure_frames(task, reason)


@pytest.mark.django_db(transaction=True)
def test_execute_unknown_task_name_fails_with_no_handler(instance):
    task = make(instance, name="test nobody handles this")
    assert engine.execute(str(task.pk)) is True
    task = fresh(task)
    reason = "no handler for tasks named 'test nobody handles this'"
    assert (task.result, task.error) == (TaskResult.FAILED, reason)
    assert journal_frames(task)[-2:] == failure_frames(task, reason)


@pytest.mark.django_db(transaction=True)
def test_a_handler_log_line_starting_with_task_failed_is_not_an_end_frame(
    instance, temporary_handler
):
    def liar(context):
        context.log("Task failed: not really", logging.WARNING)
        context.journal.log("Task succeeded, or so it says")
        context.run(["sh", "-c", "echo 'Task failed'"])

    temporary_handler("test liar", liar)
    task = make(instance, name="test liar")
    assert engine.execute(str(task.pk)) is True
    frames = journal_frames(task)
    assert end_frames(task) == [(Command.LOG, b"20:Task succeeded")] == frames[-1:]
    logs = [payload for command, payload in frames if command == Command.LOG]
    assert any(b"Task failed: not really" in payload for payload in logs)
    assert any(b"Task succeeded, or so it says" in payload for payload in logs)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("state", [TaskState.RUNNING, TaskState.FINISHED])
def test_execute_of_a_task_not_pending_does_nothing(instance, sent, state):
    task = make(instance, X("build:a"), name=SHELL, message="echo ran", state=state)
    make(instance, X("build:a"))
    sent.clear()
    assert engine.execute(str(task.pk)) is False
    assert not task.journal_path.exists()
    after = fresh(task)
    assert (after.state, after.result, after.worker) == (task.state, task.result, task.worker)
    assert sent == []


@pytest.mark.django_db(transaction=True)
def test_execute_dispatches_the_next_task_on_the_same_resource(instance, sent):
    first = make(instance, X("build:a"), name=SHELL, message="true")
    second = make(instance, X("build:a"))
    make(instance, X("build:a"))  # behind the second: still blocked
    make(instance, X("build:other"))  # not waiting for this resource
    sent.clear()
    before = fresh(second)
    assert engine.execute(str(first.pk)) is True
    assert sent == [second.pk]
    after = fresh(second)
    assert after.dispatch_count == before.dispatch_count + 1
    assert after.dispatched_at > before.dispatched_at
    assert engine.execute(str(second.pk)) is True
    assert fresh(second).result == TaskResult.SUCCESS


# --- Cancellation --------------------------------------------------------------------------


def test_cancel_pending_task_finishes_it_at_once(
    instance, sent, django_capture_on_commit_callbacks
):
    task = make(instance, X("build:a"))
    successor = make(instance, X("build:a"))
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
    assert sent == [successor.pk]
    assert engine.claim(str(task.pk)) is None


def test_cancel_running_task_only_records_the_request(instance, sent):
    task = make(instance, X("build:a"), state=TaskState.RUNNING)
    make(instance, X("build:a"))
    sent.clear()
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
    assert sent == []


@pytest.mark.parametrize("result", [TaskResult.SUCCESS, TaskResult.CANCELED])
def test_cancel_finished_task_is_refused(instance, result):
    task = make(instance, state=TaskState.FINISHED, result=result)
    with pytest.raises(engine.TaskNotCancellable, match=f"task {task.pk} is already finished"):
        engine.cancel_task(task, by="alice")
    assert fresh(task).cancel_requested_by == ""


@pytest.mark.django_db(transaction=True)
def test_cancel_running_execute_kills_its_command(instance, tmp_path):
    child = tmp_path / "child"
    task = make(instance, name=SHELL, message=f"sleep 60 & echo $! > {child}; sleep 30")
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


# --- Cancellation over the API -------------------------------------------------------------


@pytest.fixture
def vendor_policy(settings):
    settings.FATBUILDR_POLICY = REPO_ROOT / "accounts" / "policy.acl"
    _load.cache_clear()
    yield
    _load.cache_clear()


@pytest.fixture
def builder_client(default_instance, multi_mode, vendor_policy, fatbuildr_group_member, client_for):
    """A member of group "fatbuildr": the `users` role of the vendor policy (cancel-task)."""
    return client_for(default_instance, fatbuildr_group_member.username)


def cancel_url(task_id) -> str:
    return f"/default/tasks/{task_id}/cancel"


def test_api_cancel_pending_task_is_200_and_finished(default_instance, builder_client):
    task = make(default_instance)
    response = builder_client.post(cancel_url(task.pk))
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["state"], body["result"]) == (str(task.pk), "finished", "canceled")
    assert (fresh(task).result, fresh(task).cancel_requested_by) == (TaskResult.CANCELED, "builder")
    assert journal_frames(task)[-1] == (Command.LOG, b"20:Task failed: canceled by builder")


def test_api_cancel_running_task_is_202_and_still_running(default_instance, builder_client):
    task = make(default_instance, state=TaskState.RUNNING)
    response = builder_client.post(cancel_url(task.pk))
    assert response.status_code == 202, response.content
    assert (response.json()["state"], response.json()["result"]) == ("running", "unknown")
    assert (fresh(task).state, fresh(task).cancel_requested_by) == (TaskState.RUNNING, "builder")


def test_api_cancel_finished_task_is_409_error_object(default_instance, builder_client):
    task = make(default_instance, state=TaskState.FINISHED)
    response = builder_client.post(cancel_url(task.pk))
    assert response.status_code == 409
    assert response.json() == {"error": f"task {task.pk} is already finished"}


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_api_cancel_unknown_task_is_404_error_object(default_instance, builder_client, task_id):
    response = builder_client.post(cancel_url(task_id))
    assert response.status_code == 404
    assert response.json() == {"error": f"Unable to find task {task_id} on server"}


def test_api_cancel_task_of_another_instance_is_404(default_instance, builder_client):
    task = make(InstanceFactory(id="other"))
    response = builder_client.post(cancel_url(task.pk))
    assert response.status_code == 404
    assert fresh(task).state == TaskState.PENDING


def test_api_cancel_needs_the_cancel_task_action(
    default_instance, multi_mode, vendor_policy, anonymous_client, client_for
):
    task = make(default_instance)
    response = anonymous_client.post(cancel_url(task.pk))
    assert response.status_code == 403
    assert response.json() == {
        "error": "anonymous role is not allowed to perform action cancel-task"
    }
    response = client_for(default_instance, "mallory").post(cancel_url(task.pk))
    assert response.status_code == 403
    assert response.json() == {"error": "user mallory is not allowed to perform action cancel-task"}
    task = fresh(task)
    assert (task.state, task.cancel_requested_by) == (TaskState.PENDING, "")
    assert not task.journal_path.exists()


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


def test_reaper_fails_a_running_task_whose_worker_went_silent(instance, sent, heartbeat_timeout):
    lost = running_task(instance, X("build:a"), beat_ago=120, process_group=4242)
    successor = make(instance, X("build:a"))
    lost.journal_path.parent.mkdir(parents=True)
    with JournalWriter(lost.journal_path) as journal:
        journal.log("Starting task")
    sent.clear()
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
    assert sent == [successor.pk]
    assert engine.reap_lost_tasks() == []
    assert len(end_frames(lost)) == 1


def test_reaper_leaves_tasks_with_a_fresh_heartbeat_and_other_states(
    instance, sent, heartbeat_timeout
):
    alive = running_task(instance, X("build:a"), beat_ago=5)
    old = timezone.now() - timedelta(hours=1)
    pending = make(instance, X("build:b"))
    Task.objects.filter(pk=pending.pk).update(heartbeat_at=old)
    finished = make(instance, state=TaskState.FINISHED)
    Task.objects.filter(pk=finished.pk).update(heartbeat_at=old)
    make(instance, X("build:a"))
    sent.clear()
    assert engine.reap_lost_tasks() == []
    assert (fresh(alive).state, fresh(alive).result) == (TaskState.RUNNING, TaskResult.UNKNOWN)
    assert fresh(pending).state == TaskState.PENDING
    assert fresh(finished).result == TaskResult.SUCCESS
    assert not alive.journal_path.exists()
    assert sent == []


def test_heartbeats_and_the_reaper_read_the_database_clock_not_the_hosts(
    instance, sent, heartbeat_timeout, monkeypatch
):
    """A reaper host whose clock runs an hour ahead (or a worker's behind) takes no live
    task for lost: both sides date heartbeats with the database's clock."""
    task = engine.claim(make(instance).pk)
    ahead = timezone.now() + timedelta(hours=1)
    monkeypatch.setattr(timezone, "now", lambda: ahead)
    assert engine.reap_lost_tasks() == []
    assert fresh(task).state == TaskState.RUNNING


def test_reaper_ends_a_lost_task_whose_cancellation_was_requested_as_canceled(
    instance, heartbeat_timeout
):
    lost = running_task(instance, beat_ago=120, cancel_requested_by="alice")
    engine.reap_lost_tasks()
    lost = fresh(lost)
    assert (lost.state, lost.result) == (TaskState.FINISHED, TaskResult.CANCELED)
    assert journal_frames(lost)[-1][1].startswith(b"20:Task failed")


@pytest.mark.parametrize(("here", "killed"), [(True, True), (False, False)])
def test_reaper_kills_the_process_group_of_a_lost_worker_of_this_host(
    instance, heartbeat_timeout, here, killed
):
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        host = socket.gethostname() if here else f"not-{socket.gethostname()}"
        lost = running_task(
            instance, beat_ago=120, worker=f"{host}:999999", process_group=process.pid
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


def test_reconciler_resends_overdue_pending_tasks(instance, sent, redispatch_after):
    overdue = pending_task(instance, X("build:a"), sent_ago=120)
    pending_task(instance, X("build:b"), sent_ago=10)  # not overdue yet
    before = timezone.now()
    sent.clear()
    assert [task.pk for task in engine.redispatch_pending()] == [overdue.pk]
    assert sent == [overdue.pk]
    after = fresh(overdue)
    assert after.dispatch_count == 2 and after.dispatched_at >= before
    sent.clear()
    assert engine.redispatch_pending() == [] and sent == []


def test_reconciler_skips_blocked_tasks(instance, sent, redispatch_after):
    make(instance, X("build:a"), state=TaskState.RUNNING)
    blocked = pending_task(instance, X("build:a"), sent_ago=600)
    sent.clear()
    assert engine.redispatch_pending() == [] and sent == []
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
def test_reconciler_backs_off_per_task(instance, sent, redispatch_after, count, sent_ago, expected):
    task = pending_task(instance, sent_ago=sent_ago, count=count)
    sent.clear()
    assert ([t.pk for t in engine.redispatch_pending()] == [task.pk]) is expected
    assert sent == ([task.pk] if expected else [])
    assert fresh(task).dispatch_count == count + expected


def test_reconciler_never_touches_running_or_finished_tasks(instance, sent, redispatch_after):
    old = timezone.now() - timedelta(hours=1)
    running = make(instance, state=TaskState.RUNNING)
    finished = make(instance, state=TaskState.FINISHED)
    Task.objects.filter(pk__in=[running.pk, finished.pk]).update(
        dispatched_at=old, redispatch_at=old
    )
    sent.clear()
    assert engine.redispatch_pending() == [] and sent == []
    for task in (running, finished):
        assert (fresh(task).dispatched_at, fresh(task).dispatch_count) == (old, 1)


def test_reconciler_is_not_starved_by_many_blocked_tasks(instance, sent, redispatch_after):
    make(instance, X("build:busy"), state=TaskState.RUNNING)
    old = timezone.now() - timedelta(hours=1)
    queued = Task.objects.bulk_create(
        Task(instance=instance, name=NOOP, user="tester", dispatched_at=old, redispatch_at=old)
        for _ in range(1000)
    )
    TaskLock.objects.bulk_create(TaskLock(task=task, resource="build:busy") for task in queued)
    lost = pending_task(instance, X("build:free"), sent_ago=3600)
    sent.clear()
    engine.redispatch_pending()
    assert sent == [lost.pk]


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
def test_a_worker_that_lost_its_lease_does_not_overwrite_the_task(instance, temporary_handler):
    temporary_handler("test lease", lambda context: give_up(context.task.pk))
    task = make(instance, name="test lease")
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
def test_a_worker_that_lost_its_lease_stops_its_command(instance):
    task = make(instance, name=SHELL, message="echo started; sleep 30")
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


# --- Ordering across transactions ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_exclusive_lock_is_never_held_twice(instance):
    inserted, release = threading.Event(), threading.Event()

    def slow_submission():
        with transaction.atomic():
            task = engine.submit(instance, NOOP, user="slow", locks=[X("build:a")])
            inserted.set()
            release.wait(10)
        return task

    thread, outcome = in_thread(slow_submission)
    try:
        assert inserted.wait(10)
        newer = engine.submit(instance, NOOP, user="fast", locks=[X("build:a")])
        assert engine.claim(str(newer.pk)) is not None  # the older one is not visible yet
    finally:
        release.set()
        thread.join(timeout=10)
    older = outcome["value"]
    assert older.queue_order < newer.queue_order
    assert engine.claim(str(older.pk)) is None, "two running tasks hold build:a exclusively"


# --- Database connections lost while a task runs -------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_task_survives_its_database_connections_being_dropped(instance, tmp_path):
    started = tmp_path / "started"
    task = make(instance, name=SHELL, message=f"touch {started}; sleep 2")
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

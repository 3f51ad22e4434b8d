"""The task engine with real Celery workers, Redis and PostgreSQL (issue 3 faults included)."""

import os
import time
from pathlib import Path

import pytest
import requests

from tasks import engine
from tasks.journal import HEADER, Command
from tasks.models import Task, TaskResult, TaskState
from tasks.runner import process_group_alive
from tests.task_handlers import SHELL, SHELL_IN_TRANSACTION
from tests.workers import (
    journal_frames,
    journal_text,
    process_running,
    purge_test_queues,
    wait_finished,
    wait_for,
    wait_running,
)

pytestmark = pytest.mark.e2e


def shell(instance, script: str, *locks: str) -> Task:
    return engine.submit(
        instance, SHELL, user="tester", locks=[engine.Lock(lock) for lock in locks], message=script
    )


def interval(path: Path) -> tuple[float, float]:
    start, end = path.read_text().split()
    return float(start), float(end)


def test_task_runs_in_a_worker_and_its_journal_ends_with_success(start_worker, default_instance):
    start_worker()
    task = wait_finished(shell(default_instance, "echo hello"))
    assert (task.state, task.result, task.error) == (TaskState.FINISHED, TaskResult.SUCCESS, "")
    frames = journal_frames(task)
    assert frames[0][0] == Command.LOG and b"Starting task test shell" in frames[0][1]
    assert (Command.LOG, b"20:Running command: sh -c 'echo hello'") in frames
    assert (Command.BYTES, b"hello\n") in frames
    assert frames[-1] == (Command.LOG, b"20:Task succeeded")
    assert all(payload for command, payload in frames if command == Command.BYTES)


def test_failing_command_fails_the_task_with_its_output(start_worker, default_instance):
    start_worker()
    task = wait_finished(shell(default_instance, "echo oops >&2; exit 3"))
    assert task.result == TaskResult.FAILED
    assert "failed with exit code 3" in task.error
    frames = journal_frames(task)
    assert (Command.BYTES, b"oops\n") in frames
    assert frames[-2][1].startswith(f"40:error while running task {task.pk}: command".encode())
    assert frames[-1][1].startswith(b"20:Task failed")


def test_same_message_delivered_twice_runs_once(start_worker, default_instance, tmp_path):
    counter = tmp_path / "runs"
    task = shell(default_instance, f"echo run >> {counter}; sleep 0.5")
    for _ in range(3):
        engine.send(task.pk)
    start_worker(concurrency=2)
    wait_finished(task)
    time.sleep(1)  # Leave time for the duplicates to be consumed.
    assert counter.read_text() == "run\n"
    assert engine.execute(str(task.pk)) is False


def test_journal_streams_live_to_a_watch_client(
    start_worker, default_instance, live_server, tmp_path
):
    start_worker()
    go = tmp_path / "go"
    script = (
        f"echo line1; while [ ! -e {go} ]; do sleep 0.02; done; echo line2; sleep 1; echo line3"
    )
    task = wait_running(shell(default_instance, script))
    url = f"{live_server.url}/default/watch/{task.pk}.journal"
    arrivals: dict[bytes, float] = {}
    buffer = b""
    with requests.get(url, stream=True, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["X-Accel-Buffering"] == "no"
        # Re-framed from small chunks as fatbuildrctl does; single bytes, because a read
        # of n bytes waits for n bytes and would hold back the end of a frame.
        for chunk in response.iter_content(chunk_size=1):
            buffer += chunk
            while len(buffer) >= HEADER.size:
                command, length = HEADER.unpack(buffer[: HEADER.size])
                if len(buffer) < HEADER.size + length:
                    break
                payload, buffer = buffer[HEADER.size : HEADER.size + length], buffer[8 + length :]
                assert command in (Command.LOG, Command.BYTES, Command.RAW_DISABLE)
                assert length or command != Command.BYTES
                arrivals[payload] = time.monotonic()
                if payload == b"line1\n":
                    go_at = time.monotonic()
                    go.touch()
    assert buffer == b""
    assert list(arrivals)[-1] == b"20:Task succeeded"
    # Each line arrived while the task was still running, not all at the end.
    assert arrivals[b"line2\n"] - go_at < 0.9
    assert arrivals[b"line3\n"] - arrivals[b"line2\n"] > 0.8
    assert wait_finished(task).result == TaskResult.SUCCESS


def test_cancel_pending_task_over_the_api(
    start_worker, default_instance, client_with_role, tmp_path
):
    client = client_with_role(default_instance, "view-task", "cancel-task")
    marker = tmp_path / "ran"
    blocker = shell(default_instance, "sleep 30", "resource")
    task = shell(default_instance, f"touch {marker}", "resource")
    response = client.post(f"/default/tasks/{task.pk}/cancel")
    assert response.status_code == 200, response.content
    assert (response.json()["state"], response.json()["result"]) == ("finished", "canceled")
    canceled = Task.objects.get(pk=task.pk)
    assert journal_frames(canceled)[-1] == (Command.LOG, b"20:Task failed: canceled by maintainer")
    engine.cancel_task(blocker, by="tester")
    start_worker()
    time.sleep(1.5)
    assert not marker.exists()
    response = client.post(f"/default/tasks/{task.pk}/cancel")
    assert response.status_code == 409
    assert response.json() == {"error": f"task {task.pk} is already finished"}


def test_cancel_running_task_kills_its_processes(
    start_worker, default_instance, client_with_role, tmp_path
):
    client = client_with_role(default_instance, "view-task", "cancel-task")
    pids = tmp_path / "pids"
    start_worker()
    task = shell(default_instance, f"sleep 60 & echo $$ $! > {pids}; wait")
    wait_for(lambda: pids.exists() and pids.read_text().strip(), message="pids")
    shell_pid, sleep_pid = map(int, pids.read_text().split())
    response = client.post(f"/default/tasks/{task.pk}/cancel")
    assert response.status_code == 202
    assert response.json()["state"] == "running"
    task = wait_finished(task, timeout=10)
    assert (task.result, task.error) == (TaskResult.CANCELED, "canceled by maintainer")
    assert not process_group_alive(shell_pid)
    assert not process_running(sleep_pid)
    assert journal_frames(task)[-1] == (Command.LOG, b"20:Task failed: canceled by maintainer")


@pytest.mark.parametrize("workers", [1, 2], ids=["one-worker-two-processes", "two-workers"])
def test_different_resources_run_in_parallel_same_resource_in_order(
    start_worker, default_instance, tmp_path, workers
):
    """Two pool processes of one worker, or two workers as on two hosts."""
    stamp = "date +%s.%N"

    def timed(name: str, lock: str) -> Task:
        out = tmp_path / name
        return shell(default_instance, f"{stamp} > {out}.tmp; sleep 1; {stamp} >> {out}.tmp; "
                     f"mv {out}.tmp {out}", lock)  # fmt: skip

    # Workers first: a second worker still booting when the first has finished task a
    # would make the two run one after the other.
    for _ in range(workers):
        start_worker(concurrency=2 // workers)
    first, second = timed("a", "build:a"), timed("b", "build:b")
    for task in (first, second):
        assert wait_finished(task).result == TaskResult.SUCCESS
    (a_start, a_end), (b_start, b_end) = interval(tmp_path / "a"), interval(tmp_path / "b")
    assert a_start < b_end and b_start < a_end, "different resources must overlap"

    third, fourth = timed("c", "build:same"), timed("d", "build:same")
    for task in (third, fourth):
        assert wait_finished(task).result == TaskResult.SUCCESS
    (_, c_end), (d_start, _) = interval(tmp_path / "c"), interval(tmp_path / "d")
    assert c_end <= d_start, "the same resource runs one task at a time, in submission order"


def test_a_task_outliving_many_reaper_periods_in_a_transaction_is_never_reaped(
    start_worker, default_instance, settings
):
    """The heartbeat is written on the monitor's own connection, and the handler's commands
    write nothing on the task row, so even a transaction held across a command (as the
    making of a build root once did) cannot hold the heartbeat up."""
    start_worker()
    seconds = 4 * settings.FATBUILDR_TASK_HEARTBEAT_TIMEOUT
    task = engine.submit(
        default_instance, SHELL_IN_TRANSACTION, user="tester", message=f"sleep {seconds:g}"
    )
    task = wait_finished(task, timeout=seconds + 30)
    assert (task.result, task.error) == (TaskResult.SUCCESS, "")
    assert (task.finished_at - task.started_at).total_seconds() >= seconds


def test_worker_killed_during_a_task_ends_it_with_worker_lost(
    start_worker, default_instance, tmp_path
):
    pids = tmp_path / "pids"
    worker = start_worker()
    lost = shell(default_instance, f"echo $$ > {pids}; exec sleep 60", "resource")
    after = shell(default_instance, "echo next", "resource")
    wait_for(lambda: pids.exists() and pids.read_text().strip(), message="pid")
    wait_for(lambda: Task.objects.get(pk=lost.pk).process_group, message="process group")
    command_pid = int(pids.read_text())
    worker.kill()

    start_worker()
    lost = wait_finished(lost, timeout=20)
    assert (lost.result, lost.error) == (TaskResult.FAILED, "worker lost")
    assert journal_frames(lost)[-1] == (Command.LOG, b"20:Task failed: worker lost")
    assert "error while running task" in journal_text(lost)
    assert not process_running(command_pid), "the reaper kills what the lost worker left running"
    assert wait_finished(after, timeout=20).result == TaskResult.SUCCESS


def test_pending_tasks_survive_a_flushed_queue_and_run_exactly_once(
    start_worker, default_instance, tmp_path
):
    runs = tmp_path / "runs"
    tasks = [shell(default_instance, f"echo {n} >> {runs}") for n in range(5)]
    purge_test_queues()  # Every message is lost, as in a broker restart without persistence.
    start_worker(concurrency=2)
    for task in tasks:
        assert wait_finished(task, timeout=30).result == TaskResult.SUCCESS
    time.sleep(2)  # The reconciler may have sent duplicates: they must not run again.
    assert sorted(runs.read_text().split()) == [str(n) for n in range(5)]
    assert all(os.path.exists(task.journal_path) for task in tasks)

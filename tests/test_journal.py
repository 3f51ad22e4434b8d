"""The ConsoleMessage journal format and the watch endpoint (compat §2.7, §3)."""

import io
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tasks.journal import (
    KEEPALIVE_FRAME,
    Command,
    encode_frame,
    follow_journal,
    is_end_frame,
    log_frame,
    read_frames,
)
from tasks.models import Task, TaskResult, TaskState
from tests.factories import TaskFactory

# compat §3.5 test vectors, produced by upstream ConsoleMessage.raw.
VECTOR_LOG = bytes.fromhex("0000000010000000" + "32303a52756e6e696e67206275696c64")
VECTOR_BYTES = bytes.fromhex("0100000003000000" + "68690a")
VECTOR_RAW_ENABLE = bytes.fromhex("0200000000000000")
VECTOR_WINCH = bytes.fromhex("0400000004000000" + "18005000")
VECTOR_END = bytes.fromhex("0000000011000000" + "32303a5461736b20737563636565646564")


def test_frames_match_upstream_vectors():
    assert log_frame("Running build") == VECTOR_LOG
    assert encode_frame(Command.BYTES, b"hi\n") == VECTOR_BYTES
    assert encode_frame(Command.RAW_ENABLE) == VECTOR_RAW_ENABLE
    assert encode_frame(Command.WINCH, bytes.fromhex("18005000")) == VECTOR_WINCH
    assert log_frame("Task succeeded") == VECTOR_END


def test_read_frames_decodes_vectors_and_stops_at_partial_frame():
    journal = VECTOR_LOG + VECTOR_BYTES + VECTOR_END
    handle = io.BytesIO(journal + VECTOR_BYTES[:5])
    frames = list(read_frames(handle))
    assert [(command, payload) for command, payload, _ in frames] == [
        (Command.LOG, b"20:Running build"),
        (Command.BYTES, b"hi\n"),
        (Command.LOG, b"20:Task succeeded"),
    ]
    # The partial frame is left for a later read.
    assert handle.tell() == len(journal)


def test_end_frames():
    assert is_end_frame(Command.LOG, b"20:Task succeeded")
    assert is_end_frame(Command.LOG, b"20:Task failed")
    assert not is_end_frame(Command.LOG, b"20:Running build")
    assert not is_end_frame(Command.BYTES, b"20:Task failed")


def test_keepalive_is_an_empty_frame_that_is_not_bytes():
    assert bytes.fromhex("0300000000000000") == KEEPALIVE_FRAME


def test_follow_stops_after_end_frame(tmp_path: Path):
    path = tmp_path / "task.journal"
    path.write_bytes(VECTOR_LOG + VECTOR_END + log_frame("after the end"))
    streamed = b"".join(follow_journal(path, is_finished=lambda: True))
    assert streamed == VECTOR_LOG + VECTOR_END


def test_follow_sends_keepalives_while_silent(tmp_path: Path):
    path = tmp_path / "task.journal"
    path.write_bytes(VECTOR_LOG)
    checks = iter([False, False, False, True])
    chunks = list(
        follow_journal(
            path,
            is_finished=lambda: next(checks),
            keepalive_interval=0,
            sleep=lambda _: None,
        )
    )
    assert chunks[0] == VECTOR_LOG
    assert KEEPALIVE_FRAME in chunks[1:]


def finished_task(instance, journal: bytes | None) -> Task:
    task = TaskFactory(instance=instance, state=TaskState.FINISHED, result=TaskResult.SUCCESS)
    if journal is not None:
        task.journal_path.parent.mkdir(parents=True, exist_ok=True)
        task.journal_path.write_bytes(journal)
    return task


def test_watch_replays_a_finished_task(anonymous_client, default_instance):
    task = finished_task(default_instance, VECTOR_LOG + VECTOR_BYTES + VECTOR_END)
    response = anonymous_client.get(f"/default/watch/{task.id}.journal")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Accel-Buffering"] == "no"
    assert b"".join(response.streaming_content) == VECTOR_LOG + VECTOR_BYTES + VECTOR_END


def test_watch_unknown_task_is_404(anonymous_client, default_instance):
    response = anonymous_client.get("/default/watch/c8c9935e-44c9-48de-a318-b6060c08b8c8.journal")
    assert response.status_code == 404
    assert response.json() == {
        "error": "Unable to find task c8c9935e-44c9-48de-a318-b6060c08b8c8 on server"
    }


def test_watch_finished_task_without_journal_is_404_not_empty(anonymous_client, default_instance):
    task = finished_task(default_instance, None)
    response = anonymous_client.get(f"/default/watch/{task.id}.journal")
    assert response.status_code == 404
    assert response.json() == {"error": f"No journal available for task {task.id}"}


@pytest.mark.django_db(transaction=True)
def test_watch_follows_a_running_task(anonymous_client, default_instance):
    task = TaskFactory(instance=default_instance, state=TaskState.RUNNING)
    task.journal_path.parent.mkdir(parents=True, exist_ok=True)
    task.journal_path.write_bytes(VECTOR_LOG)

    def run_task():
        time.sleep(0.3)
        with open(task.journal_path, "ab") as journal:
            # A frame written in two pieces must reach the client whole.
            journal.write(VECTOR_BYTES[:4])
            journal.flush()
            time.sleep(0.2)
            journal.write(VECTOR_BYTES[4:] + VECTOR_END)
        Task.objects.filter(pk=task.pk).update(
            state=TaskState.FINISHED, result=TaskResult.SUCCESS, finished_at=datetime.now(UTC)
        )

    writer = threading.Thread(target=run_task)
    writer.start()
    try:
        response = anonymous_client.get(f"/default/watch/{task.id}.journal")
        chunks = list(response.streaming_content)
    finally:
        writer.join()
    assert chunks == [VECTOR_LOG, VECTOR_BYTES, VECTOR_END]

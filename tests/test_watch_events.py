"""The resumable journal streams: `watch/{id}.events` (SSE) and `Range` on `watch/{id}.journal`."""

import json
import logging
import threading
import time
from datetime import UTC, datetime

import pytest

from tasks.api import events as events_module
from tasks.api.events import EventEncoder
from tasks.journal import Command, encode_frame, is_frame_boundary, log_frame
from tasks.models import Task, TaskResult, TaskState
from tests.factories import TaskFactory

LINE1 = log_frame("Running build")
OUTPUT = encode_frame(Command.BYTES, b"compiling\n")
LINE2 = log_frame("Something odd", logging.WARNING)
END = log_frame("Task succeeded")
JOURNAL = LINE1 + OUTPUT + LINE2 + END
OFFSETS = [len(LINE1), len(LINE1 + OUTPUT), len(LINE1 + OUTPUT + LINE2), len(JOURNAL)]


def finished_task(instance, journal: bytes | None = JOURNAL) -> Task:
    task = TaskFactory(instance=instance, state=TaskState.FINISHED, result=TaskResult.SUCCESS)
    if journal is not None:
        task.journal_path.parent.mkdir(parents=True, exist_ok=True)
        task.journal_path.write_bytes(journal)
    return task


def parse_events(body: bytes) -> list[dict]:
    """SSE blocks as dicts: id, event, data (JSON-decoded), comment."""
    events = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        fields: dict = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                fields["comment"] = value
            elif name == "data":
                fields["data"] = json.loads(value)
            else:
                fields[name] = value
        events.append(fields)
    return events


def frames_of(events: list[dict]) -> list[dict]:
    return [e for e in events if e.get("event") in ("log", "output")]


def get_events(client, task, **headers):
    response = client.get(f"/default/watch/{task.id}.events", **headers)
    assert response.status_code == 200, response.content
    return response, parse_events(b"".join(response.streaming_content))


def test_events_replay_a_finished_task_and_end(anonymous_client, default_instance):
    task = finished_task(default_instance)
    response, events = get_events(anonymous_client, task)
    assert response["Content-Type"] == "text/event-stream"
    assert response["X-Accel-Buffering"] == "no"
    assert response["Cache-Control"] == "no-cache"
    assert events[0] == {"retry": "1000"}
    assert frames_of(events) == [
        {
            "id": str(OFFSETS[0]),
            "event": "log",
            "data": {"level": "INFO", "message": "Running build"},
        },
        {"id": str(OFFSETS[1]), "event": "output", "data": "compiling\n"},
        {
            "id": str(OFFSETS[2]),
            "event": "log",
            "data": {"level": "WARNING", "message": "Something odd"},
        },
        {
            "id": str(OFFSETS[3]),
            "event": "log",
            "data": {"level": "INFO", "message": "Task succeeded"},
        },
    ]
    assert events[-1] == {
        "event": "end",
        "data": {
            "message": "Task succeeded",
            "state": "finished",
            "result": "success",
            "error": "",
        },
    }


@pytest.mark.parametrize("resume", range(len(OFFSETS)))
def test_last_event_id_gives_exactly_the_rest(anonymous_client, default_instance, resume):
    task = finished_task(default_instance)
    _, everything = get_events(anonymous_client, task)
    offset = frames_of(everything)[resume]["id"]
    _, rest = get_events(anonymous_client, task, HTTP_LAST_EVENT_ID=offset)
    assert frames_of(rest) == frames_of(everything)[resume + 1 :]
    assert rest[-1]["event"] == "end"


@pytest.mark.parametrize("param", ["from", "offset"])
def test_query_offset_resumes_a_first_connection(anonymous_client, default_instance, param):
    task = finished_task(default_instance)
    response = anonymous_client.get(f"/default/watch/{task.id}.events?{param}={OFFSETS[1]}")
    events = parse_events(b"".join(response.streaming_content))
    assert [e["id"] for e in frames_of(events)] == [str(OFFSETS[2]), str(OFFSETS[3])]


def test_last_event_id_wins_over_the_query(anonymous_client, default_instance):
    task = finished_task(default_instance)
    response = anonymous_client.get(
        f"/default/watch/{task.id}.events?from=0", HTTP_LAST_EVENT_ID=str(OFFSETS[2])
    )
    events = parse_events(b"".join(response.streaming_content))
    assert [e["id"] for e in frames_of(events)] == [str(OFFSETS[3])]


@pytest.mark.parametrize("offset", ["1", "8", str(len(JOURNAL) + 8), "-4", "abc"])
def test_offset_off_a_frame_boundary_is_400(anonymous_client, default_instance, offset):
    task = finished_task(default_instance)
    response = anonymous_client.get(f"/default/watch/{task.id}.events", HTTP_LAST_EVENT_ID=offset)
    assert response.status_code == 400
    assert "error" in response.json()


def test_events_unknown_task_is_404(anonymous_client, default_instance):
    response = anonymous_client.get(
        "/default/watch/c8c9935e-44c9-48de-a318-b6060c08b8c8.events",
        HTTP_ACCEPT="text/event-stream",
    )
    assert response.status_code == 404
    assert response.json() == {
        "error": "Unable to find task c8c9935e-44c9-48de-a318-b6060c08b8c8 on server"
    }


def test_events_finished_task_without_journal_is_404(anonymous_client, default_instance):
    task = finished_task(default_instance, None)
    response = anonymous_client.get(f"/default/watch/{task.id}.events")
    assert response.status_code == 404
    assert response.json() == {"error": f"No journal available for task {task.id}"}


def test_events_as_event_source_asks_them(anonymous_client, default_instance):
    task = finished_task(default_instance)
    _, events = get_events(anonymous_client, task, HTTP_ACCEPT="text/event-stream")
    assert events[-1]["event"] == "end"


def test_heartbeat_while_idle():
    encoder = EventEncoder(0)
    assert encoder.encode(b"") == b": keep-alive\n\n"
    assert encoder.offset == 0


def test_frames_not_shown_still_advance_the_id():
    encoder = EventEncoder(10)
    assert encoder.encode(encode_frame(Command.RAW_ENABLE)) == b"id: 18\n\n"


@pytest.mark.django_db(transaction=True)
def test_events_follow_a_running_task_with_heartbeats(
    anonymous_client, default_instance, monkeypatch
):
    task = TaskFactory(instance=default_instance, state=TaskState.RUNNING)
    task.journal_path.parent.mkdir(parents=True, exist_ok=True)
    task.journal_path.write_bytes(LINE1)

    def run_task():
        time.sleep(0.4)
        with open(task.journal_path, "ab") as journal:
            journal.write(OUTPUT[:4])  # a frame in two pieces reaches the client whole
            journal.flush()
            time.sleep(0.2)
            journal.write(OUTPUT[4:] + LINE2 + END)
        Task.objects.filter(pk=task.pk).update(
            state=TaskState.FINISHED, result=TaskResult.SUCCESS, finished_at=datetime.now(UTC)
        )

    original = events_module.events_response
    monkeypatch.setattr(
        events_module,
        "events_response",
        lambda request, task, start: original(request, task, start, keepalive_interval=0.15),
    )
    writer = threading.Thread(target=run_task)
    writer.start()
    try:
        response = anonymous_client.get(f"/default/watch/{task.id}.events")
        events = parse_events(b"".join(response.streaming_content))
    finally:
        writer.join()
    assert [e["id"] for e in frames_of(events)] == [str(offset) for offset in OFFSETS]
    assert {"comment": "keep-alive"} in events
    assert events[-1]["event"] == "end"
    assert events[-1]["data"]["message"] == "Task succeeded"


def test_frame_boundaries(tmp_path):
    path = tmp_path / "journal"
    assert is_frame_boundary(path, 0)  # no journal yet
    assert not is_frame_boundary(path, 8)
    path.write_bytes(JOURNAL + OUTPUT[:3])  # a frame being written
    assert [o for o in range(len(JOURNAL) + 10) if is_frame_boundary(path, o)] == [0, *OFFSETS]


# Range on the binary journal


def test_journal_range_resumes_at_a_frame_boundary(anonymous_client, default_instance):
    task = finished_task(default_instance)
    response = anonymous_client.get(
        f"/default/watch/{task.id}.journal", HTTP_RANGE=f"bytes={OFFSETS[1]}-"
    )
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {OFFSETS[1]}-{len(JOURNAL) - 1}/{len(JOURNAL)}"
    assert b"".join(response.streaming_content) == LINE2 + END


def test_journal_range_from_zero_is_everything(anonymous_client, default_instance):
    task = finished_task(default_instance)
    response = anonymous_client.get(f"/default/watch/{task.id}.journal", HTTP_RANGE="bytes=0-")
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == JOURNAL


def test_journal_without_range_is_unchanged(anonymous_client, default_instance):
    task = finished_task(default_instance)
    response = anonymous_client.get(f"/default/watch/{task.id}.journal")
    assert response.status_code == 200
    assert not response.has_header("Content-Range")
    assert b"".join(response.streaming_content) == JOURNAL


@pytest.mark.parametrize(
    "header",
    [
        "bytes=3-",
        f"bytes={len(JOURNAL) + 8}-",
        "bytes=0-10",
        "bytes=-10",
        "bytes=0-,8-",
        "lines=0-",
        "bytes=x-",
    ],
)
def test_journal_invalid_range_is_416(anonymous_client, default_instance, header):
    task = finished_task(default_instance)
    response = anonymous_client.get(f"/default/watch/{task.id}.journal", HTTP_RANGE=header)
    assert response.status_code == 416
    assert "error" in response.json()


@pytest.mark.django_db(transaction=True)
def test_journal_range_on_a_running_task(anonymous_client, default_instance):
    task = TaskFactory(instance=default_instance, state=TaskState.RUNNING)
    task.journal_path.parent.mkdir(parents=True, exist_ok=True)
    task.journal_path.write_bytes(LINE1 + OUTPUT)

    def finish():
        time.sleep(0.3)
        with open(task.journal_path, "ab") as journal:
            journal.write(LINE2 + END)

    writer = threading.Thread(target=finish)
    writer.start()
    try:
        response = anonymous_client.get(
            f"/default/watch/{task.id}.journal", HTTP_RANGE=f"bytes={OFFSETS[0]}-"
        )
        body = b"".join(response.streaming_content)
    finally:
        writer.join()
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {OFFSETS[0]}-*/*"
    assert body == OUTPUT + LINE2 + END

"""Resumable journal streams: `watch/{task}.events` (Server-Sent Events) and the byte
offsets shared with `Range` on `watch/{task}.journal`.

Every SSE event carries one journal frame and has for `id:` the byte offset just
after that frame in the journal file, so a client reconnecting with
`Last-Event-ID` (EventSource does it by itself) gets exactly the frames it has
not seen yet. After the end-of-task frame comes an `end` event with the task's
state and result, then the stream ends.
"""

import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import StreamingHttpResponse
from rest_framework import exceptions, status

from tasks import selectors
from tasks.journal import (
    Command,
    afollow_journal,
    follow_journal,
    is_end_frame,
    is_frame_boundary,
    journal_lines,
    read_frames,
)
from tasks.models import Task

HEARTBEAT = b": keep-alive\n\n"
# How long a browser waits before reconnecting after the stream broke (milliseconds).
RETRY = b"retry: 1000\n\n"


class RangeNotSatisfiable(exceptions.APIException):
    status_code = status.HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE
    default_detail = "Requested range not satisfiable"


def parse_offset(value: str | None) -> int | None:
    """A resume offset as a client sends it, or None when absent; not a number: 400."""
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise exceptions.ParseError(f"Invalid journal offset {value!r}")
    return int(value)


def check_offset(task: Task, offset: int) -> None:
    """Refuse (400) an offset that is not a frame boundary of the journal, or beyond it."""
    if not is_frame_boundary(task.journal_path, offset):
        raise exceptions.ParseError(f"Offset {offset} is not a frame boundary of the journal")


def range_start(header: str | None) -> int | None:
    """The N of `Range: bytes=N-`, None without a Range header; any other range: 416."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    start, dash, end = spec.strip().partition("-")
    if unit.strip() != "bytes" or not dash or end or not start.isdigit():
        raise RangeNotSatisfiable(f"Unsupported range {header!r}: only bytes=N- is served")
    return int(start)


class EventEncoder:
    """Turns followed journal frames (b"" for silence) into SSE bytes, counting offsets."""

    def __init__(self, start: int) -> None:
        self.offset = start
        self.ended = False
        self.end_message = ""

    def encode(self, raw: bytes) -> bytes:
        if not raw:
            return HEARTBEAT
        self.offset += len(raw)
        events = []
        for command, payload, _ in read_frames(io.BytesIO(raw)):
            if is_end_frame(command, payload):
                self.ended = True
                self.end_message = payload.decode("utf-8", "replace").partition(":")[2]
            for kind, level, text in journal_lines([(command, payload)]):
                data = {"level": level, "message": text} if kind == "log" else text
                events.append(event(kind, data, event_id=self.offset))
            if command not in (Command.LOG, Command.BYTES):
                # Not shown, but the id advances so a resume skips it.
                events.append(f"id: {self.offset}\n\n".encode())
        return b"".join(events)


def event(kind: str, data: object, *, event_id: int | None = None) -> bytes:
    lines = [f"event: {kind}"]
    if event_id is not None:
        lines.insert(0, f"id: {event_id}")
    lines.append("data: " + json.dumps(data))
    return ("\n".join(lines) + "\n\n").encode()


def end_event(task_id: uuid.UUID, message: str) -> bytes:
    """The last event: the end frame's message (the worker writes it just before it records
    the result, so the state read here may still be `running`), the task's state and result."""
    task = Task.objects.only("state", "result", "error").get(pk=task_id)
    data = {"message": message, "state": task.state, "result": task.result, "error": task.error}
    return event("end", data)


@sync_to_async
def aend_event(task_id: uuid.UUID, message: str) -> bytes:
    try:
        return end_event(task_id, message)
    finally:
        connection.close()  # no pooled connection held by a stream


def sse_stream(task: Task, start: int, keepalive_interval: float) -> Iterator[bytes]:
    encoder = EventEncoder(start)
    yield RETRY
    for raw in follow_journal(
        task.journal_path,
        is_finished=selectors.finished_checker(task, min_interval=1.0),
        start=start,
        keepalive=b"",
        keepalive_interval=keepalive_interval,
    ):
        yield encoder.encode(raw)
    yield end_event(task.pk, encoder.end_message)


async def asse_stream(task: Task, start: int, keepalive_interval: float) -> AsyncIterator[bytes]:
    encoder = EventEncoder(start)
    yield RETRY
    async for raw in afollow_journal(
        task.journal_path,
        is_finished=selectors.afinished_checker(task, min_interval=1.0),
        start=start,
        keepalive=b"",
        keepalive_interval=keepalive_interval,
    ):
        yield encoder.encode(raw)
    yield await aend_event(task.pk, encoder.end_message)


def events_response(
    request, task: Task, start: int, keepalive_interval: float = 10.0
) -> StreamingHttpResponse:
    """The SSE answer: a coroutine per watcher under ASGI, a generator under WSGI."""
    stream: AsyncIterator[bytes] | Iterator[bytes]
    if isinstance(request, ASGIRequest):
        stream = asse_stream(task, start, keepalive_interval)
        connection.close()  # Back to the pool for the length of the stream.
    else:
        stream = sse_stream(task, start, keepalive_interval)
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["X-Accel-Buffering"] = "no"
    response["Cache-Control"] = "no-cache"
    return response

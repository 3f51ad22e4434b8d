"""The production server's ASGI handler: a request body is read when a view reads it.

Django's ASGIHandler reads the whole body into a temporary file before any
code sees the request, so an anonymous client could make the server spool a
gigabyte that the policy then refuses, or hold a worker with a body it never
sends. Here a body is a stream pulled from the connection as the view reads
it: a route that takes no body (405), a caller the policy refuses (403) or an
unknown instance (404) is answered from the headers alone, a declared length
over `FATBUILDR_REQUEST_MAX_SIZE` is refused before the application (413), and
a body that stalls longer than `FATBUILDR_REQUEST_BODY_TIMEOUT` between two
chunks is cut (408). A response sent before its body was read closes the
connection, so the rest of the body is never read at all.
"""

import asyncio
import io
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.core.handlers.asgi import ASGIHandler
from rest_framework import status
from rest_framework.exceptions import APIException

# The ASGI types of Django's handler (django-stubs): messages are read, never changed.
Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class PayloadTooLarge(APIException, SuspiciousOperation):
    """A request body over its limit (an Error object through DRF, a 400 elsewhere)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large"


class BodyTimeout(APIException, SuspiciousOperation):
    """The client stopped sending the body it announced."""

    status_code = status.HTTP_408_REQUEST_TIMEOUT
    default_detail = "Request body not received in time"


class BodyIncomplete(APIException, SuspiciousOperation):
    """The client went away in the middle of its body."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Request body incomplete: the client disconnected"


def declared_length(scope: Scope) -> int | None:
    """The Content-Length of a request (None: none, or not a number)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def has_body(scope: Scope) -> bool:
    """Whether the request announces a body (a length above 0, or chunks)."""
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding" and value.strip().lower() != b"identity":
            return True
    return bool(declared_length(scope))


class StreamedBody(io.RawIOBase):
    """The body of one request, pulled from the connection as it is read (from the view's
    thread); at most *limit* bytes, each chunk within *timeout* seconds of the last."""

    def __init__(self, receive: Receive, *, limit: int, timeout: float) -> None:
        super().__init__()
        self._receive = receive
        self._limit = limit
        self._timeout = timeout
        self._buffer = bytearray()
        self._more = True
        self.received = 0
        self.done = asyncio.Event()  # Set, on the event loop, once the body has ended.
        self._pull_sync = async_to_sync(self._pull)

    @property
    def complete(self) -> bool:
        return self.done.is_set()

    async def _pull(self) -> None:
        try:
            message = await asyncio.wait_for(self._receive(), self._timeout)
        except TimeoutError:
            self._end()
            raise BodyTimeout(
                f"Request body not received in time (nothing for {self._timeout:g} s)"
            ) from None
        if message["type"] == "http.disconnect":
            self._end()
            raise BodyIncomplete()
        chunk = message.get("body", b"")
        self.received += len(chunk)
        if self.received > self._limit:
            self._end()
            raise PayloadTooLarge(f"Request body larger than {self._limit} bytes")
        self._buffer += chunk
        if not message.get("more_body", False):
            self._end()

    def _end(self) -> None:
        self._more = False
        self.done.set()

    def _fill(self, wanted: Callable[[], bool]) -> None:
        while self._more and not wanted():
            self._pull_sync()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            self._fill(lambda: False)
            size = len(self._buffer)
        else:
            self._fill(lambda: len(self._buffer) >= size)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def readinto(self, target: Any) -> int:
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        limit = size if size is not None and size >= 0 else None

        def ready() -> bool:
            return b"\n" in self._buffer or (limit is not None and len(self._buffer) >= limit)

        self._fill(ready)
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if limit is not None:
            end = min(end, limit)
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data


class _Receiver:
    """The connection's receive, carrying the body stream of its request."""

    def __init__(self, receive: Receive, body: StreamedBody) -> None:
        self.receive = receive
        self.body = body

    async def __call__(self) -> Message:
        return await self.receive()


class StreamingBodyASGIHandler(ASGIHandler):
    """Django's ASGI handler, with bodies streamed to the views instead of read first."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope):
            await super().__call__(scope, receive, send)
            return
        limit = settings.FATBUILDR_REQUEST_MAX_SIZE
        length = declared_length(scope)
        if length is not None and length > limit:
            await send_error(send, 413, f"Request body larger than {limit} bytes")
            return
        body = StreamedBody(receive, limit=limit, timeout=settings.FATBUILDR_REQUEST_BODY_TIMEOUT)

        async def send_closing_unread(message: Message) -> None:
            # Answered before its body was read: close rather than read the rest.
            if message["type"] == "http.response.start" and not body.complete:
                message = dict(message, headers=[*message.get("headers", ()), CLOSE])
            await send(message)

        await super().__call__(scope, _Receiver(receive, body), send_closing_unread)

    async def read_body(self, receive: Receive) -> Any:
        if isinstance(receive, _Receiver):
            return receive.body
        return await super().read_body(receive)

    async def listen_for_disconnect(self, receive: Receive) -> None:
        # The view's thread reads the body from the same connection: listen only after it.
        if isinstance(receive, _Receiver):
            await receive.body.done.wait()
        await super().listen_for_disconnect(receive)


CLOSE = (b"connection", b"close")


async def send_error(send: Send, code: int, message: str) -> None:
    """Answer with the Error object without the application, and close the connection."""
    content = json.dumps({"error": message}, ensure_ascii=False).encode() + b"\n"
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        CLOSE,
    ]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": content})

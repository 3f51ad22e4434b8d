"""Task journals in the Fatbuildr ConsoleMessage protocol (compat §3).

A frame is an 8-byte header, command (u16 LE), two padding bytes, payload
length (u32 LE), then the payload. LOG payloads are "<levelno>:<message>".
The last frame of every finished task is the LOG frame "Task succeeded" or
"Task failed"; clients stop reading right after it.
"""

import asyncio
import enum
import io
import logging
import os
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

HEADER = struct.Struct("<HxxI")
END_MESSAGES = ("Task succeeded", "Task failed")


class Command(enum.IntEnum):
    LOG = 0
    BYTES = 1
    RAW_ENABLE = 2
    RAW_DISABLE = 3
    WINCH = 4


def encode_frame(command: Command, payload: bytes = b"") -> bytes:
    """One whole frame."""
    return HEADER.pack(command, len(payload)) + payload


def log_frame(message: str, level: int = logging.INFO) -> bytes:
    """A LOG frame, as upstream's ConsoleFormatter writes it."""
    return encode_frame(Command.LOG, f"{level}:{message}".encode())


# Zero-length RAW_DISABLE: ignored by every client, keeps idle streams alive (compat §2.7).
KEEPALIVE_FRAME = encode_frame(Command.RAW_DISABLE)


def is_end_frame(command: int, payload: bytes) -> bool:
    """Whether this frame ends a task journal (what clients stop on)."""
    if command != Command.LOG:
        return False
    _, _, message = payload.decode("utf-8", "replace").partition(":")
    return message.startswith(END_MESSAGES)


def read_frames(handle: BinaryIO) -> Iterator[tuple[int, bytes, bytes]]:
    """Yield (command, payload, raw frame) for each whole frame from the current position.

    Stops before a frame that is not completely written yet and leaves the
    file position at its start, so a follower can read it again later.
    """
    while True:
        start = handle.tell()
        header = handle.read(HEADER.size)
        if len(header) < HEADER.size:
            handle.seek(start)
            return
        command, length = HEADER.unpack(header)
        payload = handle.read(length)
        if len(payload) < length:
            handle.seek(start)
            return
        yield command, payload, header + payload


class JournalFollower:
    """Reads the whole frames added to a journal since the last read.

    The state shared by the synchronous (WSGI) and asynchronous (ASGI)
    streams below; the file is opened once it exists.
    """

    def __init__(self, path: Path, start: int = 0) -> None:
        self.path = path
        self.start = start
        self.ended = False
        self._handle: BinaryIO | None = None
        self._last_sent = time.monotonic()

    def read(self) -> list[bytes]:
        """New whole frames, up to and including the end frame."""
        if self._handle is None:
            if not self.path.exists():
                return []
            self._handle = open(self.path, "rb")  # noqa: SIM115 - closed by close()
            self._handle.seek(self.start)
        frames = []
        for command, payload, raw in read_frames(self._handle):
            frames.append(raw)
            if is_end_frame(command, payload):
                self.ended = True
                break
        if frames:
            self._last_sent = time.monotonic()
        return frames

    def keepalive_due(self, interval: float) -> bool:
        if time.monotonic() - self._last_sent < interval:
            return False
        self._last_sent = time.monotonic()
        return True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def follow_journal(
    path: Path,
    *,
    is_finished: Callable[[], bool],
    poll_interval: float = 0.1,
    keepalive_interval: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    start: int = 0,
    keepalive: bytes = KEEPALIVE_FRAME,
) -> Iterator[bytes]:
    """Stream a journal from *start* (a frame boundary) until its end frame.

    While the task runs, new frames are picked up by polling the file (which
    works the same on a shared filesystem read by many web hosts), with a
    keep-alive frame after each `keepalive_interval` of silence. Once the
    task is finished, what remains in the file is sent and the stream ends.
    *keepalive* is what is yielded on silence (the SSE stream passes b"").
    """
    follower = JournalFollower(path, start)
    try:
        while not follower.ended:
            frames = follower.read()
            yield from frames
            if frames:
                continue
            if is_finished():
                # The task ended after our last read: send what it wrote meanwhile.
                yield from follower.read()
                return
            if follower.keepalive_due(keepalive_interval):
                yield keepalive
            sleep(poll_interval)
    finally:
        follower.close()


async def afollow_journal(
    path: Path,
    *,
    is_finished: Callable[[], Awaitable[bool]],
    poll_interval: float = 0.1,
    keepalive_interval: float = 10.0,
    start: int = 0,
    keepalive: bytes = KEEPALIVE_FRAME,
) -> AsyncIterator[bytes]:
    """`follow_journal` for ASGI servers: a watcher costs a coroutine, not a thread."""
    follower = JournalFollower(path, start)
    try:
        while not follower.ended:
            frames = follower.read()
            for frame in frames:
                yield frame
            if frames:
                continue
            if await is_finished():
                for frame in follower.read():
                    yield frame
                return
            if follower.keepalive_due(keepalive_interval):
                yield keepalive
            await asyncio.sleep(poll_interval)
    finally:
        follower.close()


def is_frame_boundary(path: Path, offset: int) -> bool:
    """Whether *offset* is where a whole frame of the journal starts (or its current end):
    the only places a stream may resume from."""
    if offset < 0:
        return False
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return offset == 0
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if offset > size:
            return False
        position = 0
        while position < offset:
            handle.seek(position)
            header = handle.read(HEADER.size)
            if len(header) < HEADER.size:
                return False
            _, length = HEADER.unpack(header)
            position += HEADER.size + length
        return position == offset and position <= size


def journal_lines(frames: Iterable[tuple[int, bytes]]) -> Iterator[tuple[str, str, str]]:
    """(kind, level, text) for the frames people read: ("log", level name, message) for LOG
    frames, ("output", "", text) for command output; the other frames are skipped."""
    for command, payload in frames:
        if command == Command.LOG:
            levelno, _, message = payload.decode("utf-8", "replace").partition(":")
            level = logging.getLevelName(int(levelno)) if levelno.isdigit() else levelno
            yield "log", str(level), message
        elif command == Command.BYTES:
            yield "output", "", payload.decode("utf-8", "replace")


def journal_so_far(path: Path) -> tuple[list[dict], int, str]:
    """The journal's lines up to its last whole frame (consecutive output merged into one
    block), the offset after that frame, and the end frame's message if it came."""
    lines: list[dict] = []
    end_message = ""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return lines, 0, end_message
    with handle:
        for command, payload, _ in read_frames(handle):
            for kind, level, text in journal_lines([(command, payload)]):
                if kind == "output" and lines and lines[-1]["kind"] == "output":
                    lines[-1]["text"] += text
                else:
                    lines.append({"kind": kind, "level": level, "text": text})
            if is_end_frame(command, payload):
                end_message = payload.decode("utf-8", "replace").partition(":")[2]
                break
        return lines, handle.tell(), end_message


def print_journal(path: Path, out: BinaryIO, *, is_finished: Callable[[], bool]) -> None:
    """Write a journal for a terminal, following it to its end: log lines as text (after
    their level), command output as it came."""
    for raw in follow_journal(path, is_finished=is_finished, poll_interval=0.2):
        for command, payload, _ in read_frames(io.BytesIO(raw)):
            if command == Command.LOG:
                out.write(payload.partition(b":")[2] + b"\n")
            elif command == Command.BYTES:
                out.write(payload)
        out.flush()

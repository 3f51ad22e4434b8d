"""Request bodies under the production server (scripts/serve, over real sockets): a body the
answer does not need is never read, spooled or waited for (fatbuildr_site/bodies.py).

The server's temporary folder (where Django would spool bodies, into unnamed files) is a
tmpfs of its own and its data root private to each test, so "nothing was written" is
measured, not assumed.
"""

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

from tests import workers
from tests.filesystems import private_tmpfs, used_bytes
from tests.workers import WebServer

pytestmark = pytest.mark.e2e

MiB = 1024**2
BODY_TIMEOUT = 2
UPLOAD_LIMIT = 64 * MiB
# An answer "from the headers" comes well before the body could have been sent.
PROMPT = 5.0


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


class Server:
    def __init__(self, web: WebServer, spool: Path, data: Path) -> None:
        self.web = web
        self.spool = spool
        self.spool_baseline = used_bytes(spool)
        self.data = data
        self.host, port = web.url.removeprefix("http://").split(":")
        self.port = int(port)

    def written(self) -> int:
        """Bytes in the server's temporary folder and data root, workspaces included."""
        spooled = used_bytes(self.spool) - self.spool_baseline
        return spooled + folder_size(self.data / "workspaces")


@pytest.fixture
def server(transactional_db, default_instance, data_dir, tmp_path) -> Iterator[Server]:
    spool = tmp_path / "spool"
    spool.mkdir()
    env = dict(
        os.environ,
        DATABASE_URL=workers.test_database_url(),
        FATBUILDR_DATA_DIR=str(data_dir),
        TMPDIR=str(spool),
        FATBUILDR_REQUEST_BODY_TIMEOUT=str(BODY_TIMEOUT),
        FATBUILDR_BUILD_UPLOAD_MAX_SIZE=str(UPLOAD_LIMIT),
    )
    with private_tmpfs(spool, size="256m"):
        web = WebServer(tmp_path, env=env)
        try:
            yield Server(web, spool, data_dir)
        finally:
            web.stop()


@pytest.fixture
def builder_token(default_instance, token_for) -> str:
    User.objects.create_user("builder").groups.add(Group.objects.get_or_create(name="fatbuildr")[0])
    return token_for(default_instance, "builder")


class Exchange:
    """One raw HTTP/1.1 request: headers, then *send* bytes of its body sent in a thread at
    full speed (the client then waits, holding the connection), while the answer is read."""

    def __init__(
        self,
        server: Server,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        send: int = 0,
        chunked: bool = False,
    ) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=15)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {server.host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.started = time.monotonic()
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.sent = 0
        self.sender = threading.Thread(target=self._send, args=(send, chunked), daemon=True)
        self.sender.start()

    def _send(self, total: int, chunked: bool) -> None:
        block = b"x" * MiB
        try:
            while self.sent < total:
                data = block[: total - self.sent]
                if chunked:
                    data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
                self.sock.sendall(data)
                self.sent += len(block[: total - self.sent])
        except OSError:
            pass  # The server answered and closed: the rest was never wanted.

    def answer(self) -> tuple[int, dict[str, str], bytes, float]:
        """Status, headers, body and the seconds it took; then whether the server closed."""
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed without an answer: {raw!r}"
            raw += chunk
        elapsed = time.monotonic() - self.started
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines)
        }
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = self.sock.recv(65536)
            assert chunk
            body += chunk
        return int(status_line.split()[1]), headers, body, elapsed

    def closed_by_server(self) -> bool:
        self.sock.settimeout(10)
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        return True

    def close(self) -> None:
        self.sock.close()
        self.sender.join(10)

    def __enter__(self) -> "Exchange":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def upload_headers(token: str | None = None, **length: str) -> dict[str, str]:
    """Headers of a build upload: multipart, the bearer *token* if any, and *length*
    (Content_Length=... or Transfer_Encoding=...)."""
    headers = {"Content-Type": "multipart/form-data; boundary=x"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers.update({name.replace("_", "-"): value for name, value in length.items()})
    return headers


def error_of(body: bytes) -> str:
    return json.loads(body)["error"]


def test_an_anonymous_build_upload_is_refused_from_its_headers_and_nothing_is_spooled(server):
    """60 MiB announced, 8 MiB of it sent, then the client waits: 403 without waiting for
    the rest, not a byte written meanwhile, and the connection closed (the rest is never
    read)."""
    with Exchange(
        server,
        "POST",
        "/default/build",
        headers=upload_headers(Content_Length=str(60 * MiB)),
        send=8 * MiB,
    ) as exchange:
        status, _, body, elapsed = exchange.answer()
        assert server.written() == 0
        assert status == 403
        assert error_of(body) == "anonymous role is not allowed to perform action build"
        assert elapsed < PROMPT
        assert exchange.closed_by_server()
    assert server.written() == 0


def test_a_body_for_a_route_that_takes_none_is_never_read(server):
    """POST /version announcing 60 MiB and sending 8 MiB of it: 405 at once."""
    with Exchange(
        server, "POST", "/version", headers={"Content-Length": str(60 * MiB)}, send=8 * MiB
    ) as exchange:
        status, _, body, elapsed = exchange.answer()
        assert server.written() == 0
        assert status == 405 and error_of(body) == 'Method "POST" not allowed.'
        assert elapsed < PROMPT
        assert exchange.closed_by_server()
    assert server.written() == 0


def test_a_declared_length_over_the_limit_is_413_without_waiting_for_the_body(
    server, builder_token
):
    """2 GiB announced, nothing sent: answered at once, even to a caller allowed to build."""
    with Exchange(
        server,
        "POST",
        "/default/build",
        headers=upload_headers(builder_token, Content_Length=str(2 * 1024**3)),
    ) as exchange:
        status, headers, body, elapsed = exchange.answer()
        assert status == 413
        assert error_of(body) == f"Request body larger than {UPLOAD_LIMIT} bytes"
        assert elapsed < PROMPT
        assert headers["connection"] == "close"
    assert server.written() == 0


def test_a_stalled_body_is_cut_after_the_body_timeout(server, builder_token):
    """A builder announces 1 MiB and sends nothing: 408 after the timeout, nothing kept."""
    with Exchange(
        server,
        "POST",
        "/default/build",
        headers=upload_headers(builder_token, Content_Length=str(MiB)),
    ) as exchange:
        status, _, body, elapsed = exchange.answer()
        assert status == 408
        assert error_of(body) == f"Request body not received in time (nothing for {BODY_TIMEOUT} s)"
        assert BODY_TIMEOUT <= elapsed < BODY_TIMEOUT + PROMPT
        assert exchange.closed_by_server()
    assert server.written() == 0


def test_a_chunked_build_upload_is_refused_unread(server, builder_token):
    """No Content-Length, so the upload limit could not be checked up front: 411, unread."""
    with Exchange(
        server,
        "POST",
        "/default/build",
        headers=upload_headers(builder_token, Transfer_Encoding="chunked"),
        send=2 * UPLOAD_LIMIT,
        chunked=True,
    ) as exchange:
        status, _, body, elapsed = exchange.answer()
        assert status == 411
        assert error_of(body) == "Build submissions need a Content-Length"
        assert elapsed < PROMPT
        assert exchange.closed_by_server()
        assert exchange.sent < 2 * UPLOAD_LIMIT
    assert server.written() == 0


def test_answers_do_not_name_the_server_software(server):
    with Exchange(server, "GET", "/version", headers={}) as exchange:
        status, headers, _, _ = exchange.answer()
    assert status == 200
    assert "server" not in headers

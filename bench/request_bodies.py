#!/usr/bin/env python
"""Request body benchmark: how fast hostile bodies are answered, and what they cost the server.

Run from the repository root:

    .venv/bin/python bench/request_bodies.py
    .venv/bin/python bench/request_bodies.py --checkout /path/to/other/checkout

It starts `scripts/serve` of the checkout (default: this one) on a free local
port against the database `fatbuildr_bench_bodies` (created and migrated when
missing), with a temporary folder of its own as TMPDIR, where Django spools
request bodies. Each scenario opens one raw HTTP/1.1 connection, sends the
headers and then as much of the body as it says (at full speed, in a thread),
and measures: the seconds until the answer's status line (capped), the bytes
the client got to send by then, and the largest size the server's temporary
folder's file system (a tmpfs of its own) reached meanwhile, sampled every 20 ms.
Run it as root (the tmpfs mount). Another checkout (an older
commit, with `.venv` linked to this one's) gives the figures to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    REPO_ROOT,
    clean_environment,
    ensure_database,
    manage,
    stop_group,
    wait_until,
)
from tests.filesystems import private_tmpfs, used_bytes

DATABASE = "fatbuildr_bench_bodies"
MiB = 1024**2
CAP = 30.0  # Seconds a scenario waits for its answer.

# (name, method, path, declared length, bytes sent)
SCENARIOS = [
    ("anonymous build upload, 500 MiB sent", "POST", "/default/build", 500 * MiB, 500 * MiB),
    ("POST /version, 1 GiB sent", "POST", "/version", 1024 * MiB, 1024 * MiB),
    ("2 GiB announced, nothing sent", "POST", "/default/build", 2048 * MiB, 0),
    ("anonymous build, 1 MiB announced, nothing sent", "POST", "/default/build", MiB, 0),
]


def exchange(port: int, method: str, path: str, declared: int, send: int, spool: Path) -> dict:
    sock = socket.create_connection(("127.0.0.1", port), timeout=CAP)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {declared}\r\n"
    head += "Content-Type: multipart/form-data; boundary=x\r\n\r\n"
    sent = [0]
    peak = [0]
    baseline = used_bytes(spool)
    done = threading.Event()

    def body() -> None:
        block = b"x" * MiB
        try:
            while sent[0] < send and not done.is_set():
                sock.sendall(block[: send - sent[0]])
                sent[0] += len(block[: send - sent[0]])
        except OSError:
            pass

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], used_bytes(spool) - baseline)
            time.sleep(0.02)

    started = time.monotonic()
    sock.sendall(head.encode())
    threads = [threading.Thread(target=body, daemon=True), threading.Thread(target=sample)]
    for thread in threads:
        thread.start()
    status = "no answer"
    try:
        answer = sock.recv(4096)
        status = answer.split(b" ", 2)[1].decode(errors="replace") if answer else "closed"
    except TimeoutError:
        pass
    elapsed = time.monotonic() - started
    sent_at_answer = sent[0]
    done.set()
    sock.close()
    threads[1].join()
    return {
        "status": status,
        "seconds": elapsed,
        "sent MiB": sent_at_answer / MiB,
        "spooled MiB": peak[0] / MiB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, default=REPO_ROOT, help="checkout to serve")
    args = parser.parse_args()
    ensure_database(DATABASE)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="bench-bodies-") as temp:
        spool, data = Path(temp) / "spool", Path(temp) / "data"
        spool.mkdir()
        stack = contextlib.ExitStack()
        stack.enter_context(private_tmpfs(spool))
        env = clean_environment(
            DATABASE,
            FATBUILDR_DATA_DIR=str(data),
            TMPDIR=str(spool),
            FATBUILDR_BIND=f"127.0.0.1:{port}",
            FATBUILDR_WEB_WORKERS="1",
            DJANGO_SECRET_KEY="bench-only-secret",
        )
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        server = subprocess.Popen(
            [str(args.checkout / "scripts" / "serve")],
            cwd=args.checkout,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_until(lambda: _listening(port), timeout=30, what="the web server")
            # The first request of a process loads the views and connects to PostgreSQL.
            exchange(port, "GET", "/version", 0, 0, spool)
            print(f"scripts/serve of {args.checkout}, answers capped at {CAP:g} s")
            print(f"{'scenario':48} {'answer':>10} {'seconds':>8} {'sent MiB':>9} {'spooled':>8}")
            for name, method, path, declared, send in SCENARIOS:
                row = exchange(port, method, path, declared, send, spool)
                print(
                    f"{name:48} {row['status']:>10} {row['seconds']:8.2f} "
                    f"{row['sent MiB']:9.0f} {row['spooled MiB']:8.0f}"
                )
        finally:
            stop_group(server)
            stack.close()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    main()

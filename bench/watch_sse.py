#!/usr/bin/env python
"""Live watch page benchmark: delay from a journal line written to its SSE event received.

Run from the repository root:

    .venv/bin/python bench/watch_sse.py
    .venv/bin/python bench/watch_sse.py --lines 100 --watchers 20

Set-up as bench/tasks.py's (which this reuses): the PostgreSQL database
`fatbuildr_bench_watch` (created when missing, migrated, its task rows deleted
at start), a data root in a temporary directory, a Celery queue of its own,
the settings module `tests.settings` for the worker and this process (for the
"test shell" task), one worker of concurrency 1, and the web server started by
scripts/serve (production settings, two processes, gunicorn + uvicorn) on a
free port.

A "test shell" task sleeps 1 s then prints `date +%s.%N` --lines times, 0.10 to
0.20 s apart (bench/tasks.py's script). --watchers clients (threads, default 10,
as many people with the watch page open) each open
`GET /default/watch/<id>.events` before the task starts, as EventSource would
(`Accept: text/event-stream`), read the stream with `read1` (whatever bytes have
arrived), parse the events, and for each `output` event take arrival time -
printed time for each line. They stop at the `end` event. The delays of all
watchers are pooled. Then one resume: a client reconnects with the Last-Event-ID
of the middle event and must get exactly the rest.

Target (issue 13): delay line -> browser-side event p95 < 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p and Path(p).resolve() != ROOT / "bench"]

from bench.common import (  # noqa: E402
    PROTECTED_DBS,
    clean_environment,
    ensure_database,
    manage,
    percentile,
    tear_down,
    use_environment,
)
from bench.tasks import SHELL, Worker, journal_script, submit, wait_finished  # noqa: E402

if TYPE_CHECKING:
    from instances.models import Instance
    from tests.workers import WebServer

BENCH_DB = "fatbuildr_bench_watch"
PROTECTED = PROTECTED_DBS | {"fatbuildr_bench", "fatbuildr_bench_tasks"}
INSTANCE = "default"
TARGET_P95 = 0.5


def sse_events(response: requests.Response) -> Iterator[tuple[float, dict[str, str]]]:
    """(arrival time, fields) of each SSE event block (comments left out)."""
    buffer = b""
    while True:
        data = response.raw.read1(65536)
        arrival = time.time()
        if not data:
            return
        buffer += data
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            fields: dict[str, str] = {}
            for line in block.decode().split("\n"):
                name, _, value = line.partition(":")
                if name:
                    fields[name] = value.removeprefix(" ")
            if fields:
                yield arrival, fields


def watch(url: str, headers: dict[str, str] | None = None) -> tuple[list[float], list[dict]]:
    """Follow the events to the end: the delays of the printed lines, and the events."""
    delays: list[float] = []
    events: list[dict] = []
    headers = {"Accept": "text/event-stream", **(headers or {})}
    with requests.get(url, stream=True, timeout=(5, 60), headers=headers) as response:
        response.raise_for_status()
        for arrival, fields in sse_events(response):
            events.append(fields)
            if fields.get("event") == "output":
                for line in json.loads(fields["data"]).split():
                    delays.append(arrival - float(line))
            elif fields.get("event") == "end":
                return delays, events
    raise RuntimeError("the event stream ended before the end event")


def measure(
    instance: Instance, server: WebServer, lines: int, watchers: int
) -> tuple[list[float], bool]:
    task = submit(instance, SHELL, journal_script(lines))
    url = f"{server.url}/{INSTANCE}/watch/{task.pk}.events"
    results: list[tuple[list[float], list[dict]]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(watch(url))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(watchers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_finished([task], timeout=30)
    if errors:
        raise errors[0]
    delays = [delay for watcher_delays, _ in results for delay in watcher_delays]
    if len(delays) != lines * watchers:
        raise RuntimeError(f"{len(delays)} lines received, {lines * watchers} expected")
    # Resume: from the middle event, exactly the rest.
    frames = [e for e in results[0][1] if "id" in e]
    middle = frames[len(frames) // 2]
    _, rest = watch(url, {"Last-Event-ID": middle["id"]})
    resumed = [e for e in rest if "id" in e] == frames[len(frames) // 2 + 1 :]
    return delays, resumed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100, help="timestamp lines in the journal")
    parser.add_argument("--watchers", type=int, default=10, help="SSE clients at once")
    parser.add_argument("--drop", action="store_true", help=f"drop {BENCH_DB} at the end")
    args = parser.parse_args()
    if min(args.lines, args.watchers) < 1:
        parser.error("counts must be positive")

    queue = f"fatbuildr-bench-{uuid.uuid4().hex[:12]}"
    temp = Path(tempfile.mkdtemp(prefix="fatbuildr-bench-watch-"))
    (temp / "tmp").mkdir()
    env = clean_environment(
        BENCH_DB,
        DJANGO_SECRET_KEY=secrets.token_hex(32),
        FATBUILDR_DATA_DIR=str(temp / "data"),
        FATBUILDR_TASK_QUEUE=queue,
        FATBUILDR_TASK_HEARTBEAT_INTERVAL="5",
        FATBUILDR_TASK_HEARTBEAT_TIMEOUT="60",
        TMPDIR=str(temp / "tmp"),
    )
    processes: list[Worker | WebServer] = []
    try:
        print(f"Database {BENCH_DB}: creating if missing, migrating...", flush=True)
        ensure_database(BENCH_DB, protected=PROTECTED)
        manage(
            dict(env, DJANGO_SETTINGS_MODULE="fatbuildr_site.settings"),
            "migrate", "--noinput", "--skip-checks", "-v", "0",
        )  # fmt: skip
        use_environment(
            dict(env, DJANGO_SETTINGS_MODULE="tests.settings", FATBUILDR_LOG_LEVEL="WARNING")
        )
        tempfile.tempdir = env["TMPDIR"]
        import django

        django.setup()
        from instances.services import load_instance_file
        from tasks.models import Task
        from tests.workers import WebServer

        Task.objects.all().delete()
        instance, _ = load_instance_file(path=ROOT / "instance-files" / "default.yml")
        worker = Worker(env, temp, concurrency=1)
        processes.append(worker)
        wait_finished([submit(instance, SHELL, "true")], timeout=60)  # warm-up
        server = WebServer(temp, workers=2, env=env, timeout=60)
        processes.append(server)
        print(
            f"SSE delay: {args.lines} lines, {args.watchers} watchers through {server.url}...",
            flush=True,
        )
        delays, resumed = measure(instance, server, args.lines, args.watchers)
        p50, p95 = percentile(delays, 0.5), percentile(delays, 0.95)
        verdict = "PASS" if p95 < TARGET_P95 else "MISS"
        print("| measure | figure | target | verdict |\n|---|---:|---|---|")
        print(f"| SSE delay p50 ({len(delays)} events) | {p50 * 1000:.0f} ms | | |")
        print(f"| SSE delay p95 | {p95 * 1000:.0f} ms | < {TARGET_P95 * 1000:.0f} ms | {verdict} |")
        print(f"| SSE delay max | {max(delays) * 1000:.0f} ms | | |")
        print(f"| resume with Last-Event-ID gives exactly the rest | {resumed} | True | "
              f"{'PASS' if resumed else 'MISS'} |")  # fmt: skip
        return 0 if p95 < TARGET_P95 and resumed else 1
    finally:
        tear_down(
            processes, queue=queue, temp=temp, drop=args.drop, database=BENCH_DB,
            protected=PROTECTED,
        )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())

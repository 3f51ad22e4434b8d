#!/usr/bin/env python
"""Task engine benchmark: start latency, journal delay and throughput with real workers.

Run from the repository root:

    .venv/bin/python bench/tasks.py
    .venv/bin/python bench/tasks.py --tasks 50 --throughput-tasks 200 --lines 100

Set-up: the PostgreSQL database `fatbuildr_bench_tasks` (127.0.0.1:5432, user
postgres; created when missing, migrated with `manage.py migrate`, its task
rows deleted at start), a data root in a temporary directory, a Celery queue
of its own (FATBUILDR_TASK_QUEUE=fatbuildr-bench-<random>) and the settings
module `tests.settings` for the workers and for this process, so that the
test-only task names "test noop" and "test shell" (tests/task_handlers.py)
exist. The heartbeat settings are set back to their production values (5 s,
60 s). The default instance is loaded with
`instances.services.load_instance_file` (not `manage.py instances load`, which
would queue a keyring creation). Tasks are submitted in this process with
`tasks.engine.submit`, in autocommit mode: each message is sent when its row
commits, as for a submission through the API. Workers are `celery -A
fatbuildr_site worker` (prefork pool) in their own process group.

1. Submit-to-running latency: one worker (concurrency 1), warmed up by one
   task. --tasks "test noop" tasks are submitted one at a time, each after
   the previous one finished and a 0.2 s pause, so the worker is idle in its
   broker wait every time. latency = started_at - submission, both written
   in the database from the clock of this host (`submission` by Django at
   insert, `started_at` by the worker when it claims the task). The worker
   log's "received" lines (millisecond resolution) split it into "submit"
   (insert, commit, publish), "broker" (until the worker's main process has
   the message) and "child" (hand-over to the pool process, claim).
2. Journal delay: the web server started by scripts/serve (production
   settings) on a free port, and a "test shell" task whose script sleeps 1 s
   then prints `date +%s.%N` --lines times, sleeping 0.10 to 0.20 s between
   lines (fixed pseudo-random spacing, so that the lines do not keep one
   phase with the server's polling). A client opens
   `GET /default/watch/<id>.journal` before the task starts, reads it with
   `read1` (whatever bytes have arrived, no fixed-size read that would wait
   for a buffer to fill), splits the frames, and for each BYTES frame line
   takes arrival time - printed time.
3. Throughput: --throughput-tasks "test shell" tasks running
   --throughput-command (default `true`: the figure is the engine's own cost
   per task), without locks, submitted back to back; figure = tasks / (last
   finished_at - first submission). Once with a fresh worker of concurrency
   1, once with a fresh worker of concurrency 2, each warmed up by a few tasks
   first; --rounds times (default 3), the figures being the medians, as
   other work on the host easily moves a 2-second run. During each run, the
   CPU time of every party is read from /proc (Linux): the worker's pool
   processes (with the commands they ran), its main process, the PostgreSQL
   backends of the bench database, this process (submitting and polling) and
   the whole machine; printed per task, with the cores busy on average.
   Anything else running on the host shows up as "other".

Workers and the server are always stopped by process group, the queue keys
deleted from Redis and the data root removed. Prints the figures against the
targets of the issue: submit to running p50 < 0.3 s, journal delay p95 <
0.5 s, two worker processes >= 1.6 times one.
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import requests

# Run as a script, sys.path starts with this folder, whose tasks.py would hide the `tasks`
# application: the repository root goes first instead (also for `bench.common`).
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p and Path(p).resolve() != ROOT / "bench"]

from bench.common import (  # noqa: E402
    CLOCK_TICKS,
    PROTECTED_DBS,
    clean_environment,
    ensure_database,
    journal_frames,
    machine_busy,
    manage,
    percentile,
    tear_down,
    use_environment,
    wait_until,
)
from bench.common import Worker as CeleryWorker  # noqa: E402

if TYPE_CHECKING:
    from instances.models import Instance
    from tasks.models import Task
    from tests.workers import WebServer

BENCH_DB = "fatbuildr_bench_tasks"
# Nor bench/registry_api.py's database, which that bench drops and recreates at every run.
PROTECTED = PROTECTED_DBS | {"fatbuildr_bench"}

INSTANCE = "default"
NOOP = "test noop"
SHELL = "test shell"
USER = "bench"

TARGET_START_P50 = 0.3
TARGET_JOURNAL_P95 = 0.5
TARGET_SPEEDUP = 1.6

# "[2026-11-27 10:00:00,123: INFO/MainProcess] Task fatbuildr.run_task[...] received"
RECEIVED_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] "
    r"Task fatbuildr\.run_task\[[^\]]+\] received$",
    re.MULTILINE,
)


# --- environment, database, processes -------------------------------------------


def base_environment(data_dir: Path, queue: str) -> dict[str, str]:
    """What this process, the workers and the server share: database, data root, queue."""
    return clean_environment(
        BENCH_DB,
        DJANGO_SECRET_KEY=secrets.token_hex(32),
        FATBUILDR_DATA_DIR=str(data_dir / "data"),
        FATBUILDR_TASK_QUEUE=queue,
        # tests.settings shortens these for the fault tests; production values here.
        FATBUILDR_TASK_HEARTBEAT_INTERVAL="5",
        FATBUILDR_TASK_HEARTBEAT_TIMEOUT="60",
        # tests.settings makes temporary directories at import: keep them in ours.
        TMPDIR=str(data_dir / "tmp"),
    )


class Worker(CeleryWorker):
    """A worker with the test settings, which define the "test noop" and "test shell" tasks."""

    settings_module = "tests.settings"
    # Its start is polled closely, as the waits for tasks are.
    ready_interval = 0.01

    def received_times(self) -> list[float]:
        """Epoch times of the worker's "received" log lines, in order (local time, ms)."""
        return [
            datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()
            for stamp in RECEIVED_LINE.findall(self.log())
        ]


def gunicorn_worker_class(server: WebServer) -> str:
    """The worker class gunicorn says it uses, if it says so."""
    found = re.search(r"Using worker: (\S+)", server.log_path.read_text(errors="replace"))
    return found.group(1) if found else "see scripts/serve"


# --- tasks -----------------------------------------------------------------------


def submit(instance: Instance, name: str, message: str = "") -> Task:
    from tasks import engine

    return engine.submit(instance, name, user=USER, message=message)


def wait_finished(tasks: Sequence[Task], timeout: float, interval: float = 0.01) -> list[Task]:
    """The tasks, reloaded once all are finished; raise unless all succeeded."""
    from tasks.models import Task, TaskResult, TaskState

    ids = [task.pk for task in tasks]
    wait_until(
        lambda: not Task.objects.filter(pk__in=ids).exclude(state=TaskState.FINISHED).exists(),
        timeout=timeout,
        what=f"{len(ids)} task(s) to finish",
        interval=interval,
    )
    done = Task.objects.in_bulk(ids)
    failed = [task for task in done.values() if task.result != TaskResult.SUCCESS]
    if failed:
        raise RuntimeError(f"{len(failed)} task(s) did not succeed, e.g. {failed[0].error!r}")
    return [done[pk] for pk in ids]


def warm_up(instance: Instance, count: int) -> None:
    """Run a few tasks so that every pool process has its imports and database connection."""
    wait_finished([submit(instance, SHELL, "true") for _ in range(count)], timeout=60)


# --- measures --------------------------------------------------------------------


@dataclass
class StartLatency:
    total: list[float]
    submit: list[float]
    broker: list[float]
    child: list[float]


def measure_start_latency(instance: Instance, worker: Worker, count: int) -> StartLatency:
    received_before = len(worker.received_times())
    tasks, returned = [], []
    for _ in range(count):
        task = submit(instance, NOOP)
        returned.append(time.time())
        tasks.append(wait_finished([task], timeout=30)[0])
        time.sleep(0.2)  # Let the worker ack and go back to waiting on the broker.
    result = StartLatency([], [], [], [])
    for task, back in zip(tasks, returned, strict=True):
        assert task.started_at is not None
        result.total.append((task.started_at - task.submission).total_seconds())
        result.submit.append(back - task.submission.timestamp())
    received = worker.received_times()[received_before:]
    if len(received) == count:  # Otherwise the log cannot be matched to the tasks.
        for task, back, got in zip(tasks, returned, received, strict=True):
            assert task.started_at is not None
            result.broker.append(got - back)
            result.child.append(task.started_at.timestamp() - got)
    return result


def journal_script(lines: int) -> str:
    spacing = random.Random(42)
    steps = [f"date +%s.%N; sleep {spacing.uniform(0.10, 0.20):.3f}" for _ in range(lines)]
    return "sleep 1\n" + "\n".join(steps) + "\n"


def measure_journal_delay(instance: Instance, server: WebServer, lines: int) -> list[float]:
    from tasks.journal import Command, is_end_frame

    task = submit(instance, SHELL, journal_script(lines))
    url = f"{server.url}/{INSTANCE}/watch/{task.pk}.journal"
    delays: list[float] = []
    ended = False
    with requests.get(url, stream=True, timeout=(5, 30)) as response:
        response.raise_for_status()
        for arrival, command, payload in journal_frames(response):
            if command == Command.BYTES:
                for line in payload.decode().split():
                    delays.append(arrival - float(line))
            elif is_end_frame(command, payload):
                ended = True
                break
    wait_finished([task], timeout=30)
    if not ended:
        raise RuntimeError("the journal stream ended before the end frame")
    if len(delays) != lines:
        raise RuntimeError(f"{len(delays)} timestamp lines received, {lines} printed")
    return delays


def process_cpu(pid: int, *, waited_children: bool = True) -> float:
    """CPU seconds of a process (and of its children it has waited for); 0 when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if waited_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def group_members(pgid: int) -> list[int]:
    from tasks.runner import process_group_members

    return [pid for pid, _ in process_group_members(pgid)]


@dataclass
class CpuSample:
    pool: dict[int, float]
    main: float
    database: dict[int, float]
    bench: float
    machine: float
    at: float


def cpu_sample(worker: Worker) -> CpuSample:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        backends = [pid for (pid,) in cursor.fetchall()]
    main = worker.process.pid
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return CpuSample(
        pool={pid: process_cpu(pid) for pid in group_members(main) if pid != main},
        main=process_cpu(main, waited_children=False),
        database={pid: process_cpu(pid, waited_children=False) for pid in backends},
        bench=usage.ru_utime + usage.ru_stime,
        machine=machine_busy(),
        at=time.monotonic(),
    )


@dataclass
class CpuUse:
    """CPU seconds per party over a run; PostgreSQL backends that came and went are missed."""

    pool: float
    main: float
    database: float
    bench: float
    machine: float
    seconds: float

    @classmethod
    def between(cls, before: CpuSample, after: CpuSample) -> CpuUse:
        def grown(old: dict[int, float], new: dict[int, float]) -> float:
            return sum(value - old.get(pid, 0.0) for pid, value in new.items())

        return cls(
            pool=grown(before.pool, after.pool),
            main=after.main - before.main,
            database=grown(before.database, after.database),
            bench=after.bench - before.bench,
            machine=after.machine - before.machine,
            seconds=after.at - before.at,
        )

    @property
    def other(self) -> float:
        return self.machine - self.pool - self.main - self.database - self.bench


@dataclass
class Throughput:
    concurrency: int
    tasks: int
    seconds: float  # first submission to last finished_at (database times)
    submitting: float  # how long the submission loop took
    cpu: CpuUse

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds


def measure_throughput(instance: Instance, worker: Worker, count: int, command: str) -> Throughput:
    warm_up(instance, 2 * worker.concurrency)
    before = cpu_sample(worker)
    started = time.monotonic()
    tasks = [submit(instance, SHELL, command) for _ in range(count)]
    submitting = time.monotonic() - started
    done = wait_finished(tasks, timeout=600, interval=0.05)
    cpu = CpuUse.between(before, cpu_sample(worker))
    first = min(task.submission for task in done)
    last = max(task.finished_at for task in done if task.finished_at is not None)
    return Throughput(worker.concurrency, count, (last - first).total_seconds(), submitting, cpu)


# --- report ------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(
    start: StartLatency, delays: list[float], runs: list[Throughput], lines: int, command: str
) -> None:
    start50, start95 = percentile(start.total, 0.5), percentile(start.total, 0.95)
    delay50, delay95 = percentile(delays, 0.5), percentile(delays, 0.95)
    one = statistics.median(run.rate for run in runs if run.concurrency == 1)
    two = statistics.median(run.rate for run in runs if run.concurrency == 2)
    count = runs[0].tasks
    speedup = two / one
    rows = [
        (f"submit -> running p50 ({len(start.total)} no-op)", ms(start50),
         f"< {ms(TARGET_START_P50)}", verdict(start50 < TARGET_START_P50)),
        ("submit -> running p95", ms(start95), "", ""),
        ("submit -> running max", ms(max(start.total)), "", ""),
        (f"journal delay p50 ({lines} lines)", ms(delay50), "", ""),
        ("journal delay p95", ms(delay95), f"< {ms(TARGET_JOURNAL_P95)}",
         verdict(delay95 < TARGET_JOURNAL_P95)),
        ("journal delay max", ms(max(delays)), "", ""),
        (f"throughput, 1 process ({count} x {command})", f"{one:.1f} tasks/s", "", ""),
        (f"throughput, 2 processes ({count} x {command})", f"{two:.1f} tasks/s", "", ""),
        ("2 processes / 1 process", f"{speedup:.2f}", f">= {TARGET_SPEEDUP:g}",
         verdict(speedup >= TARGET_SPEEDUP)),
    ]  # fmt: skip
    print()
    print(f"{'figure':<42} {'value':>14}  {'target':<10} result")
    print("-" * 76)
    for label, value, target, result in rows:
        print(f"{label:<42} {value:>14}  {target:<10} {result}")
    print()
    if start.broker:
        print("Submit -> running, parts (p50 / p95 / max):")
        for label, samples in (
            ("submit: insert, commit, publish", start.submit),
            ("broker: publish -> worker 'received'", start.broker),
            ("child: 'received' -> claimed", start.child),
        ):
            print(
                f"  {label:<38} {ms(percentile(samples, 0.5)):>9} "
                f"{ms(percentile(samples, 0.95)):>9} {ms(max(samples)):>9}"
            )
        print("  (worker log times have millisecond resolution)")
    rounds = len(runs) // 2
    print(
        f"Throughput runs ({f'median of {rounds}' if rounds > 1 else 'one round'} above), CPU ms"
        " per task by party:\n  pool = pool processes and their commands, main = worker main"
        " process,\n  pg = PostgreSQL backends, bench = this process, other = rest of the host"
    )
    for run in runs:
        cpu = run.cpu
        parts = " ".join(
            f"{label} {seconds * 1000 / run.tasks:.1f}"
            for label, seconds in (
                ("pool", cpu.pool),
                ("main", cpu.main),
                ("pg", cpu.database),
                ("bench", cpu.bench),
                ("other", cpu.other),
            )
        )
        print(
            f"  c{run.concurrency} {run.rate:6.1f}/s {1000 / run.rate:4.1f} ms/task | {parts}"
            f" = {cpu.machine * 1000 / run.tasks:.1f} | {cpu.machine / cpu.seconds:.2f} cores"
        )


# --- main ---------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50, help="no-op tasks for the start latency")
    parser.add_argument(
        "--throughput-tasks", type=int, default=200, help="short tasks per throughput run"
    )
    parser.add_argument(
        "--throughput-command", default="true", help="shell command of the throughput tasks"
    )
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (median)")
    parser.add_argument("--lines", type=int, default=100, help="timestamp lines in the journal")
    parser.add_argument("--drop", action="store_true", help=f"drop {BENCH_DB} at the end")
    args = parser.parse_args()
    if min(args.tasks, args.throughput_tasks, args.lines, args.rounds) < 1:
        parser.error("counts must be positive")

    queue = f"fatbuildr-bench-{uuid.uuid4().hex[:12]}"
    temp = Path(tempfile.mkdtemp(prefix="fatbuildr-bench-tasks-"))
    (temp / "tmp").mkdir()
    env = base_environment(temp, queue)
    processes: list[Worker | WebServer] = []
    try:
        print(f"Database {BENCH_DB}: creating if missing, migrating...", flush=True)
        ensure_database(BENCH_DB, protected=PROTECTED)
        migrate_env = dict(env, DJANGO_SETTINGS_MODULE="fatbuildr_site.settings")
        manage(migrate_env, "migrate", "--noinput", "--skip-checks", "-v", "0")

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
        print(f"Queue {queue}, data root {env['FATBUILDR_DATA_DIR']}", flush=True)

        worker = Worker(env, temp, concurrency=1)
        processes.append(worker)
        wait_finished([submit(instance, NOOP)], timeout=60)  # warm-up
        print(f"Start latency: {args.tasks} no-op tasks, one idle worker...", flush=True)
        start = measure_start_latency(instance, worker, args.tasks)

        # scripts/serve as in production (its default of two processes), this run's env.
        server = WebServer(temp, workers=2, env=env, timeout=60)
        processes.append(server)
        pool = gunicorn_worker_class(server)
        print(f"Journal delay: {args.lines} lines through {server.url} ({pool})...", flush=True)
        delays = measure_journal_delay(instance, server, args.lines)
        server.stop()
        processes.remove(server)
        worker.stop()
        processes.remove(worker)

        runs = []
        for concurrency in [1, 2] * args.rounds:
            print(
                f"Throughput: {args.throughput_tasks} tasks, concurrency {concurrency}...",
                flush=True,
            )
            worker = Worker(env, temp, concurrency=concurrency)
            processes.append(worker)
            runs.append(
                measure_throughput(instance, worker, args.throughput_tasks, args.throughput_command)
            )
            worker.stop()
            processes.remove(worker)

        report(start, delays, runs, args.lines, args.throughput_command)
        return 0
    finally:
        tear_down(
            processes, queue=queue, temp=temp, drop=args.drop, database=BENCH_DB,
            protected=PROTECTED,
        )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Build benchmark: a deb build through the service against the same work by hand, and throughput.

Run from the repository root:

    .venv/bin/python bench/builds.py              # --rounds 3 (each part), about 7 minutes
    .venv/bin/python bench/builds.py --rounds 5 --throughput-rounds 1
    .venv/bin/python bench/builds.py --rounds 1 --skip-throughput --keep

Set-up: the PostgreSQL database `fatbuildr_bench_builds` (127.0.0.1:5432, user
postgres; created when missing, migrated, its task rows and registry index
deleted at start), the data root var/bench-builds/data (emptied at start,
removed at the end unless --keep), a Celery queue of its own
(`fatbuildr-bench-builds-<random>`, its Redis keys deleted at the end), the
production settings (`fatbuildr_site.settings`) for this process, the workers
and the web server. The default instance is loaded from instance-files/default.yml
and signed with an RSA 4096 keyring (the production default) made once and
kept in var/bench-builds/keyring-template. The build root is
FATBUILDR_ENVS_DIR/default/deb-bookworm-<arch> (default FATBUILDR_ENVS_DIR:
var/test-envs, the tests' roots); it is made with `environments.create` only
when missing. Workers are `celery -A fatbuildr_site worker` (prefork), the web
server is scripts/serve (gunicorn + uvicorn, 2 processes); all are stopped by
process group. A user in group `fatbuildr` submits with a bearer token.

1. One build, service against by hand (--rounds rounds, medians; artifact
   hello-e<r> in round r, so that every round builds a first version into a
   registry holding the earlier rounds' packages, on both sides; odd rounds
   start with the service, even rounds by hand):
   - service: the multipart request of fatbuildrctl (definition tarball and
     source tarball, made before the clock starts) is POSTed to
     /default/build; the clock stops when the client, following
     /default/watch/<id>.journal, receives the end frame "Task succeeded".
     One worker process (concurrency 1), already started. The arrival times
     of the journal's step messages split the time into upload and queue,
     prepare, build-dep, dpkg-buildpackage, lintian, publish.
   - by hand: the same source tarball and definition folder. Timed: the build
     folder (copy of the tarball as .orig, `tar -xf`, deb/ copied to debian/,
     patches/generic/* + series, changelog by two `debchange` calls), then in
     one overlay sandbox of the same root (builds.sandbox.Sandbox, as the
     service): `apt-get update && apt-get build-dep` as root with the network,
     the folder chowned to the build uid, `dpkg-buildpackage -us -uc -sa` as
     that uid without network, `lintian -I --show-overrides` on the .changes;
     then plain `reprepro include` of the .changes into a registry of its own
     whose conf/distributions (SignWith the instance's signing subkey) is the
     service's. The passphrase is preset in the keyring's gpg-agent (shared
     by both sides) before the rounds.
   ratio = service / by hand, target <= 1.5.
2. Throughput: eight artifacts (hello-b1 .. hello-b8) submitted back to back
   over HTTP, with a fresh worker of concurrency 1, then one of concurrency 2
   (two pool processes), into an empty registry each time (registry folder
   and index removed while no worker runs), so that every run does the same
   work (--throughput-rounds rounds, default --rounds; medians).
   builds/minute = 8 / (last finished_at - first POST) * 60. Target: two >=
   1.6 x one.

The CPU time of the whole host (/proc/stat, outside idle and iowait) is read
over each build of part 1 and each run of part 2: the sandboxed commands
escape the rusage of the worker (bubblewrap's PID namespace), so the host
figure is the one that holds them; it also holds whatever else runs.

The machine this was written for has 2 cores: the builds' own work (gcc,
dpkg-buildpackage, lintian, apt) competes with PostgreSQL, Redis, the web
server and the workers, and anything else running on the host; the report
prints the cores busy on average during each run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import requests

# Run as a script, sys.path starts with this folder, whose builds.py and tasks.py would hide
# the `builds` and `tasks` applications: the repository root goes first instead (also for
# `bench.common`).
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(REPO_ROOT)] + [
    p for p in sys.path if p and Path(p).resolve() != REPO_ROOT / "bench"
]

from bench.common import (  # noqa: E402
    DEVELOPMENT_SETTINGS,
    PROTECTED_DBS,
    clean_environment,
    delete_queue_keys,
    ensure_database,
    install_keyring,
    journal_frames,
    machine_busy,
    save_keyring,
    stop_agent,
    use_environment,
    wait_until,
)
from bench.common import Worker as CeleryWorker  # noqa: E402

if TYPE_CHECKING:
    from instances.models import Instance

WORK = REPO_ROOT / "var" / "bench-builds"
EXAMPLE = REPO_ROOT / "examples" / "hello-fatbuildr"

BENCH_DB = "fatbuildr_bench_builds"
# Nor bench/registry_api.py's database, which that bench drops and recreates at every run.
PROTECTED = PROTECTED_DBS | {"fatbuildr_bench"}

INSTANCE = "default"
USER = "jane"
AUTHOR, EMAIL = "Jane Maintainer", "jane@example.org"
DISTRIBUTION, DERIVATIVE, TAG = "bookworm", "main", "deb12"
UPSTREAM = "1.0"
VERSION = f"{UPSTREAM}-1.{TAG}"  # what the service chooses for a first build
THROUGHPUT_BUILDS = 8
BUILD_TIMEOUT = 900

TARGET_RATIO = 1.5
TARGET_SPEEDUP = 1.6

# Settings of the caller's shell that would make this run differ from production.
UNSET = (
    *DEVELOPMENT_SETTINGS,
    "FATBUILDR_CACHE_DIR",
    "FATBUILDR_MIRROR",
    "FATBUILDR_BUILD_UID",
    "FATBUILDR_TASK_HEARTBEAT_INTERVAL",
    "FATBUILDR_TASK_HEARTBEAT_TIMEOUT",
    "FATBUILDR_TASK_COMMAND_TIMEOUT",
    "FATBUILDR_KEYRING_KEY_SIZE",
    "FATBUILDR_KEYRING_KEY_TYPE",
)

# Journal messages of the build steps (builds/preparation.py, builds/formats/) that open
# each step, in order.
STEPS = (
    ("prepare", "Extracting the artifact definition"),
    ("build-dep", "Installing the build dependencies"),
    ("dpkg-buildpackage", "Building the packages"),
    ("lintian", "Running lintian"),
    ("publish", "Publishing "),
    ("end", "Task succeeded"),
)
PHASES = ("upload+queue", "prepare", "build-dep", "dpkg-buildpackage", "lintian", "publish")


# --- environment, database, processes ------------------------------------------------------


def bench_environment(queue: str, envs_dir: Path) -> dict[str, str]:
    """What this process, the workers and the server share."""
    return clean_environment(
        BENCH_DB,
        unset=UNSET,
        DJANGO_SETTINGS_MODULE="fatbuildr_site.settings",
        DJANGO_SECRET_KEY=secrets.token_hex(32),
        FATBUILDR_DATA_DIR=str(WORK / "data"),
        FATBUILDR_ENVS_DIR=str(envs_dir),
        FATBUILDR_TASK_QUEUE=queue,
        FATBUILDR_LOG_LEVEL="WARNING",
    )


class Worker(CeleryWorker):
    """A worker with the production settings of the bench environment."""

    name_prefix = "bench-builds"


# --- set-up of the instance ----------------------------------------------------------------


def signed_instance() -> Instance:
    """The default instance with the bench's keyring (made once, then copied)."""
    from instances.services import load_instance_file

    instance, _ = load_instance_file(path=REPO_ROOT / "instance-files" / "default.yml")
    template = WORK / "keyring-template"
    if not (template / ".done").exists():
        print("Creating an RSA 4096 keyring (once, kept in var/bench-builds)...", flush=True)
        shutil.rmtree(template, ignore_errors=True)
        save_keyring(instance, template)
        (template / ".done").touch()  # Last: an interrupted creation is done again.
    install_keyring(instance, template)
    return instance


def ensure_build_root(env: object) -> None:
    from builds import environments
    from tasks.runner import CommandRunner, ConsoleOutput

    if env.exists():  # type: ignore[attr-defined]
        return
    print(f"{env} is missing: creating it with mmdebstrap (minutes)...", flush=True)
    output = ConsoleOutput(sys.stderr, verbose=False)
    runner = CommandRunner(output, default_timeout=1800)
    environments.create(env, run=runner.run, log=output.log, replace=True)  # type: ignore[arg-type]


def fresh_registry(instance: Instance) -> None:
    """An empty registry: its files and its index (no worker may be running)."""
    from registry.models import RegistryFormat, RegistryRevision
    from registry.storage import instance_registry_root

    RegistryFormat.objects.filter(instance=instance).delete()
    RegistryRevision.objects.filter(instance=instance).delete()
    shutil.rmtree(instance_registry_root(instance.pk), ignore_errors=True)


# --- the client ----------------------------------------------------------------------------


def artifact_folder(destination: Path, name: str) -> Path:
    """The example artifact renamed to *name* (the tests' `artifact_copy`)."""
    from tests.test_builds_e2e import artifact_copy

    shutil.rmtree(destination, ignore_errors=True)
    return artifact_copy(destination, name=name)


def xz_tarball(folder: Path, arcname: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
        archive.add(folder, arcname=arcname)
    return buffer.getvalue()


def source_tarball(folder: Path, name: str) -> bytes:
    return xz_tarball(folder / "src" / f"{name}-{UPSTREAM}", f"{name}-{UPSTREAM}")


@dataclass
class Payload:
    """A build request as fatbuildrctl sends it, made before any clock starts."""

    name: str
    fields: dict[str, str]
    files: list[tuple[str, tuple[str, bytes]]]


class Client:
    def __init__(self, url: str, token: str, architecture: str) -> None:
        self.url = url
        self.architecture = architecture
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def payload(self, folder: Path, name: str, message: str) -> Payload:
        fields = {
            "format": "deb",
            "distribution": DISTRIBUTION,
            "architectures": self.architecture,
            "derivative": DERIVATIVE,
            "artifact": name,
            "user_name": AUTHOR,
            "user_email": EMAIL,
            "message": message,
        }
        files = [
            ("tarball", ("fatbuildr-artifact.tar.xz", xz_tarball(folder / "artifact", "."))),
            (f"source/{name}", (f"{name}-{UPSTREAM}.tar.xz", source_tarball(folder, name))),
        ]
        return Payload(name, fields, files)

    def submit(self, payload: Payload) -> str:
        response = self.session.post(
            f"{self.url}/{INSTANCE}/build", data=payload.fields, files=payload.files, timeout=60
        )
        if response.status_code != 200:
            raise RuntimeError(f"build submission refused: {response.status_code} {response.text}")
        return response.json()["task"]

    def watch(self, task_id: str) -> list[tuple[float, str]]:
        """(arrival time, message) of the journal's LOG frames, up to the end frame."""
        from tasks.journal import Command, is_end_frame

        events: list[tuple[float, str]] = []
        url = f"{self.url}/{INSTANCE}/watch/{task_id}.journal"
        with self.session.get(url, stream=True, timeout=(10, BUILD_TIMEOUT)) as response:
            response.raise_for_status()
            for arrival, command, payload in journal_frames(response):
                if command == Command.LOG:
                    events.append((arrival, payload.decode(errors="replace").partition(":")[2]))
                    if is_end_frame(command, payload):
                        return events
        raise RuntimeError(f"journal of {task_id} ended without its end frame")


def check_succeeded(task_ids: Sequence[str]) -> list:
    from tasks.models import Task, TaskResult

    tasks = Task.objects.in_bulk([uuid.UUID(pk) for pk in task_ids])
    failed = [task for task in tasks.values() if task.result != TaskResult.SUCCESS]
    if failed:
        raise RuntimeError(
            f"{len(failed)} build(s) did not succeed, e.g. {failed[0].pk}: {failed[0].error!r}"
        )
    return [tasks[uuid.UUID(pk)] for pk in task_ids]


# --- 1. one build each way -----------------------------------------------------------------


@dataclass
class Run:
    """One build: its total time and the time of each phase (seconds)."""

    total: float
    cpu: float  # CPU seconds of the whole host meanwhile
    phases: dict[str, float] = field(default_factory=dict)
    notes: dict[str, float] = field(default_factory=dict)

    @property
    def cores(self) -> float:
        return self.cpu / self.total


def service_build(client: Client, folder: Path, name: str) -> Run:
    payload = client.payload(folder, name, message=f"Benchmark build of {name}")
    cpu = machine_busy()
    started = time.time()
    task_id = client.submit(payload)
    posted = time.time()
    events = client.watch(task_id)
    ended = events[-1][0]
    cpu = machine_busy() - cpu
    (task,) = check_succeeded([task_id])
    marks = [started]
    for _, opening in STEPS:
        found = [at for at, message in events if message.startswith(opening)]
        if not found:
            raise RuntimeError(f"no journal message {opening!r} in build {task_id}")
        marks.append(found[0])
    phases = {phase: marks[i + 1] - marks[i] for i, phase in enumerate(PHASES)}
    notes = {
        "POST": posted - started,
        "queue (submission -> started_at)": (task.started_at - task.submission).total_seconds(),
        "run (started_at -> finished_at)": (task.finished_at - task.started_at).total_seconds(),
        "client sees the end (after finished_at)": ended - task.finished_at.timestamp(),
    }
    return Run(ended - started, cpu, phases, notes)


class ByHand:
    """The same build with the tools alone, in the same kind of sandbox."""

    def __init__(self, instance: Instance, root: Path, architecture: str, work: Path) -> None:
        from django.conf import settings

        from registry import signing
        from registry.repositories.deb import DebRepository

        self.root = root
        self.architecture = architecture
        self.work = work
        self.uid = settings.FATBUILDR_BUILD_UID
        self.gpg_env = signing.gpg_environment(instance.pk)
        self.registry = work / "registry"
        shutil.rmtree(work, ignore_errors=True)
        (self.registry / "conf").mkdir(parents=True)
        # The service's conf/distributions: same distributions, components and SignWith key.
        conf = DebRepository(instance, run=None).distributions_conf()  # type: ignore[arg-type]
        (self.registry / "conf" / "distributions").write_text(conf)

    def build(self, folder: Path, name: str, tarball: bytes, round_: int) -> Run:
        from builds.sandbox import BUILD_MOUNT, Sandbox
        from registry.storage import deb_architecture
        from tasks.runner import command_environment

        place = self.work / f"round-{round_}"
        build_dir = place / "build"
        build_dir.mkdir(parents=True)
        uploaded = place / f"{name}-{UPSTREAM}.tar.xz"  # what the client has, before the clock
        uploaded.write_bytes(tarball)
        source_dir = build_dir / f"{name}-{UPSTREAM}"
        changes = build_dir / f"{name}_{VERSION}_{deb_architecture(self.architecture)}.changes"
        log = (place / "commands.log").open("wb")
        phases: dict[str, float] = {"upload+queue": 0.0}
        cpu = machine_busy()
        clock = time.time()
        started = clock

        def lap(phase: str) -> None:
            nonlocal clock
            now = time.time()
            phases[phase] = now - clock
            clock = now

        try:
            orig = build_dir / f"{name}_{UPSTREAM}.orig.tar.xz"
            shutil.copyfile(uploaded, orig)
            run(["tar", "-xf", orig, "-C", build_dir], log)
            shutil.copytree(folder / "artifact" / "deb", source_dir / "debian")
            patches = sorted((folder / "artifact" / "patches" / "generic").iterdir())
            (source_dir / "debian" / "patches").mkdir()
            for patch in patches:
                shutil.copyfile(patch, source_dir / "debian" / "patches" / patch.name)
            (source_dir / "debian" / "patches" / "series").write_text(
                "".join(f"{patch.name}\n" for patch in patches)
            )
            changelog = source_dir / "debian" / "changelog"
            dch_env = command_environment(
                {"DEBEMAIL": EMAIL, "DEBFULLNAME": AUTHOR, "EDITOR": "true", "VISUAL": "true"}
            )
            run(
                ["debchange", "--no-conf", "--changelog", changelog, "--newversion", VERSION,
                 "--distribution", DISTRIBUTION, "--force-distribution", "--create",
                 "--package", name, f"Benchmark build of {name}"],
                log, env=dch_env,
            )  # fmt: skip
            run(
                ["debchange", "--no-conf", "--changelog", changelog, "--append",
                 f"Built by hand, round {round_}"],
                log, env=dch_env,
            )  # fmt: skip
            lap("prepare")

            sandbox = Sandbox(self.root, place / "sandbox", build_dir, self.uid)
            sandbox.prepare()
            try:
                install = f"apt-get update -q && apt-get build-dep -y -q ./{source_dir.name}"
                run(
                    sandbox.command(
                        ["sh", "-c", install],
                        privileged=True,
                        env={"DEBIAN_FRONTEND": "noninteractive"},
                    ),
                    log,
                )
                lap("build-dep")
                run(["chown", "-R", f"{self.uid}:{self.uid}", build_dir], log)
                run(
                    sandbox.command(
                        ["dpkg-buildpackage", "-us", "-uc", "-sa"],
                        cwd=f"{BUILD_MOUNT}/{source_dir.name}",
                    ),
                    log,
                )
                lap("dpkg-buildpackage")
                # Findings are reported, not fatal, as in the service.
                run(
                    sandbox.command(["lintian", "-I", "--show-overrides", changes.name]),
                    log,
                    check=False,
                )
            finally:
                sandbox.discard()
            lap("lintian")
            run(
                ["reprepro", "--basedir", self.registry, "--component", DERIVATIVE,
                 "--ignore=wrongdistribution", "--ignore=missingfile",
                 "include", DISTRIBUTION, changes],
                log, env=self.gpg_env,
            )  # fmt: skip
            lap("publish")
        finally:
            log.close()
        return Run(time.time() - started, machine_busy() - cpu, phases)


def run(command: Sequence[object], log: IO[bytes], *, env=None, check: bool = True) -> None:
    log.write(f"$ {' '.join(str(c) for c in command)}\n".encode())
    log.flush()
    completed = subprocess.run(
        [str(c) for c in command], stdout=log, stderr=subprocess.STDOUT, env=env, check=False
    )
    if check and completed.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({completed.returncode}), see {log.name}")


# --- 2. throughput -------------------------------------------------------------------------


@dataclass
class Throughput:
    concurrency: int
    seconds: float  # first POST to last finished_at
    posting: float  # how long the eight POSTs took
    build_times: list[float]  # started_at -> finished_at of each build
    machine_cpu: float  # CPU seconds of the whole host over the run

    @property
    def per_minute(self) -> float:
        return THROUGHPUT_BUILDS / self.seconds * 60

    @property
    def cores(self) -> float:
        return self.machine_cpu / self.seconds


def measure_throughput(
    instance: Instance,
    client: Client,
    env: dict[str, str],
    log_dir: Path,
    concurrency: int,
    payloads: list[Payload],
) -> Throughput:
    from tasks.models import Task, TaskState

    fresh_registry(instance)
    worker = Worker(env, log_dir, concurrency)
    try:
        time.sleep(1)  # let the pool processes settle
        machine_before = machine_busy()
        started = time.time()
        task_ids = [client.submit(payload) for payload in payloads]
        posting = time.time() - started
        ids = [uuid.UUID(pk) for pk in task_ids]
        wait_until(
            lambda: not Task.objects.filter(pk__in=ids).exclude(state=TaskState.FINISHED).exists(),
            timeout=BUILD_TIMEOUT * len(ids),
            what=f"{len(ids)} builds to finish",
            interval=0.5,
        )
        machine_cpu = machine_busy() - machine_before
    finally:
        worker.stop()
    tasks = check_succeeded(task_ids)
    last = max(task.finished_at for task in tasks).timestamp()
    return Throughput(
        concurrency=concurrency,
        seconds=last - started,
        posting=posting,
        build_times=[(t.finished_at - t.started_at).total_seconds() for t in tasks],
        machine_cpu=machine_cpu,
    )


# --- report --------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def median_phases(runs: list[Run]) -> dict[str, float]:
    return {phase: statistics.median(r.phases[phase] for r in runs) for phase in PHASES}


def report_builds(service: list[Run], hand: list[Run]) -> None:
    ours = statistics.median(r.total for r in service)
    bare = statistics.median(r.total for r in hand)
    ratio = ours / bare
    print()
    print(f"1. One deb build of the example, build root present (median of {len(service)})")
    print(f"   service, POST -> end frame seen by the client  {ours:6.1f} s")
    print(f"   by hand, same work in the same sandbox        {bare:6.1f} s")
    print(
        f"   ratio service / by hand                       {ratio:6.2f}   "
        f"(target <= {TARGET_RATIO:g}: {verdict(ratio <= TARGET_RATIO)})"
    )
    ours_phases, bare_phases = median_phases(service), median_phases(hand)
    print(f"   {'phase (medians, s)':<24}{'service':>9}{'by hand':>9}")
    for phase in PHASES:
        print(f"     {phase:<22}{ours_phases[phase]:9.2f}{bare_phases[phase]:9.2f}")
    for label, runs in (("service", service), ("by hand", hand)):
        cpu = statistics.median(r.cpu for r in runs)
        cores = statistics.median(r.cores for r in runs)
        print(f"     {'host CPU, ' + label:<22}{cpu:7.1f} s = {cores:.2f} cores busy on average")
    print("   per round (s): total | " + " | ".join(PHASES) + " | host CPU")
    for label, runs in (("service", service), ("by hand", hand)):
        for index, r in enumerate(runs, 1):
            parts = " | ".join(f"{r.phases[p]:.2f}" for p in PHASES)
            print(f"     {label} {index}: {r.total:6.2f} | {parts} | {r.cpu:.1f}")
    print("   service, medians of:")
    for note in service[0].notes:
        print(f"     {note:<42} {statistics.median(r.notes[note] for r in service):6.2f} s")


def report_throughput(runs: list[Throughput]) -> None:
    one_runs = [r for r in runs if r.concurrency == 1]
    one = statistics.median(r.per_minute for r in one_runs)
    two = statistics.median(r.per_minute for r in runs if r.concurrency == 2)
    speedup = two / one
    rounds = len(one_runs)
    cores = os.cpu_count() or 1
    print()
    print(
        f"2. Throughput, {THROUGHPUT_BUILDS} different artifacts submitted at once"
        f" ({f'median of {rounds} rounds' if rounds > 1 else 'one round'})"
    )
    print(f"   one worker process      {one:6.2f} builds/minute")
    print(f"   two worker processes    {two:6.2f} builds/minute")
    print(
        f"   ratio two / one         {speedup:6.2f}   "
        f"(target >= {TARGET_SPEEDUP:g}: {verdict(speedup >= TARGET_SPEEDUP)})"
    )
    print(
        "   runs: processes | seconds | builds/min | 8 POSTs | build run p50 / max |"
        " host CPU per build | cores busy"
    )
    for r in runs:
        print(
            f"     {r.concurrency} | {r.seconds:6.1f} | {r.per_minute:5.2f} | {r.posting:4.2f} s |"
            f" {statistics.median(r.build_times):5.1f} / {max(r.build_times):5.1f} s |"
            f" {r.machine_cpu / THROUGHPUT_BUILDS:5.2f} s | {r.cores:4.2f} of {cores}"
        )
    # If every build needs as much CPU as in the one-process runs, the host's cores cap the rate.
    per_build = statistics.median(r.machine_cpu for r in one_runs) / THROUGHPUT_BUILDS
    ceiling = cores / per_build * 60
    print(
        f"   CPU ceiling: {cores} cores / {per_build:.2f} CPU s per build (one-process runs,"
        f" whole host) = {ceiling:.2f} builds/minute = {ceiling / one:.2f} x one process"
    )


# --- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each part (median)")
    parser.add_argument(
        "--throughput-rounds", type=int, help="rounds of part 2, if not --rounds (median)"
    )
    parser.add_argument("--skip-throughput", action="store_true", help="part 1 only")
    parser.add_argument(
        "--envs",
        type=Path,
        default=Path(os.environ.get("FATBUILDR_ENVS_DIR") or REPO_ROOT / "var" / "test-envs"),
        help="FATBUILDR_ENVS_DIR: where the build roots are (default var/test-envs)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data root at the end")
    args = parser.parse_args()
    if args.throughput_rounds is None:
        args.throughput_rounds = args.rounds
    if min(args.rounds, args.throughput_rounds) < 1:
        parser.error("rounds must be positive")

    queue = f"fatbuildr-bench-builds-{uuid.uuid4().hex[:12]}"
    env = bench_environment(queue, args.envs.resolve())
    data = WORK / "data"
    shutil.rmtree(data, ignore_errors=True)
    logs = WORK / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    for folder in (data, logs):
        folder.mkdir(parents=True)
    processes: list[Worker | object] = []
    keyring_home: Path | None = None
    bench_started = time.monotonic()
    try:
        print(f"Database {BENCH_DB}: creating if missing, migrating...", flush=True)
        ensure_database(BENCH_DB, protected=PROTECTED)
        use_environment(env)
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth.models import Group, User
        from django.core.management import call_command

        from accounts.tokens import generate_token
        from builds.environments import BuildEnvironment
        from registry import keyrings
        from tasks.models import Task
        from tests.workers import WebServer

        host = settings.FATBUILDR_HOST_ARCHITECTURE
        call_command("migrate", verbosity=0)
        Task.objects.all().delete()
        instance = signed_instance()
        keyring_home = keyrings.keyring_home(instance.pk)
        fresh_registry(instance)
        build_env = BuildEnvironment(instance.pk, "deb", DISTRIBUTION, host)
        ensure_build_root(build_env)
        print(f"Build root {build_env.root}, data root {data}, queue {queue}", flush=True)
        user, _ = User.objects.get_or_create(username=USER)
        user.groups.add(Group.objects.get_or_create(name="fatbuildr")[0])

        server = WebServer(logs, workers=2, env=env, timeout=60)
        processes.append(server)
        client = Client(server.url, generate_token(instance=instance, username=USER), host)

        # 1. One build each way.
        worker = Worker(env, logs, concurrency=1)
        processes.append(worker)
        hand = ByHand(instance, build_env.root, host, WORK / "by-hand")
        service_runs, hand_runs = [], []
        for round_ in range(1, args.rounds + 1):
            name = f"hello-e{round_}"
            folder = artifact_folder(WORK / "artifacts" / name, name)
            tarball = source_tarball(folder, name)
            # Alternate which side goes first: neither always gets the warmer caches.
            for side in ("service", "by hand") if round_ % 2 else ("by hand", "service"):
                print(f"Round {round_}/{args.rounds}: {name}, {side}...", flush=True)
                if side == "service":
                    service_runs.append(service_build(client, folder, name))
                else:
                    hand_runs.append(hand.build(folder, name, tarball, round_))
            print(
                f"  service {service_runs[-1].total:.1f} s, by hand {hand_runs[-1].total:.1f} s",
                flush=True,
            )
        worker.stop()
        processes.remove(worker)

        # 2. Throughput.
        throughput: list[Throughput] = []
        if not args.skip_throughput:
            payloads = []
            for index in range(1, THROUGHPUT_BUILDS + 1):
                name = f"hello-b{index}"
                folder = artifact_folder(WORK / "artifacts" / name, name)
                payloads.append(client.payload(folder, name, message=f"Throughput {name}"))
            for concurrency in [1, 2] * args.throughput_rounds:
                print(
                    f"Throughput: {THROUGHPUT_BUILDS} builds, {concurrency} worker process(es)...",
                    flush=True,
                )
                result = measure_throughput(instance, client, env, logs, concurrency, payloads)
                throughput.append(result)
                print(
                    f"  {result.seconds:.1f} s, {result.per_minute:.2f} builds/minute", flush=True
                )

        print()
        print(
            f"Host: {os.cpu_count()} cores; PostgreSQL, Redis, the web server and the workers"
            " share them with the builds' own work (gcc, dpkg-buildpackage, lintian, apt)."
        )
        report_builds(service_runs, hand_runs)
        if throughput:
            report_throughput(throughput)
        print(f"\nWhole bench: {(time.monotonic() - bench_started) / 60:.1f} minutes")
        return 0
    finally:
        for process in reversed(processes):
            process.stop()  # type: ignore[attr-defined]
        delete_queue_keys(queue)
        if keyring_home is not None:
            stop_agent(keyring_home)
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
            shutil.rmtree(WORK / "by-hand", ignore_errors=True)
            shutil.rmtree(WORK / "artifacts", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""What the benchmarks share: their databases, environment, worker processes, waits and probes.

The bench scripts import this as `bench.common` once the top of each has put the
repository root first on sys.path. Nothing here imports Django or the project at
import time: a bench sets its environment up first (DATABASE_URL, settings
module, data root) and calls django.setup() afterwards; the few helpers that
need the project import it when called. bench/registry_api.py also relies on
this to keep its measuring process free of Django.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import psycopg

if TYPE_CHECKING:
    import requests

    from instances.models import Instance

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
CELERY = REPO_ROOT / ".venv" / "bin" / "celery"

PG_SERVER = "postgres://postgres@127.0.0.1:5432"
# Databases no bench may create, drop or write to: development, tests, the server's own.
PROTECTED_DBS = frozenset({"fatbuildr", "test_fatbuildr", "test", "root", "postgres"})
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# Settings of the caller's shell that would make a bench's processes differ from production.
DEVELOPMENT_SETTINGS = (
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "FATBUILDR_INSTANCE",
    "FATBUILDR_POLICY",
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --- database and environment --------------------------------------------------------------


def database_url(name: str) -> str:
    return f"{PG_SERVER}/{name}"


def _maintenance_connection(name: str, protected: Collection[str]) -> psycopg.Connection:
    """A connection to the server's `postgres` database, to create or drop *name*.

    Autocommit: CREATE and DROP DATABASE cannot run inside a transaction.
    """
    assert name not in protected, f"{name} is not a bench database"
    return psycopg.connect(database_url("postgres"), autocommit=True)


def ensure_database(name: str, *, protected: Collection[str] = PROTECTED_DBS) -> None:
    """Create the bench database *name* unless it exists (its tables are the caller's)."""
    with _maintenance_connection(name, protected) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if exists.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str, *, protected: Collection[str] = PROTECTED_DBS) -> None:
    """Drop the bench database *name* if it exists, closing whatever is still connected."""
    with _maintenance_connection(name, protected) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clean_environment(
    database: str, *, unset: Collection[str] = DEVELOPMENT_SETTINGS, **values: str
) -> dict[str, str]:
    """This process's environment without *unset*, on the bench *database*, with *values*."""
    env = {name: value for name, value in os.environ.items() if name not in unset}
    env.update(DATABASE_URL=database_url(database), **values)
    return env


def use_environment(env: Mapping[str, str]) -> None:
    """Make os.environ exactly *env*, so that django.setup() in this process reads only it."""
    for name in set(os.environ) - set(env):
        del os.environ[name]
    os.environ.update(env)


def manage(env: Mapping[str, str], *args: str) -> None:
    """`manage.py *args*` in a child process with *env*; raise if it fails."""
    subprocess.run([str(PYTHON), "manage.py", *args], cwd=REPO_ROOT, env=env, check=True)


# --- processes -----------------------------------------------------------------------------


def stop_group(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process group started with *process*, SIGKILL it if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    # Pool children or server workers may outlive their parent: the whole group goes.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_until(
    predicate: Callable[[], object], *, timeout: float, what: str, interval: float = 0.1
) -> None:
    """Call *predicate* every *interval* seconds until it is true; RuntimeError after *timeout*."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


class Worker:
    """A `celery -A fatbuildr_site worker` process group (prefork) consuming the bench queue.

    It runs in a session of its own so that stop() ends the main process and its
    pool children together. A bench sets the class attributes in a subclass.
    """

    name_prefix = "bench"
    # DJANGO_SETTINGS_MODULE of the worker; None: the one of the environment given.
    settings_module: str | None = None
    # How often the start checks the log for the "ready." line.
    ready_interval = 0.1

    def __init__(self, env: Mapping[str, str], log_dir: Path, concurrency: int) -> None:
        name = f"{self.name_prefix}-{uuid.uuid4().hex[:8]}"
        self.log_path = log_dir / f"{name}.log"
        self.concurrency = concurrency
        cmd = [str(CELERY), "-A", "fatbuildr_site", "worker", "--loglevel", "INFO"]
        cmd += ["--concurrency", str(concurrency), "--hostname", f"{name}@%h"]
        # No gossip with the other workers of this Redis (tests, other benches).
        cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        cmd += ["--queues", env["FATBUILDR_TASK_QUEUE"]]
        # The root logger at INFO: the start waits for celery's " ready." line in the log.
        worker_env = dict(env, FATBUILDR_LOG_LEVEL="INFO")
        if self.settings_module is not None:
            worker_env["DJANGO_SETTINGS_MODULE"] = self.settings_module
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                cmd, cwd=REPO_ROOT, env=worker_env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            wait_until(self._ready, timeout=60, what=f"worker {name}", interval=self.ready_interval)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited:\n{self.log()}")
        return b" ready." in self.log_path.read_bytes()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_group(self.process)


def delete_queue_keys(queue: str) -> None:
    """The queue lists (and their priority variants) and bindings of this run only."""
    import redis  # Here: bench/registry_api.py, which needs no Redis, measures in-process.

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"*{queue}*"))
    if keys:
        client.delete(*keys)


def stop_agent(home: Path) -> None:
    """Stop the gpg-agent of the keyring *home*, if one runs (a later use starts a fresh one)."""
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
        check=False, capture_output=True, timeout=30,
    )  # fmt: skip


# --- keyrings ------------------------------------------------------------------------------


def save_keyring(instance: Instance, template: Path) -> None:
    """Create the instance's keyring (RSA 4096 by default: minutes) and copy it to *template*.

    Under the data root of the current settings. The agent is stopped first and its
    sockets left out, so that each copy gets an agent of its own.
    """
    from registry import keyrings

    home = keyrings.keyring_home(instance.pk)
    keyrings.create_keyring(instance, log=lambda *args, **kwargs: None)
    stop_agent(home)
    shutil.copytree(home, template, ignore=shutil.ignore_patterns("S.*"))


def install_keyring(instance: Instance, template: Path) -> None:
    """Copy *template* into the instance's keyring under the current data root, ready to sign.

    The Keyring row is written from it and the passphrase preset in its agent, as a
    worker does before signing.
    """
    from registry import keyrings, signing

    home = keyrings.keyring_home(instance.pk)
    shutil.copytree(template, home, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".done"))
    keyrings.sync_keyring_record(instance)
    signing.preset_agent_passphrase(instance.pk)


# --- measures ------------------------------------------------------------------------------


def machine_busy() -> float:
    """CPU seconds spent by the whole machine outside idle and iowait; 0 when unreadable."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    # user nice system idle iowait irq softirq steal: guest time is already in user and nice.
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS


def journal_frames(response: requests.Response) -> Iterator[tuple[float, int, bytes]]:
    """(arrival time, command, payload) of each whole frame of a streamed task journal.

    Reads with read1, whatever bytes have arrived, not a fixed-size read that would
    wait for a buffer to fill: arrival times are what the benches measure. Ends when
    the server closes the stream; a caller stops at the end frame by leaving the loop.
    """
    from tasks.journal import HEADER

    buffer = bytearray()
    while True:
        data = response.raw.read1(65536)
        arrival = time.time()
        if not data:
            return
        buffer += data
        while len(buffer) >= HEADER.size:
            command, length = HEADER.unpack_from(buffer)
            if len(buffer) < HEADER.size + length:
                break
            payload = bytes(buffer[HEADER.size : HEADER.size + length])
            del buffer[: HEADER.size + length]
            yield arrival, command, payload


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class Stoppable(Protocol):
    def stop(self) -> None: ...


def tear_down(
    processes: Sequence[Stoppable],
    *,
    queue: str,
    temp: Path,
    drop: bool,
    database: str,
    protected: Collection[str] = PROTECTED_DBS,
) -> None:
    """What a bench with workers leaves: its processes (stopped last first), its queue
    keys, this process's connections, its database if asked, its temporary folder."""
    for process in reversed(processes):
        process.stop()
    delete_queue_keys(queue)
    with contextlib.suppress(Exception):
        from django.db import connections

        connections.close_all()
    if drop:
        drop_database(database, protected=protected)
    shutil.rmtree(temp, ignore_errors=True)

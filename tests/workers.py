"""Real Celery workers and web servers for the end-to-end tests, and helpers to wait on tasks.

Workers run `celery -A fatbuildr_site worker` with the test settings against
the test database, in their own session so that a test can SIGKILL the
whole worker (main process and pool children) at once.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import redis
import requests
from django.conf import settings
from django.db import connection

from tasks.journal import read_frames
from tasks.models import Task, TaskState

REPO_ROOT = Path(__file__).resolve().parent.parent
CELERY = Path(sys.executable).parent / "celery"


def test_database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class Worker:
    """One `celery worker` process group, started as scripts/run starts them: a task worker,
    or (*maintenance*) the one-process maintenance worker with the beat scheduler, which
    runs the reaper and the reconciler (their periods shortened by tests/settings.py)."""

    def __init__(
        self,
        log_dir: Path,
        *,
        concurrency: int = 1,
        maintenance: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = f"tests-{'maintenance-' if maintenance else ''}{uuid.uuid4().hex[:8]}"
        self.log_path = log_dir / f"{self.name}.log"
        cmd = [str(CELERY), "-A", "fatbuildr_site", "worker", "--loglevel", "INFO"]
        cmd += ["--hostname", f"{self.name}@%h"]
        cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        if maintenance:
            cmd += ["--queues", settings.FATBUILDR_MAINTENANCE_QUEUE, "--concurrency", "1"]
            cmd += ["--beat", "--schedule", str(log_dir / f"{self.name}.schedule")]
        else:
            cmd += ["--queues", settings.CELERY_TASK_DEFAULT_QUEUE]
            cmd += ["--concurrency", str(concurrency)]
        worker_env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings")
        worker_env.update(DATABASE_URL=test_database_url(), **(env or {}))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd, cwd=REPO_ROOT, env=worker_env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while b" ready." not in self.log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"worker did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole worker, as a crash or the OOM killer would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def test_queues() -> tuple[str, str]:
    return settings.CELERY_TASK_DEFAULT_QUEUE, settings.FATBUILDR_MAINTENANCE_QUEUE


def purge_test_queues() -> None:
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(*test_queues())


def forget_test_queues() -> None:
    """At the end of the run: also the queues' bindings, which kombu keeps in Redis.
    (Never earlier: this process would go on publishing to an exchange without binding.)"""
    queues = test_queues()
    bindings = [f"_kombu.binding.{queue}" for queue in queues]
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(*queues, *bindings)
    # Messages a SIGKILLed worker had taken: kombu would restore them in 12 hours.
    for tag, message in client.hscan_iter("unacked"):
        if any(f'"routing_key": "{queue}"'.encode() in message for queue in queues):
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)


def wait_for(
    predicate: Callable[[], object], *, timeout: float = 30, message: str = "condition"
) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.05)


def wait_finished(task: Task, *, timeout: float = 30) -> Task:
    wait_for(
        lambda: Task.objects.filter(pk=task.pk, state=TaskState.FINISHED).exists(),
        timeout=timeout,
        message=f"task {task.pk} to finish",
    )
    return Task.objects.get(pk=task.pk)


def wait_running(task: Task, *, timeout: float = 30) -> Task:
    wait_for(
        lambda: Task.objects.filter(pk=task.pk).exclude(state=TaskState.PENDING).exists(),
        timeout=timeout,
        message=f"task {task.pk} to start",
    )
    return Task.objects.get(pk=task.pk)


def process_running(pid: int) -> bool:
    """Whether *pid* is a live process (a zombie awaiting its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def journal_frames(task: Task) -> list[tuple[int, bytes]]:
    with open(task.journal_path, "rb") as handle:
        return [(command, payload) for command, payload, _ in read_frames(handle)]


def journal_text(task: Task) -> str:
    """LOG messages and command output of a journal, as one text."""
    frames = journal_frames(task)
    return "".join(payload.decode() + ("\n" if command == 0 else "") for command, payload in frames)


class WebServer:
    """The production web server (scripts/serve) on a free local port (or *port*: a server
    started again where a stopped one was). *static_root*: the collected static files it serves
    (the `static_root` fixture of tests/browser.py).

    By default against the test database and data root; *env* (the benchmarks)
    gives the whole environment instead. *prefix* is a command that runs scripts/serve
    (as another user, say).
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        timeout: float = 30,
        prefix: Sequence[str] = (),
        port: int | None = None,
        static_root: Path | None = None,
    ) -> None:
        if port is None:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_dir / f"web-{port}.log"
        if env is None:
            env = dict(
                os.environ,
                DATABASE_URL=test_database_url(),
                FATBUILDR_DATA_DIR=str(settings.FATBUILDR_DATA_DIR),
            )
        if static_root is not None:
            env = dict(env, DJANGO_STATIC_ROOT=str(static_root))
        env = dict(
            env,
            DJANGO_SETTINGS_MODULE="fatbuildr_site.settings",
            FATBUILDR_BIND=f"127.0.0.1:{port}",
            FATBUILDR_WEB_WORKERS=str(workers),
        )
        with open(self.log_path, "ab") as log:  # a restarted server logs after the first
            self.process = subprocess.Popen(
                [*prefix, str(REPO_ROOT / "scripts" / "serve")], cwd=REPO_ROOT, env=env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            wait_for(self._ready, timeout=timeout, message=f"web server on port {port}")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"web server exited:\n{self.log_path.read_text()}")
        try:
            return requests.get(f"{self.url}/version", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            # Not listening yet, or a first answer slower than the probe on a busy host.
            return False

    def kill(self) -> None:
        """Kill the server at once, open streams and all (a crash, or an impatient restart)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class RedisServer:
    """A private Redis without persistence, which a test may kill and start again."""

    def __init__(self, log_dir: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        cmd = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        cmd += ["--appendonly", "no", "--dir", str(self.log_dir)]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _pings(client), timeout=10, message=f"redis on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: every message it held is gone."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False

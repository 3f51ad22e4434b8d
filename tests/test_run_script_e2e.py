"""scripts/run as a newcomer runs it: it sets up, serves, runs the workers, and Ctrl-C leaves
no process behind, the gpg-agent its keyring creation started included."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from registry.models import Keyring
from tests import workers
from tests.conftest import REPO_ROOT
from tests.workers import wait_for

pytestmark = pytest.mark.e2e


def processes_of(session: int, marker: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process in *session* or whose command line names
    *marker* (a daemon leaves its session, not its arguments)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fields[0] != "Z" and (int(fields[3]) == session or marker in cmdline):
            found.append((int(entry.name), cmdline))
    return found


def test_ctrl_c_stops_the_server_the_workers_and_the_keyring_agent(transactional_db, tmp_path):
    data = tmp_path / "data"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(
        os.environ,
        DATABASE_URL=workers.test_database_url(),
        REDIS_URL=settings.CELERY_BROKER_URL,
        FATBUILDR_DATA_DIR=str(data),
        FATBUILDR_BIND=f"127.0.0.1:{port}",
        FATBUILDR_KEYRING_KEY_SIZE="2048",
        FATBUILDR_WORKER_CONCURRENCY="1",
    )
    log = tmp_path / "run.log"
    with open(log, "wb") as output:
        run = subprocess.Popen(
            [str(REPO_ROOT / "scripts" / "run")],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    home = str(data / "keyrings" / "default")
    try:
        # The instance file is loaded, its keyring made by the worker (gpg starts an agent).
        wait_for(lambda: Keyring.objects.filter(instance_id="default").exists(), timeout=180,
                 message=f"the keyring made by the worker:\n{log.read_text()}")  # fmt: skip
        answer = requests.get(f"http://127.0.0.1:{port}/default/keyring.asc", timeout=10)
        assert answer.status_code == 200 and "BEGIN PGP PUBLIC KEY" in answer.text
        assert any("gpg-agent" in cmd and home in cmd for _, cmd in processes_of(-1, home))
        assert processes_of(run.pid, home)

        os.killpg(run.pid, signal.SIGINT)  # What Ctrl-C sends to the foreground group.
        assert run.wait(timeout=60) == 130
        deadline = time.monotonic() + 10
        while processes_of(run.pid, home) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_of(run.pid, home) == []
        assert "Stopped the gpg-agent of keyring default" in log.read_text()
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()

"""The permission model of Docker Compose, for real (README "Permissions", tasks/workspaces.py).

The production web server runs as an unprivileged user whose group owns the data
root, a Celery worker as root, on one fresh data root: the worker makes the
keyring and the instance's first workspace as root, then a deb and an rpm build
are submitted through the web server, which writes their workspaces there; both
builds succeed, the web server serves every file the worker published, and the
README's deletion example runs through it.
"""

import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import Group, User

from registry.keyrings import queue_keyring_creation
from registry.models import Artifact
from tasks.models import Task, TaskResult
from tests import workers
from tests.conftest import REPO_ROOT
from tests.test_builds_e2e import (  # noqa: F401 (build_roots: a fixture)
    Farm,
    artifact_copy,
    build_roots,
    wait_build,
)
from tests.workers import WebServer, wait_finished

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("build_roots")]

# The web server's user and group: numbers without an account, like a container's user.
WEB_UID = WEB_GID = 64410


@pytest.fixture
def data_dir(settings, monkeypatch) -> Iterator[Path]:
    """Instead of conftest's: a data root the web server's user owns, as the image makes
    /var/lib/fatbuildr, in a folder it can reach (pytest's temporary folders are 0700)."""
    parent = Path(tempfile.mkdtemp(prefix="fatbuildr-shared-"))
    parent.chmod(0o755)
    data = parent / "data"
    data.mkdir()
    os.chown(data, WEB_UID, WEB_GID)
    settings.FATBUILDR_DATA_DIR = data
    monkeypatch.setenv("FATBUILDR_DATA_DIR", str(data))
    yield data
    shutil.rmtree(parent)


def as_web_user(stash: Path) -> list[str]:
    """Command prefix running a command as the web server's user, without supplementary
    groups. When the interpreter lives below a folder that user cannot traverse (a pyenv
    in /root), the command gets a private mount namespace in which that folder is an empty
    tmpfs holding only the interpreter's prefix; *stash* is an empty folder to move it by."""
    setpriv = ["setpriv", f"--reuid={WEB_UID}", f"--regid={WEB_GID}", "--clear-groups", "--"]
    prefix = Path(sys.base_prefix).resolve()
    closed = next(
        (
            folder
            for folder in [*reversed(prefix.parents), prefix]
            if not folder.stat().st_mode & stat.S_IXOTH
        ),
        None,
    )
    if closed is None:
        return setpriv
    if REPO_ROOT.resolve().is_relative_to(closed):
        pytest.skip(f"the checkout is in {closed}, which other users cannot traverse")
    script = (
        'set -e; mount --bind "$1" "$2"; mount -t tmpfs -o mode=0755 fatbuildr-tests "$3"; '
        'mkdir -p "$1"; mount --move "$2" "$1"; shift 3; exec "$@"'
    )
    namespace = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
    return [*namespace, str(prefix), str(stash), str(closed), *setpriv]


def credentials(pid: int) -> tuple[int, int, list[int]]:
    """The real uid and gid of a process, and its supplementary groups."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    groups = [int(group) for group in fields["Groups"].split()]
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0]), groups


def _private(relative: Path) -> bool:
    return relative.parts[1:2] in (("conf",), ("db",)) or any(
        part.startswith(".") for part in relative.parts
    )


def owner(path: Path) -> tuple[int, int, int]:
    status = path.stat()
    return status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)


def test_web_server_as_a_user_and_worker_as_root_build_and_publish_on_one_data_root(
    default_instance, data_dir, start_worker, token_for, tmp_path, monkeypatch
):
    monkeypatch.setenv("FATBUILDR_KEYRING_KEY_SIZE", "2048")  # for speed, in the worker
    start_worker(concurrency=2)
    # As `instances load` does on a fresh data root: the worker makes the keyring, and the
    # instance's first workspace, as root.
    keyring = queue_keyring_creation(default_instance, user="admin")
    assert wait_finished(keyring, timeout=120).result == TaskResult.SUCCESS
    workspaces = data_dir / "workspaces"
    assert owner(workspaces) == (0, WEB_GID, 0o775)
    assert owner(workspaces / "default") == (0, WEB_GID, 0o775)
    assert owner(workspaces / "default" / str(keyring.pk))[0] == 0

    stash = tmp_path / "stash"
    stash.mkdir()
    env = dict(
        os.environ,
        DATABASE_URL=workers.test_database_url(),
        FATBUILDR_DATA_DIR=str(data_dir),
        # var/secret_key is root's alone.
        DJANGO_SECRET_KEY="tests-only-secret-key-not-for-production",
    )
    web = WebServer(tmp_path, env=env, prefix=as_web_user(stash))
    try:
        assert credentials(web.process.pid) == (WEB_UID, WEB_GID, [])
        user = User.objects.create_user("jane")
        user.groups.add(Group.objects.get_or_create(name="fatbuildr")[0])
        token = token_for(default_instance, "jane")
        farm = Farm(web, token, start_worker)
        folder = artifact_copy(tmp_path / "hello")
        tasks = [farm.submit(folder, fmt, message="First build") for fmt in ("deb", "rpm")]
        for task in tasks:
            journal = farm.watch(task)
            assert journal.rstrip().endswith("Task succeeded"), journal
            assert wait_build(task).result == TaskResult.SUCCESS
            # Made by the web server, written in by the worker.
            assert owner(Path(task.place))[0] == WEB_UID
            assert owner(Path(task.place) / "task.journal")[0] == 0

        # Every file the worker published, served by the web server (not reprepro's own
        # folders, nor hidden names, which are never served).
        registry = data_dir / "registry" / "default"
        published = [
            path
            for fmt in ("deb", "rpm")
            for path in sorted((registry / fmt).rglob("*"))
            if path.is_file() and not _private(path.relative_to(registry))
        ]
        assert any(path.name.endswith(".deb") for path in published)
        assert any(path.name.endswith(".x86_64.rpm") for path in published)
        for path in published:
            response = requests.get(f"{web.url}/default/{path.relative_to(registry)}", timeout=30)
            assert response.status_code == 200, (path, response.text)
            assert response.content == path.read_bytes(), path

        # The README's deletion example, word for word but for the server's address.
        deb_artifacts = Artifact.objects.filter(derivative__distribution__format__name="deb")
        source = deb_artifacts.get(name="hello-fatbuildr", architecture="src")
        assert source.version == "1.0-1.deb12"
        response = requests.delete(
            f"{web.url}/default/registry/deb/bookworm/main/src/hello-fatbuildr.json"
            "?version=1.0-1.deb12",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        deletion = wait_finished(Task.objects.get(pk=response.json()["task"]), timeout=60)
        assert deletion.result == TaskResult.SUCCESS, deletion.error
        assert not deb_artifacts.exists()
        assert not list((registry / "deb" / "pool").rglob("hello-fatbuildr_*"))
    finally:
        web.stop()

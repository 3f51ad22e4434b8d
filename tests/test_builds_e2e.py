"""Builds end to end: the example artifact submitted over HTTP multipart as fatbuildrctl does,
built by real Celery workers in real build roots (mmdebstrap, bubblewrap, dpkg-buildpackage,
rpmbuild), signed and published, watched live over HTTP, then installed with apt and dnf.

The build roots are made once per machine (tests/settings.py keeps them in var/test-envs);
every test has its own data root, keyring and registries.
"""

import functools
import hashlib
import http.server
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import Group, User

from builds import environments
from builds.environments import BuildEnvironment
from registry.models import Artifact
from registry.packages import debian_changelog_from_tarball
from registry.storage import deb_architecture
from tasks.journal import Command, is_end_frame, read_frames
from tasks.models import Task, TaskResult
from tasks.runner import CommandRunner, ConsoleOutput
from tests import workers
from tests.conftest import REPO_ROOT
from tests.test_registry_e2e import Apt, Dnf, download_keyring, run, stop_dnf_agents, tool_env
from tests.workers import WebServer, wait_finished

pytestmark = pytest.mark.e2e

EXAMPLE = REPO_ROOT / "examples" / "hello-fatbuildr"
HOST = settings.FATBUILDR_HOST_ARCHITECTURE
BUILD_TIMEOUT = 300
GREETING = "Hello from Fatbuildr!"


# --- Build roots, made once --------------------------------------------------------------


@pytest.fixture(scope="session")
def build_roots() -> None:
    """The deb and rpm roots of the default instance (bookworm, rocky-8) for the host."""
    output = ConsoleOutput(sys.stderr, verbose=False)
    runner = CommandRunner(output, default_timeout=1800)
    for fmt, environment in (("deb", "bookworm"), ("rpm", "rocky-8")):
        env = BuildEnvironment("default", fmt, environment, HOST)
        if not env.exists():
            environments.create(env, run=runner.run, log=output.log, replace=True)


# --- Artifacts, as fatbuildrctl sends them -----------------------------------------------


def artifact_copy(destination: Path, name: str = "hello-fatbuildr") -> Path:
    """A copy of the example definition and source, renamed to *name*; the folder holding
    `artifact/` and `src/<name>-1.0/`."""
    shutil.copytree(EXAMPLE, destination)
    if name != "hello-fatbuildr":
        artifact = destination / "artifact"
        renames = {
            artifact / "deb" / "control": ("Source: ", "Package: "),
            artifact / "rpm" / "hello-fatbuildr.spec": ("Name:           ",),
        }
        for path, prefixes in renames.items():
            text = path.read_text()
            for prefix in prefixes:
                text = text.replace(f"{prefix}hello-fatbuildr\n", f"{prefix}{name}\n")
            path.write_text(text)
        (artifact / "rpm" / "hello-fatbuildr.spec").rename(artifact / "rpm" / f"{name}.spec")
        (destination / "src" / "hello-fatbuildr-1.0").rename(destination / "src" / f"{name}-1.0")
    return destination


def xz_tarball(folder: Path, arcname: str, *, mtime: int | None = None) -> bytes:
    """The tarball of a folder; with *mtime*, every member dated so (a tarball remade later)."""

    def dated(member: tarfile.TarInfo) -> tarfile.TarInfo:
        if mtime is not None:
            member.mtime = mtime
        return member

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
        archive.add(folder, arcname=arcname, filter=dated)
    return buffer.getvalue()


class Farm:
    """The service as a client sees it: a web server, a token, workers on demand."""

    def __init__(self, web: WebServer, token: str, start_worker: Any) -> None:
        self.web = web
        self.token = token
        self.start_worker = start_worker

    def submit(
        self,
        folder: Path,
        fmt: str,
        *,
        name: str = "hello-fatbuildr",
        message: str = "Build",
        upload_source: bool = True,
        source_mtime: int | None = None,
    ) -> Task:
        distribution = {"deb": "bookworm", "rpm": "el8"}[fmt]
        fields = {
            "format": fmt,
            "distribution": distribution,
            "architectures": HOST,
            "derivative": "main",
            "artifact": name,
            "user_name": "Jane Maintainer",
            "user_email": "jane@example.org",
            "message": message,
        }
        files = [
            ("tarball", ("fatbuildr-artifact.tar.xz", xz_tarball(folder / "artifact", "."))),
        ]
        if upload_source:
            source = xz_tarball(folder / "src" / f"{name}-1.0", f"{name}-1.0", mtime=source_mtime)
            files.append((f"source/{name}", (f"{name}-1.0.tar.xz", source)))
        response = requests.post(
            f"{self.web.url}/default/build",
            data=fields,
            files=files,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return Task.objects.get(pk=response.json()["task"])

    def build(self, folder: Path, fmt: str, **options: Any) -> tuple[Task, str]:
        """Submit and watch a build that must succeed; the task and its journal."""
        task = self.submit(folder, fmt, **options)
        journal = self.watch(task)
        assert journal.rstrip().endswith("Task succeeded"), journal
        # No error of our own making on the way (apt once could not read the snapshot of
        # the instance registry: "Err:2 file:... Permission denied").
        errors = [line for line in journal.splitlines() if line.startswith(("Err:", "E: "))]
        assert errors == [] and "Permission denied" not in journal, errors
        return task, journal

    def watch(self, task: Task) -> str:
        """The journal streamed over HTTP until its end frame, as `fatbuildrctl watch`."""
        response = requests.get(
            f"{self.web.url}/default/watch/{task.pk}.journal",
            headers={"Authorization": f"Bearer {self.token}"},
            stream=True,
            timeout=BUILD_TIMEOUT,
        )
        assert response.status_code == 200, response.text
        buffer, text = io.BytesIO(), []
        for chunk in response.iter_content(chunk_size=32):
            buffer.seek(0, io.SEEK_END)
            buffer.write(chunk)
            buffer.seek(0)
            consumed = 0
            for command, payload, raw in read_frames(buffer):
                consumed += len(raw)
                if command == Command.LOG:
                    text.append(payload.decode().partition(":")[2] + "\n")
                elif command == Command.BYTES:
                    text.append(payload.decode(errors="replace"))
                if is_end_frame(command, payload):
                    response.close()
                    return "".join(text)
            buffer = io.BytesIO(buffer.getvalue()[consumed:])
        raise AssertionError("journal ended without its end frame:\n" + "".join(text))


@pytest.fixture
def farm(
    transactional_db, signed_instance, data_dir, build_roots, start_worker, token_for, tmp_path
) -> Iterator[Farm]:
    user = User.objects.create_user("jane")
    user.groups.add(Group.objects.get_or_create(name="fatbuildr")[0])
    web = WebServer(tmp_path)
    yield Farm(web, token_for(signed_instance, "jane"), start_worker)
    web.stop()


def wait_build(task: Task) -> Task:
    return wait_finished(task, timeout=BUILD_TIMEOUT)


def registry_snapshot(data_dir: Path) -> dict[str, bytes]:
    root = data_dir / "registry" / "default"
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "db" not in p.relative_to(root).parts
    }


# --- deb ------------------------------------------------------------------------------------


def test_deb_example_builds_live_installs_with_apt_and_rebuilds_as_build1(farm, data_dir, tmp_path):
    farm.start_worker()
    folder = artifact_copy(tmp_path / "hello")
    task, journal = farm.build(folder, "deb", message="First build")
    for step in ("Installing the build dependencies", "dpkg-buildpackage", "lintian", "Published"):
        assert step in journal
    assert "dh_builddeb" in journal  # the build's own output, streamed
    assert wait_build(task).result == TaskResult.SUCCESS

    apt = Apt(tmp_path / "apt", farm.web, download_keyring(farm.web, tmp_path / "keyring.asc"))
    update = apt.update()
    assert update.returncode == 0, update.stdout
    download = apt.download("hello-fatbuildr")
    assert download.returncode == 0, download.stdout
    (deb,) = (tmp_path / "apt" / "downloads").glob("hello-fatbuildr_*.deb")
    assert deb.name == f"hello-fatbuildr_1.0-1.deb12_{deb_architecture(HOST)}.deb"
    extracted = tmp_path / "extracted"
    assert run(["dpkg-deb", "-x", deb, extracted]).returncode == 0
    program = extracted / "usr" / "bin" / "hello-fatbuildr"
    assert run([program]).stdout == GREETING + "\n"
    assert "--help" in run([program, "--help"]).stdout  # the patch of patches/generic

    # The source tarball made again (other dates, other bytes), as fatbuildrctl does at
    # every build: the published orig tarball of 1.0 is reused.
    again, journal = farm.build(folder, "deb", message="Second build", source_mtime=1_000_000_000)
    assert "Using the published hello-fatbuildr_1.0.orig.tar.xz" in journal
    source = Artifact.objects.get(name="hello-fatbuildr", architecture="src")
    assert source.version == "1.0-1.deb12+build1"
    (debian_tarball,) = (data_dir / "registry" / "default" / "deb" / "pool").rglob(
        "hello-fatbuildr_1.0-1.deb12+build1.debian.tar.xz"
    )
    changelog = debian_changelog_from_tarball(debian_tarball)
    assert changelog.index("(1.0-1.deb12+build1) bookworm") < changelog.index("(1.0-1.deb12)")
    for build, message in ((task, "First build"), (again, "Second build")):
        assert f"Fatbuildr task {build.pk}@" in changelog
        assert message in changelog
    assert "-- Jane Maintainer <jane@example.org>" in changelog

    # Another tree under the same upstream version cannot have the same orig tarball.
    readme = folder / "src" / "hello-fatbuildr-1.0" / "README"
    readme.write_text(readme.read_text() + "changed\n")
    changed = farm.submit(folder, "deb")
    journal = farm.watch(changed)
    assert "differs from the published hello-fatbuildr_1.0.orig.tar.xz" in journal
    assert journal.rstrip().splitlines()[-1].startswith("Task failed")
    assert Artifact.objects.get(name="hello-fatbuildr", architecture="src").version == (
        "1.0-1.deb12+build1"
    )


# --- rpm ------------------------------------------------------------------------------------


def host_system_repository(root: Path, rpm: Path) -> Path:
    """A local repository with one package providing what the built rpm requires from the
    system (libc...): the dnf installroot is empty, and no EL repository is reachable."""
    requires = run(["rpm", "-qp", "--requires", rpm]).stdout.split("\n")
    provides = [r.strip() for r in requires if r.strip() and not r.startswith("rpmlib(")]
    topdir = root / "build"
    (topdir / "SPECS").mkdir(parents=True)
    spec = topdir / "SPECS" / "host-system.spec"
    spec.write_text(
        "Name: host-system\nVersion: 1\nRelease: 1\nSummary: The host's libraries\n"
        "License: MIT\nBuildArch: noarch\n"
        + "".join(f"Provides: {p}\n" for p in provides)
        + "%description\nStands for the libraries of the test host.\n%files\n"
    )
    built = run(["rpmbuild", "-bb", "--define", f"_topdir {topdir}", spec])
    assert built.returncode == 0, built.stdout
    repository = root / "repository"
    repository.mkdir()
    for path in (topdir / "RPMS").rglob("*.rpm"):
        shutil.copy(path, repository)
    assert run(["createrepo_c", repository]).returncode == 0
    return repository


def test_rpm_example_builds_installs_with_dnf_and_rebuilds_as_build1(farm, data_dir, tmp_path):
    farm.start_worker()
    folder = artifact_copy(tmp_path / "hello")
    task, journal = farm.build(folder, "rpm", message="First build")
    for step in ("rpmbuild", "rpmlint", "Published"):
        assert step in journal

    published = data_dir / "registry" / "default" / "rpm" / "el8" / "main"
    (binary,) = published.glob(f"{HOST}/Packages/hello-fatbuildr-1.0-1.el8.{HOST}.rpm")
    system = host_system_repository(tmp_path / "system", binary)
    dnf = Dnf(tmp_path / "dnf", farm.web)
    dnf.config.write_text(
        dnf.config.read_text()
        + f"\n[system]\nname=host\nbaseurl=file://{system}\nenabled=1\ngpgcheck=0\n"
        "repo_gpgcheck=0\n"
    )
    try:
        result = run(
            [
                "dnf", "-y", "-c", dnf.config, "--installroot", dnf.installroot, "--releasever",
                "8", "--noplugins", "--disablerepo=*", "--enablerepo=fatbuildr,system",
                "install", "hello-fatbuildr",
            ],
            env=tool_env(),
        )  # fmt: skip
    finally:
        stop_dnf_agents(dnf.root)
    assert result.returncode == 0, result.stdout
    program = dnf.installroot / "usr" / "bin" / "hello-fatbuildr"
    assert run([program]).stdout == GREETING + "\n"
    signature = run(["rpm", "-qp", "--qf", "%{RSAHEADER:pgpsig}", binary]).stdout
    assert "Key ID" in signature

    again, _ = farm.build(folder, "rpm", message="Second build")
    (source,) = published.glob("source/Packages/*.src.rpm")
    assert source.name == "hello-fatbuildr-1.0-1.el8+build1.src.rpm"
    changelog = run(["rpm", "-qp", "--changelog", source]).stdout
    entries = [line for line in changelog.splitlines() if line.startswith("* ")]
    assert [e.rsplit(" - ", 1)[1] for e in entries] == ["1.0-1.el8+build1", "1.0-1.el8"]
    assert f"Fatbuildr task {again.pk}@" in changelog
    assert f"Fatbuildr task {task.pk}@" in changelog
    assert "Jane Maintainer <jane@example.org>" in entries[0]


# --- Failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["deb", "rpm"])
def test_a_failing_build_ends_failed_with_the_command_output_and_leaves_the_registry(
    farm, data_dir, tmp_path, fmt
):
    farm.start_worker()
    folder = artifact_copy(tmp_path / "hello")
    farm.build(folder, fmt)
    before = registry_snapshot(data_dir)
    index = sorted(Artifact.objects.values_list("name", "architecture", "version"))

    marker = f"BROKEN-{uuid.uuid4().hex}"
    if fmt == "deb":
        rules = folder / "artifact" / "deb" / "rules"
        rules.write_text(
            rules.read_text() + f"\noverride_dh_auto_build:\n\techo {marker} >&2; exit 3\n"
        )
    else:
        spec = folder / "artifact" / "rpm" / "hello-fatbuildr.spec"
        spec.write_text(spec.read_text().replace("%make_build", f"echo {marker} >&2; exit 3"))
    broken = farm.submit(folder, fmt)
    journal = farm.watch(broken)
    assert journal.rstrip().splitlines()[-1].startswith("Task failed"), journal
    assert marker in journal
    broken.refresh_from_db()
    assert broken.result == TaskResult.FAILED
    assert "failed with exit code" in broken.error
    assert registry_snapshot(data_dir) == before
    assert sorted(Artifact.objects.values_list("name", "architecture", "version")) == index


def test_a_build_dependency_can_be_a_package_published_before(farm, tmp_path):
    """The instance registry is an apt source of the dependency installation."""
    farm.start_worker()
    farm.build(artifact_copy(tmp_path / "hello"), "deb")
    user = artifact_copy(tmp_path / "user", name="hello-user")
    control = user / "artifact" / "deb" / "control"
    control.write_text(
        control.read_text().replace(
            "Build-Depends: debhelper-compat (= 13)",
            "Build-Depends: debhelper-compat (= 13), hello-fatbuildr (>= 1.0)",
        )
    )
    rules = user / "artifact" / "deb" / "rules"
    rules.write_text(
        rules.read_text()
        + "\noverride_dh_auto_build:\n\techo DEPENDENCY SAYS $$(hello-fatbuildr)\n"
        "\tdh_auto_build\n"
    )
    _, journal = farm.build(user, "deb", name="hello-user")
    assert "Build dependencies may come from this instance's deb registry bookworm/main" in journal
    assert "DEPENDENCY SAYS Hello from Fatbuildr!" in journal


def test_hostile_rules_reach_no_secret_and_no_network(farm, data_dir, tmp_path):
    """debian/rules runs code of the submitter: it sees only its own build folder."""
    secret = f"SECRET-{uuid.uuid4().hex}"
    keyring_dir = data_dir / "keyrings" / "default"
    (keyring_dir / "planted-secret").write_text(secret)
    other = data_dir / "workspaces" / "default" / str(uuid.uuid4())
    other.mkdir(parents=True)
    (other / "secret").write_text(secret)
    settings_file = REPO_ROOT / "fatbuildr_site" / "settings.py"
    attempts = [
        f"cat {keyring_dir}/planted-secret",
        f"ls {keyring_dir}",
        f"cat {other}/secret",
        f"ls {data_dir}/workspaces/default",
        f"cat {settings_file}",
        "cat /proc/1/environ",
        "cat /build/../../etc/shadow",
        'exec 3<>/dev/tcp/127.0.0.1/5432 && echo NETWORK OPEN postgres | tr " " -',
        'exec 3<>/dev/tcp/127.0.0.1/6379 && echo NETWORK OPEN redis | tr " " -',
        'exec 3<>/dev/tcp/deb.debian.org/80 && echo NETWORK OPEN internet | tr " " -',
        'touch /usr/bin/planted && echo ROOT WRITABLE | tr " " -',
    ]
    # Outcomes are printed as two words joined at run time: make echoes each recipe line,
    # and the echo must not look like a success.
    recipe = "".join(f"\t-bash -c '{attempt}'\n" for attempt in attempts)
    farm.start_worker()
    folder = artifact_copy(tmp_path / "hello")
    rules = folder / "artifact" / "deb" / "rules"
    rules.write_text(
        rules.read_text() + "\noverride_dh_auto_build:\n\techo HOSTILE-RULES-RAN $$(id -u)\n"
        f"{recipe}\tdh_auto_build\n"
    )
    task = farm.submit(folder, "deb")
    journal = farm.watch(task)
    assert f"HOSTILE-RULES-RAN {settings.FATBUILDR_BUILD_UID}" in journal
    assert journal.rstrip().endswith("Task succeeded"), journal
    assert secret not in journal
    assert "NETWORK-OPEN" not in journal and "ROOT-WRITABLE" not in journal
    assert "Django settings for the Fatbuildr" not in journal
    assert "DJANGO_SECRET_KEY" not in journal and "root:" not in journal
    assert not (Path("/usr/bin/planted")).exists()
    # The other task's files and the keyring are as they were.
    assert (other / "secret").read_text() == secret


def test_a_missing_build_root_is_made_first_and_declared_sources_are_downloaded_once(
    farm, tmp_path
):
    """No upload: the source comes from its `source` URL (checksum verified) into the
    instance cache; the worker has no build root yet and makes it, for many reaper periods
    while the maintenance worker's reaper runs: the task is never taken for lost."""
    folder = artifact_copy(tmp_path / "hello")
    served = tmp_path / "served"
    served.mkdir()
    archive = served / "hello-fatbuildr-1.0.tar.xz"
    archive.write_bytes(xz_tarball(folder / "src" / "hello-fatbuildr-1.0", "hello-fatbuildr-1.0"))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hello-fatbuildr-{{{{ version }}}}.tar.xz"
    (folder / "artifact" / "artifact.yml").write_text(
        f'version: "1.0"\nsource: {url}\nchecksums:\n  "1.0":\n    sha256: {digest}\n'
        "deb:\n  release: 1\nrpm:\n  release: 1\n"
    )
    envs = tmp_path / "envs"
    # The test server listens on loopback, which production refuses to download from.
    farm.start_worker(
        env={"FATBUILDR_ENVS_DIR": str(envs), "FATBUILDR_SOURCE_ALLOW_PRIVATE": "true"}
    )
    try:
        reaper_runs = farm.start_worker.maintenance.log().count("fatbuildr.maintain_tasks")
        task, journal = farm.build(folder, "rpm", upload_source=False)
        task.refresh_from_db()
        # The root took many heartbeat timeouts to make, and the reaper ran all along.
        timeout = settings.FATBUILDR_TASK_HEARTBEAT_TIMEOUT
        assert (task.finished_at - task.started_at).total_seconds() > 5 * timeout
        reaper_runs = farm.start_worker.maintenance.log().count("fatbuildr.maintain_tasks") - (
            reaper_runs
        )
        assert reaper_runs > 5 * timeout / settings.FATBUILDR_TASK_REAPER_INTERVAL
        assert "build environment rpm-rocky-8-x86_64 is missing: creating it first" in journal
        assert "mmdebstrap" in journal
        assert (envs / "default" / f"rpm-rocky-8-{HOST}.tar").is_file()
        assert "Downloading http://127.0.0.1" in journal
        _, journal = farm.build(folder, "rpm", upload_source=False)
        assert "Downloading" not in journal and "Using cached" in journal
        assert "is missing" not in journal
    finally:
        server.shutdown()
        server.server_close()
    cached = Path(settings.FATBUILDR_DATA_DIR) / "cache" / "default" / "hello-fatbuildr"
    assert [p.name for p in cached.iterdir()] == [archive.name]


# --- Scheduling and faults ------------------------------------------------------------------


def test_two_artifacts_build_in_parallel_and_one_artifact_in_order(farm, tmp_path):
    farm.start_worker()
    farm.start_worker()
    hello = artifact_copy(tmp_path / "hello")
    other = artifact_copy(tmp_path / "other", name="hello-other")
    first = farm.submit(hello, "deb")
    parallel = farm.submit(other, "deb", name="hello-other")
    second = farm.submit(hello, "deb")
    tasks = [wait_build(t) for t in (first, parallel, second)]
    assert [t.result for t in tasks] == [TaskResult.SUCCESS] * 3, [t.error for t in tasks]
    first, parallel, second = tasks
    # Different artifacts: their runs overlap. The same artifact: one after the other.
    assert parallel.started_at < first.finished_at and first.started_at < parallel.finished_at
    assert second.started_at >= first.finished_at
    versions = dict(Artifact.objects.filter(architecture="src").values_list("name", "version"))
    assert versions == {"hello-fatbuildr": "1.0-1.deb12+build1", "hello-other": "1.0-1.deb12"}


def submit_slow_build(farm: Farm, folder: Path) -> Task:
    """Submit a deb build whose rules sleep a minute; return once it sleeps."""
    rules = folder / "artifact" / "deb" / "rules"
    rules.write_text(rules.read_text() + "\noverride_dh_auto_build:\n\techo SLOW-BUILD; sleep 60\n")
    task = farm.submit(folder, "deb")
    workers.wait_for(
        lambda: task.journal_path.exists() and b"SLOW-BUILD" in task.journal_path.read_bytes(),
        timeout=BUILD_TIMEOUT,
        message="the build to start",
    )
    return task


def assert_no_process_of(task: Task) -> None:
    """Nothing of the task's sandbox runs (its command lines name its workspace)."""
    time.sleep(1)
    leftovers = subprocess.run(["pgrep", "-af", str(task.pk)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", leftovers.stdout


def test_a_canceled_build_stops_at_once_and_leaves_the_registry(farm, data_dir, tmp_path):
    farm.start_worker()
    task = submit_slow_build(farm, artifact_copy(tmp_path / "hello"))
    before = registry_snapshot(data_dir)
    response = requests.post(
        f"{farm.web.url}/default/tasks/{task.pk}/cancel",
        headers={"Authorization": f"Bearer {farm.token}"},
        timeout=30,
    )
    assert response.status_code == 202, response.text  # asked; the worker stops it
    task = wait_finished(task, timeout=30)
    assert task.result == TaskResult.CANCELED, task.error
    assert "canceled by jane" in task.error
    assert_no_process_of(task)
    assert registry_snapshot(data_dir) == before
    assert not Artifact.objects.exists()
    # The build folder stays for inspection; the overlay layers are gone.
    workspace = Path(task.place)
    assert (workspace / "build" / "hello-fatbuildr-1.0" / "debian" / "rules").exists()
    assert not (workspace / f"sandbox-{HOST}").exists()


def test_a_worker_killed_during_a_build_fails_it_and_the_next_build_succeeds(
    farm, data_dir, tmp_path
):
    worker = farm.start_worker()
    folder = artifact_copy(tmp_path / "hello")
    task = submit_slow_build(farm, folder)
    before = registry_snapshot(data_dir)
    worker.kill()
    farm.start_worker()  # runs the next build; the maintenance worker reaps the lost one
    task = wait_finished(task, timeout=60)
    assert task.result == TaskResult.FAILED and "worker lost" in task.error
    assert registry_snapshot(data_dir) == before
    assert not Artifact.objects.filter(name="hello-fatbuildr").exists()
    # The sandbox went with the worker: no build process is left.
    assert_no_process_of(task)

    shutil.rmtree(folder)
    retry = farm.submit(artifact_copy(tmp_path / "hello"), "deb")
    assert wait_build(retry).result == TaskResult.SUCCESS, retry.error
    assert Artifact.objects.get(name="hello-fatbuildr", architecture="src").version == (
        "1.0-1.deb12"
    )


# --- Build environments ---------------------------------------------------------------------


def images(*args: str, timeout: float) -> subprocess.CompletedProcess:
    """`manage.py images ...` in its own process, against the test database."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "manage.py"), "images", *args],
        cwd=REPO_ROOT,
        env=dict(os.environ, DATABASE_URL=workers.test_database_url()),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_images_env_update_runs_an_environment_task_and_keeps_the_root_usable(
    transactional_db, default_instance, build_roots
):
    env = BuildEnvironment("default", "rpm", "rocky-8", HOST)
    result = images(
        "env-update", "--instance", "default", "--format", "rpm", "--environment", "rocky-8",
        "--architecture", HOST, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    task = Task.objects.get(name="image build environment update")
    assert task.result == TaskResult.SUCCESS
    assert (task.format, task.environment, task.architecture) == ("rpm", "rocky-8", HOST)
    assert "apt-get update" in result.stdout and "is up to date" in result.stdout
    assert env.exists() and (env.root / "usr" / "bin" / "rpmbuild").exists()


def test_images_env_create_refuses_an_unknown_environment(transactional_db, default_instance):
    result = images(
        "env-create", "--instance", "default", "--format", "deb", "--environment", "sid",
        "--architecture", HOST, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "environment sid is not used by any deb distribution" in result.stderr
    assert not Task.objects.exists()


def test_a_foreign_architecture_without_qemu_is_refused_with_the_reason(settings):
    foreign = "aarch64" if settings.FATBUILDR_HOST_ARCHITECTURE == "x86_64" else "x86_64"
    qemu = Path(f"/proc/sys/fs/binfmt_misc/qemu-{foreign}")
    if qemu.exists():
        pytest.skip(f"this host can run {foreign} programs")
    with pytest.raises(environments.BuildEnvironmentError, match="needs qemu-user-static"):
        environments.check_architecture(foreign)

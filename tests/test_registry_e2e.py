"""Signed registries end to end: real packages imported by `manage.py registry`, served by the
production web server, fetched and verified by the real apt-get and dnf, deleted through the
API by a real worker, imported concurrently, and reindexed from disk.

The clients run with hermetic configurations in the test's temporary directory: apt reads no
file of /etc/apt and writes no system state, dnf installs into a private installroot. Both
trust nothing but the instance keyring downloaded from the server, so a tampered index is
refused.
"""

import gzip
import hashlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from rest_framework.test import APIClient

from registry.models import Artifact, RegistryFormat
from registry.storage import deb_architecture
from tasks.models import Task, TaskResult
from tests import workers
from tests.conftest import REPO_ROOT
from tests.packages import (
    BuiltDeb,
    BuiltRpm,
    build_deb,
    build_many_debs,
    build_many_rpms,
    build_rpm,
)
from tests.workers import WebServer, wait_finished

pytestmark = pytest.mark.e2e

CONCURRENT_IMPORTS = 20
TIMEOUT = 120  # seconds, for any single client or tool run
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
# The default instance builds for the host architecture alone: Fatbuildr's and Debian's names.
HOST = settings.FATBUILDR_HOST_ARCHITECTURE
DEB_HOST = deb_architecture(HOST)


# --- Packages, built once per module ---------------------------------------------------------


@pytest.fixture(scope="module")
def deb_package(tmp_path_factory) -> BuiltDeb:
    return build_deb(tmp_path_factory.mktemp("deb"))


@pytest.fixture(scope="module")
def rpm_package(tmp_path_factory) -> BuiltRpm:
    return build_rpm(tmp_path_factory.mktemp("rpm"))


@pytest.fixture(scope="module")
def many_debs(tmp_path_factory) -> list[Path]:
    return build_many_debs(tmp_path_factory.mktemp("many-debs"), CONCURRENT_IMPORTS, "fbdeb")


@pytest.fixture(scope="module")
def many_rpms(tmp_path_factory) -> list[Path]:
    """Tiny noarch rpms, each from a source rpm of its own (build_many_rpms makes the
    packages of one call subpackages of a few sources; see
    test_publishing_one_binary_rpm_keeps_the_other_binaries_of_its_source)."""
    base = tmp_path_factory.mktemp("many-rpms")

    def build(index: int) -> Path:
        (path,) = build_many_rpms(base / str(index), 1, f"fbrpm{index:02d}")
        return path

    with ThreadPoolExecutor(max_workers=4) as executor:
        return list(executor.map(build, range(1, CONCURRENT_IMPORTS + 1)))


def rpm_files(built: BuiltRpm) -> list[Path]:
    return [*built.binaries.values(), built.source]


# --- Instance, server, command line ----------------------------------------------------------


@pytest.fixture
def registry_root(transactional_db, signed_instance, data_dir) -> Path:
    """The signed default instance, committed so that other processes see it; its registry
    root."""
    return data_dir / "registry" / signed_instance.pk


@pytest.fixture
def web(registry_root, tmp_path) -> Iterator[WebServer]:
    server = WebServer(tmp_path)
    yield server
    server.stop()


def tool_env(**extra: str) -> dict[str, str]:
    """The environment of the clients: no proxy between them and the local server."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    env.update(LC_ALL="C.UTF-8", **extra)
    return env


def run(command: list[str | Path], **options: Any) -> subprocess.CompletedProcess:
    """Run a tool with a timeout, capturing its output as text (stderr into stdout)."""
    options.setdefault("env", tool_env())
    return subprocess.run(
        [str(part) for part in command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
        check=False,
        **options,
    )


def manage_command(*args: str | Path) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "manage.py"), *(str(a) for a in args)]


def manage_env() -> dict[str, str]:
    """The production settings, against the test database and this test's data root."""
    return dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="fatbuildr_site.settings",
        DATABASE_URL=workers.test_database_url(),
        FATBUILDR_DATA_DIR=os.environ["FATBUILDR_DATA_DIR"],
    )


def manage(*args: str | Path) -> str:
    """Run `manage.py` in its own process; its output, after checking it succeeded."""
    result = run(manage_command(*args), cwd=REPO_ROOT, env=manage_env())
    assert result.returncode == 0, f"manage.py {' '.join(map(str, args))}:\n{result.stdout}"
    return result.stdout


def import_packages(fmt: str, distribution: str, files: list[Path], derivative="main") -> str:
    return manage(
        "registry", "import", "--instance", "default", "--format", fmt,
        "--distribution", distribution, "--derivative", derivative, *files,
    )  # fmt: skip


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def api(url: str, **params: str) -> Any:
    response = requests.get(url, params=params, timeout=30)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text}"
    return response.json()


def names_in(listing: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(item["name"], item["architecture"]) for item in listing}


def download_keyring(web: WebServer, destination: Path) -> Path:
    response = requests.get(f"{web.url}/default/keyring.asc", timeout=30)
    assert response.status_code == 200, response.text
    assert response.text.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(response.text)
    return destination


def gpgv(keyring_asc: Path, *files: Path) -> subprocess.CompletedProcess:
    """Verify a signature with nothing but the instance public key."""
    home = keyring_asc.parent / "gnupg-verify"
    home.mkdir(mode=0o700, exist_ok=True)
    keyring = home / "keyring.gpg"
    if not keyring.exists():
        dearmor = run(["gpg", "--batch", "--dearmor", "--output", keyring, keyring_asc])
        assert dearmor.returncode == 0, dearmor.stdout
    return run(["gpgv", "--keyring", keyring, *files], env=tool_env(GNUPGHOME=str(home)))


class Tampered:
    """Change files of a registry on disk for the duration of a `with` block."""

    def __init__(self, *changes: tuple[Path, Any]) -> None:
        self.changes = changes
        self.originals: dict[Path, bytes] = {}

    def __enter__(self) -> None:
        for path, change in self.changes:
            self.originals[path] = original = path.read_bytes()
            changed = change(original)
            assert changed != original, f"{path} was not changed"
            path.write_bytes(changed)

    def __exit__(self, *exc_info: object) -> None:
        for path, original in self.originals.items():
            path.write_bytes(original)


# --- apt -------------------------------------------------------------------------------------


class Apt:
    """apt-get with a private configuration: no file of /etc/apt read, no system state
    written, and only the instance keyring trusted (`signed-by`)."""

    def __init__(self, root: Path, web: WebServer, keyring: Path, distribution="bookworm"):
        self.root = root
        etc, state, cache = root / "etc", root / "state", root / "cache"
        for folder in (
            etc / "apt.conf.d", etc / "sources.list.d", etc / "preferences.d",
            etc / "trusted.gpg.d", state / "lists" / "partial",
            cache / "archives" / "partial", root / "log", root / "downloads",
        ):  # fmt: skip
            folder.mkdir(parents=True, exist_ok=True)
        (state / "status").write_text("")
        (etc / "sources.list").write_text(
            f"deb [signed-by={keyring}] {web.url}/default/deb {distribution} main\n"
        )
        self.config = root / "apt.conf"
        self.config.write_text(
            "\n".join(
                f'{key} "{value}";'
                for key, value in {
                    "Dir::State": state,
                    "Dir::State::status": state / "status",
                    "Dir::Cache": cache,
                    "Dir::Log": root / "log",
                    "Dir::Etc": etc,
                    "Dir::Etc::main": etc / "apt.conf",
                    "Dir::Etc::Parts": etc / "apt.conf.d",
                    "Dir::Etc::sourcelist": etc / "sources.list",
                    "Dir::Etc::sourceparts": etc / "sources.list.d",
                    "Dir::Etc::trusted": etc / "trusted.gpg",
                    "Dir::Etc::trustedparts": etc / "trusted.gpg.d",
                    "Dir::Etc::preferences": etc / "preferences",
                    "Dir::Etc::preferencesparts": etc / "preferences.d",
                    "Debug::NoLocking": "1",
                    "APT::Sandbox::User": "root",
                    "APT::Architecture": DEB_HOST,
                    "APT::Architectures::": DEB_HOST,
                    "Acquire::Languages": "none",
                    "Acquire::Retries": "0",
                    "Acquire::http::Proxy::127.0.0.1": "DIRECT",
                }.items()
            )
            + "\n"
        )

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        # APT_CONFIG is read before anything else, so that /etc/apt/apt.conf.d is not.
        env = tool_env(APT_CONFIG=str(self.config))
        return run(["apt-get", "-q", *args], env=env, cwd=self.root / "downloads")

    def config_dump(self) -> str:
        return run(["apt-config", "dump"], env=tool_env(APT_CONFIG=str(self.config))).stdout

    def update(self) -> subprocess.CompletedProcess:
        return self("update", "-o", "APT::Update::Error-Mode=any")

    def download(self, *packages: str) -> subprocess.CompletedProcess:
        return self("download", *packages)


def assert_clean_update(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout
    for line in result.stdout.splitlines():
        assert not line.startswith(("W:", "E:")), result.stdout
    assert not re.search(r"unsigned|not signed|unauthenticated|insecure", result.stdout, re.I)


def change_description(text: bytes) -> bytes:
    """Alter a Release field whose value apt does not check by itself: only the signature
    tells."""
    return re.sub(rb"^(Description: .*)$", rb"\1 (tampered)", text, count=1, flags=re.M)


# --- dnf -------------------------------------------------------------------------------------


class Dnf:
    """dnf with a private configuration, cache and installroot, trusting only the instance
    keyring for the packages (gpgcheck) and the repository metadata (repo_gpgcheck)."""

    def __init__(self, root: Path, web: WebServer, distribution="el8", derivative="main"):
        self.root = root
        self.installroot = root / "installroot"
        for folder in ("installroot", "cache", "log", "persist", "repos.d", "vars"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        self.config = root / "dnf.conf"
        self.config.write_text(
            "[main]\n"
            f"cachedir={root / 'cache'}\n"
            f"logdir={root / 'log'}\n"
            f"persistdir={root / 'persist'}\n"
            f"reposdir={root / 'repos.d'}\n"
            f"varsdir={root / 'vars'}\n"
            "gpgcheck=1\nrepo_gpgcheck=1\nlocalpkg_gpgcheck=1\n"
            "install_weak_deps=False\nplugins=0\nskip_if_unavailable=False\n"
            "metadata_expire=0\nkeepcache=0\n\n"
            "[fatbuildr]\n"
            "name=Fatbuildr default instance\n"
            f"baseurl={web.url}/default/rpm/{distribution}/{derivative}/$basearch/\n"
            f"gpgkey={web.url}/default/keyring.asc\n"
            "enabled=1\ngpgcheck=1\nrepo_gpgcheck=1\n"
        )

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        return run(
            [
                "dnf", "-y", "-c", self.config, "--installroot", self.installroot,
                "--releasever", "8", "--noplugins", "--setopt=install_weak_deps=False",
                "--disablerepo=*", "--enablerepo=fatbuildr", *args,
            ],
            env=tool_env(),
        )  # fmt: skip


@pytest.fixture
def dnf_client(web, tmp_path) -> Iterator[Any]:
    """dnf_client(name): a Dnf in tmp_path/name; the gpg-agents dnf starts for the repository
    keys of its caches are stopped afterwards."""
    clients: list[Dnf] = []

    def make(name: str) -> Dnf:
        clients.append(Dnf(tmp_path / name, web))
        return clients[-1]

    yield make
    for client in clients:
        stop_dnf_agents(client.root)


def stop_dnf_agents(root: Path) -> None:
    """Stop the gpg-agents dnf started for the repository keys of the caches below *root*."""
    for home in root.rglob("pubring"):
        if home.is_dir():
            run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"])


# --- 1. deb with apt-get ---------------------------------------------------------------------


def test_apt_get_downloads_the_signed_deb_packages_and_refuses_a_tampered_index(
    registry_root, web, deb_package, tmp_path
):
    output = import_packages("deb", "bookworm", [deb_package.changes])
    assert f"hello-fb {deb_package.version} {HOST}: published" in output

    keyring = download_keyring(web, tmp_path / "client" / "keyring.asc")
    apt = Apt(tmp_path / "apt", web, keyring)
    # Hermetic: nothing of the host configuration (/etc/apt/apt.conf.d and the rest).
    dump = re.findall(r'^(\S+) "(.*)";$', apt.config_dump(), re.M)
    config = {key.lower(): value for key, value in dump}
    for key in (
        "Dir::Etc", "Dir::Etc::main", "Dir::Etc::parts", "Dir::Etc::sourcelist",
        "Dir::Etc::sourceparts", "Dir::Etc::trusted", "Dir::Etc::trustedparts",
        "Dir::State", "Dir::State::status", "Dir::Cache",
    ):  # fmt: skip
        assert config[key.lower()].startswith(f"{apt.root}/"), (key, config[key.lower()])
    assert_clean_update(apt.update())
    result = apt.download("hello-fb", "hello-fb-data")
    assert result.returncode == 0, result.stdout
    downloaded = {p.name.split("_")[0]: p for p in (apt.root / "downloads").glob("*.deb")}
    assert set(downloaded) == {"hello-fb", "hello-fb-data"}
    for name, original in deb_package.debs.items():
        assert sha256(downloaded[name]) == sha256(original), name

    tree = tmp_path / "extracted"
    extract = run(["dpkg-deb", "-x", downloaded["hello-fb"], tree])
    assert extract.returncode == 0, extract.stdout
    hello = run([tree / "usr" / "bin" / "hello-fb"])
    assert hello.stdout == f"hello from hello-fb {deb_package.version}\n"

    # The index files on disk altered, signatures kept: a fresh client refuses them.
    dists = registry_root / "deb" / "dists" / "bookworm"
    tampered = [(dists / name, change_description) for name in ("Release", "InRelease")]
    with Tampered(*tampered):
        fresh = Apt(tmp_path / "apt-tampered", web, keyring)
        refused = fresh.update()
        assert refused.returncode != 0, refused.stdout
        assert re.search(r"BADSIG|not signed|invalid", refused.stdout), refused.stdout
        assert fresh.download("hello-fb").returncode != 0
    # Restored: accepted again.
    assert_clean_update(Apt(tmp_path / "apt-restored", web, keyring).update())


# --- 2. rpm with dnf -------------------------------------------------------------------------


def test_dnf_installs_the_signed_rpm_packages_and_refuses_tampered_metadata(
    registry_root, dnf_client, rpm_package, tmp_path
):
    output = import_packages("rpm", "el8", rpm_files(rpm_package))
    assert f"hello-fb {rpm_package.version} {HOST}: published" in output
    assert f"hello-fb {rpm_package.version} src: published" in output

    # The rpms in the registry carry the instance signature (the originals carry none).
    published = sorted((registry_root / "rpm" / "el8" / "main").glob("*/Packages/*.rpm"))
    assert [p.name for p in published] == sorted(p.name for p in rpm_files(rpm_package))
    for path in published:
        signature = run(["rpm", "-qp", "--qf", "%{RSAHEADER:pgpsig}", path]).stdout
        assert "Key ID" in signature, f"{path.name}: {signature}"

    dnf = dnf_client("dnf")
    result = dnf("install", "hello-fb", "hello-fb-data")
    assert result.returncode == 0, result.stdout
    root = dnf.installroot
    data = root / "usr" / "share" / "hello-fb" / "data.txt"
    assert data.read_text() == "data of hello-fb 1.0\n"
    assert (root / "usr" / "share" / "hello-fb" / "link").readlink() == Path("data.txt")
    hello = run(["sh", root / "usr" / "bin" / "hello-fb"])
    assert hello.stdout == f"hello from hello-fb {rpm_package.version}\n"

    repodata = registry_root / "rpm" / "el8" / "main" / HOST / "repodata"
    with Tampered((repodata / "repomd.xml", lambda text: text + b"<!-- tampered -->\n")):
        fresh = dnf_client("dnf-tampered")
        refused = fresh("install", "hello-fb")
        assert refused.returncode != 0, refused.stdout
        assert "repomd.xml GPG signature verification error" in refused.stdout, refused.stdout
        assert not (fresh.installroot / "usr" / "bin" / "hello-fb").exists()
    restored = dnf_client("dnf-restored")
    assert restored("install", "hello-fb").returncode == 0


# --- 3. deletion through the API -------------------------------------------------------------


def delete_artifact(web: WebServer, token: str, path: str, version: str) -> dict[str, Any]:
    """DELETE an artifact, wait for its task to succeed; the task JSON."""
    response = requests.delete(
        f"{web.url}/default/registry/{path}.json",
        params={"version": version},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    task_id = response.json()["task"]
    task = wait_finished(Task.objects.get(pk=task_id), timeout=60)
    assert task.result == TaskResult.SUCCESS, task.error
    return api(f"{web.url}/default/tasks/{task_id}.json")


def test_deleting_artifacts_through_the_api_removes_them_for_apt_and_dnf(
    registry_root, signed_instance, web, start_worker, fatbuildr_group_member, token_for,
    dnf_client, deb_package, rpm_package, tmp_path,
):  # fmt: skip
    import_packages("deb", "bookworm", [deb_package.changes])
    import_packages("rpm", "el8", rpm_files(rpm_package))
    start_worker()
    token = token_for(signed_instance, fatbuildr_group_member.username)
    keyring = download_keyring(web, tmp_path / "client" / "keyring.asc")

    # deb: the architecture-independent binary alone.
    deb_listing = api(f"{web.url}/default/registry/deb/bookworm/main.json")
    data = next(a for a in deb_listing if a["name"] == "hello-fb-data")
    assert data["architecture"] == "noarch"
    task = delete_artifact(web, token, "deb/bookworm/main/noarch/hello-fb-data", data["version"])
    assert task["name"] == "artifact deletion"
    assert task["artifact"] == {
        "name": "hello-fb-data",
        "architecture": "noarch",
        "version": deb_package.version,
        "size": data["size"],
    }
    assert isinstance(task["artifact"]["size"], int) and task["artifact"]["size"] > 0
    assert names_in(api(f"{web.url}/default/registry/deb/bookworm/main.json")) == {
        ("hello-fb", HOST),
        ("hello-fb", "src"),
    }
    apt = Apt(tmp_path / "apt", web, keyring)
    assert_clean_update(apt.update())
    gone = apt.download("hello-fb-data")
    assert gone.returncode != 0, gone.stdout
    assert apt.download("hello-fb").returncode == 0, "the other binary stays"

    # rpm: the source, which takes its binaries with it.
    rpm_listing = api(f"{web.url}/default/registry/rpm/el8/main.json")
    source = next(a for a in rpm_listing if a["architecture"] == "src")
    task = delete_artifact(web, token, "rpm/el8/main/src/hello-fb", source["version"])
    assert task["artifact"] == {
        "name": "hello-fb",
        "architecture": "src",
        "version": rpm_package.version,
        "size": source["size"],
    }
    assert isinstance(task["artifact"]["size"], int) and task["artifact"]["size"] > 0
    response = requests.get(f"{web.url}/default/registry/rpm/el8/main.json", timeout=30)
    assert response.status_code in (200, 404)
    if response.status_code == 200:
        assert response.json() == [], "nothing else was in el8/main"
    folder = registry_root / "rpm" / "el8" / "main"
    assert not list(folder.glob("*/Packages/*.rpm"))
    dnf = dnf_client("dnf")
    listed = dnf("list", "--available", "hello-fb", "hello-fb-data")
    assert listed.returncode != 0, listed.stdout
    missing = dnf("install", "hello-fb")
    assert missing.returncode != 0, missing.stdout
    assert "No match for argument: hello-fb" in missing.stdout


# --- 4. concurrent imports -------------------------------------------------------------------


def import_concurrently(fmt: str, distribution: str, files: list[Path], logs: Path) -> None:
    """One `manage.py registry import` process per file, all started at once."""
    logs.mkdir(parents=True, exist_ok=True)
    processes = []
    for index, path in enumerate(files):
        log = open(logs / f"{fmt}-{index}.log", "w+")  # noqa: SIM115 - closed below
        command = manage_command(
            "registry", "import", "--instance", "default", "--format", fmt,
            "--distribution", distribution, path,
        )  # fmt: skip
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=manage_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        processes.append((process, log))
    failures = []
    try:
        for process, log in processes:
            process.wait(timeout=TIMEOUT)
            if process.returncode != 0:
                log.seek(0)
                failures.append(log.read())
    finally:
        for process, log in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()
    assert not failures, f"{len(failures)} import(s) failed, e.g.:\n{failures[0]}"


def test_binary_deb_without_section_or_priority_is_imported(registry_root, many_debs, tmp_path):
    """Debian policy makes Section and Priority of a binary package recommended, not required,
    and dpkg-deb builds such packages; reprepro refuses them unless told a section and a
    priority, so the publish service must provide them."""
    tree = tmp_path / "tree"
    unpack = run(["dpkg-deb", "-R", many_debs[0], tree])
    assert unpack.returncode == 0, unpack.stdout
    control = tree / "DEBIAN" / "control"
    control.write_text(re.sub(r"^(Section|Priority): .*\n", "", control.read_text(), flags=re.M))
    deb = tmp_path / many_debs[0].name
    build = run(["dpkg-deb", "--root-owner-group", "-Znone", "--build", tree, deb])
    assert build.returncode == 0, build.stdout
    result = run(
        manage_command(
            "registry", "import", "--instance", "default", "--format", "deb",
            "--distribution", "bookworm", deb,
        ),
        cwd=REPO_ROOT,
        env=manage_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout


def test_publishing_one_binary_rpm_keeps_the_other_binaries_of_its_source(
    registry_root, rpm_package, anonymous_client
):
    """Binaries of one source, same version, imported one at a time (reprepro keeps the
    others for debs): each import must keep the binaries published before."""
    import_packages("rpm", "el8", [rpm_package.binaries["hello-fb-data"]])
    import_packages("rpm", "el8", [rpm_package.binaries["hello-fb"]])
    on_disk = {
        p.name for p in (registry_root / "rpm" / "el8" / "main" / HOST / "Packages").iterdir()
    }
    listing = anonymous_client.get("/default/registry/rpm/el8/main.json").json()
    assert on_disk == {p.name for p in rpm_package.binaries.values()}, listing
    assert names_in(listing) == {("hello-fb", HOST), ("hello-fb-data", "noarch")}


def test_concurrent_deb_imports_into_one_distribution_all_land_signed(
    registry_root, web, many_debs, tmp_path
):
    keyring = download_keyring(web, tmp_path / "client" / "keyring.asc")
    import_concurrently("deb", "bookworm", many_debs, tmp_path / "logs")

    expected = {path.name.split("_")[0] for path in many_debs}
    assert len(expected) == CONCURRENT_IMPORTS
    listing = run(["reprepro", "--basedir", registry_root / "deb", "list", "bookworm"])
    assert listing.returncode == 0, listing.stdout
    listed = {line.split(": ", 1)[1].split()[0] for line in listing.stdout.splitlines()}
    assert listed == expected
    index = api(f"{web.url}/default/registry/deb/bookworm/main.json")
    assert names_in(index) == {(name, "noarch") for name in expected}

    dists = registry_root / "deb" / "dists" / "bookworm"
    verified = gpgv(keyring, dists / "InRelease")
    assert verified.returncode == 0, verified.stdout
    assert "Good signature" in verified.stdout
    verified = gpgv(keyring, dists / "Release.gpg", dists / "Release")
    assert verified.returncode == 0, verified.stdout
    # The signed Release holds the checksum of the Packages file that lists them all.
    packages = dists / "main" / f"binary-{DEB_HOST}" / "Packages"
    assert set(re.findall(r"^Package: (\S+)$", packages.read_text(), re.M)) == expected
    assert sha256(packages) in (dists / "InRelease").read_text()

    apt = Apt(tmp_path / "apt", web, keyring)
    assert_clean_update(apt.update())
    result = apt.download(*sorted(expected))
    assert result.returncode == 0, result.stdout
    downloaded = {p.name: sha256(p) for p in (apt.root / "downloads").glob("*.deb")}
    assert downloaded == {p.name: sha256(p) for p in many_debs}


def test_concurrent_rpm_imports_into_one_distribution_all_land_signed(
    registry_root, web, dnf_client, many_rpms, tmp_path
):
    keyring = download_keyring(web, tmp_path / "client" / "keyring.asc")
    import_concurrently("rpm", "el8", many_rpms, tmp_path / "logs")

    files = {path.name for path in many_rpms}
    expected = {name.rsplit("-", 2)[0] for name in files}
    assert len(expected) == CONCURRENT_IMPORTS
    folder = registry_root / "rpm" / "el8" / "main"
    # noarch packages go into the folder of every pipeline architecture: the host's alone.
    assert sorted(p.name for p in folder.iterdir()) == [HOST]
    assert {p.name for p in (folder / HOST / "Packages").iterdir()} == files

    repodata = folder / HOST / "repodata"
    verified = gpgv(keyring, repodata / "repomd.xml.asc", repodata / "repomd.xml")
    assert verified.returncode == 0, verified.stdout
    assert "Good signature" in verified.stdout
    primary = next(repodata.glob("*-primary.xml.gz"))
    assert primary.name in (repodata / "repomd.xml").read_text()
    primary_xml = gzip.decompress(primary.read_bytes()).decode()
    assert set(re.findall(r"<name>([^<]+)</name>", primary_xml)) == expected

    dnf = dnf_client("dnf")
    query = dnf("repoquery", "--available", "--qf", "%{name}", "fbrpm*")
    assert query.returncode == 0, query.stdout
    assert set(query.stdout.split()) >= expected, query.stdout
    index = api(f"{web.url}/default/registry/rpm/el8/main.json")
    assert names_in(index) == {(name, "noarch") for name in expected}


# --- 5. reindex ------------------------------------------------------------------------------


def index_answers(client: APIClient) -> dict[str, Any]:
    """Every answer of the registry index API, by URL."""
    answers: dict[str, Any] = {}

    def get(url: str) -> Any:
        response = client.get(url)
        assert response.status_code == 200, f"{url}: {response.content}"
        answers[url] = response.json()
        return answers[url]

    for fmt in get("/default/registry.json"):
        for distribution in get(f"/default/registry/{fmt}.json"):
            for derivative in get(f"/default/registry/{fmt}/{distribution}.json"):
                base = f"/default/registry/{fmt}/{distribution}/{derivative}"
                for artifact in get(f"{base}.json"):
                    get(f"{base}/{artifact['architecture']}/{artifact['name']}.json")
    get("/default/search.json?artifact=hello")
    return answers


def test_reindex_rebuilds_identical_index_answers_from_disk(
    registry_root, deb_package, rpm_package, anonymous_client
):
    import_packages("deb", "bookworm", [deb_package.changes])
    import_packages("deb", "bookworm", [deb_package.changes], derivative="foox")
    import_packages("rpm", "el8", rpm_files(rpm_package))
    import_packages("rpm", "el8", rpm_files(rpm_package), derivative="foox")
    before = index_answers(anonymous_client)
    # 2 formats, 1 distribution each, 2 derivatives each, 3 artifacts each.
    assert sum(url.count("/") == 7 for url in before) == 12
    assert before["/default/registry/deb/bookworm.json"] == ["main", "foox"]

    Artifact.objects.all().delete()
    RegistryFormat.objects.all().delete()
    assert index_answers(anonymous_client) == {
        "/default/registry.json": [],
        "/default/search.json?artifact=hello": {},
    }

    output = manage("registry", "reindex", "--instance", "default")
    assert "deb: 6 artifact(s) indexed" in output
    assert "rpm: 6 artifact(s) indexed" in output
    assert index_answers(anonymous_client) == before

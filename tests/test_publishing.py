"""The publish service with the real tools: reprepro, rpmsign, createrepo_c, gpg.

Packages are real (tests/packages.py); the index is checked through the API
against what the package files say, and the files on disk with gpgv and rpmkeys.
"""

import gzip
import io
import subprocess
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry import indexing, publishing
from registry.models import Artifact, RegistryFormat
from registry.publishing import PublishError, Target
from registry.repositories.deb import DebRepository
from registry.storage import format_root
from tasks import engine
from tasks.models import Task, TaskLock, TaskName, TaskResult
from tasks.runner import CommandRunner
from tests.packages import build_deb, build_many_debs, build_rpm

ARTIFACTS = "/default/registry/{fmt}/{dist}/{deriv}.json"
ARTIFACT = "/default/registry/{fmt}/{dist}/{deriv}/{arch}/{name}.json"


class Recorder:
    """An OutputSink keeping log lines for assertions and dropping command output."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str, level: int = 20) -> None:
        self.lines.append(message)

    def output(self, data: bytes) -> None:
        pass


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def tools(recorder) -> dict:
    """The run/log pair a management command or a task gives the publish service."""
    return {"run": CommandRunner(recorder).run, "log": recorder.log}


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    """hello-fb 1.0-2 and 1.0-3 (the second without its data package)."""
    return {
        "2": build_deb(tmp_path_factory.mktemp("deb2"), revision="2"),
        "3": build_deb(tmp_path_factory.mktemp("deb3"), revision="3", with_data_package=False),
    }


@pytest.fixture(scope="module")
def rpms(tmp_path_factory):
    return {
        "2": build_rpm(tmp_path_factory.mktemp("rpm2"), release="2"),
        "3": build_rpm(tmp_path_factory.mktemp("rpm3"), release="3", with_data_package=False),
    }


def rpm_files(built) -> list[Path]:
    return [*built.binaries.values(), built.source]


def deb_target(instance, derivative: str = "main") -> Target:
    return Target(instance, "deb", "bookworm", derivative)


def rpm_target(instance, derivative: str = "main") -> Target:
    return Target(instance, "rpm", "el8", derivative)


def artifact(architecture: str, name: str, size: int, version: str) -> dict:
    return {"architecture": architecture, "name": name, "size": size, "version": version}


def artifact_url(fmt: str, arch: str, name: str, deriv: str = "main") -> str:
    dist = "bookworm" if fmt == "deb" else "el8"
    return ARTIFACT.format(fmt=fmt, dist=dist, deriv=deriv, arch=arch, name=name)


def wire_changelog(items) -> list[dict]:
    return [
        {"version": i.version, "author": i.author, "date": i.date, "changes": list(i.changes)}
        for i in items
    ]


def wire_content(items) -> list[dict]:
    return [{"path": path, "type": kind, "size": size} for path, kind, size in items]


def dearmored_key(instance, tmp_path: Path) -> Path:
    armored = tmp_path / "key.asc"
    armored.write_text(instance.keyring.public_key)
    keyring = tmp_path / "key.gpg"
    subprocess.run(
        ["gpg", "--batch", "--yes", "--dearmor", "-o", str(keyring), str(armored)], check=True
    )
    return keyring


def gpgv(keyring: Path, *args: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["gpgv", "--keyring", str(keyring), *map(str, args)], capture_output=True, text=True
    )


# --- deb -----------------------------------------------------------------------------------


def test_deb_import_indexes_what_the_package_files_say(
    signed_instance, debs, tools, anonymous_client
):
    built = debs["2"]
    publishing.publish(deb_target(signed_instance), [built.changes], **tools)

    listing = anonymous_client.get(ARTIFACTS.format(fmt="deb", dist="bookworm", deriv="main"))
    assert listing.status_code == 200
    sizes = {name: path.stat().st_size for name, path in built.debs.items()}
    assert listing.json() == [
        artifact("x86_64", "hello-fb", sizes["hello-fb"], "1.0-2"),
        artifact("noarch", "hello-fb-data", sizes["hello-fb-data"], "1.0-2"),
        artifact("src", "hello-fb", 0, "1.0-2"),
    ]

    binary = anonymous_client.get(artifact_url("deb", "noarch", "hello-fb-data")).json()
    assert binary["changelog"] == wire_changelog(built.changelog)
    assert binary["content"] == wire_content(built.contents["hello-fb-data"])
    assert binary["source"] == artifact("src", "hello-fb", 0, "1.0-2")
    source = anonymous_client.get(
        ARTIFACT.format(fmt="deb", dist="bookworm", deriv="main", arch="src", name="hello-fb")
    ).json()
    assert source["changelog"] == wire_changelog(built.changelog)
    assert {b["name"] for b in source["binaries"]} == {"hello-fb", "hello-fb-data"}
    assert anonymous_client.get("/default/registry.json").json() == ["deb"]
    assert anonymous_client.get("/default/registry/deb/bookworm.json").json() == ["main"]


def test_deb_registry_is_signed_with_the_instance_subkey(signed_instance, debs, tools, tmp_path):
    publishing.publish(deb_target(signed_instance, "foox"), [built := debs["2"].changes], **tools)
    root = format_root("default", "deb")
    conf = (root / "conf" / "distributions").read_text()
    assert f"SignWith: {signed_instance.keyring.subkey_fingerprint}" in conf
    assert "Components: main foox" in conf
    assert "Architectures: amd64 source" in conf
    keyring = dearmored_key(signed_instance, tmp_path)
    dists = root / "dists" / "bookworm"
    assert gpgv(keyring, dists / "InRelease").returncode == 0
    assert gpgv(keyring, dists / "Release.gpg", dists / "Release").returncode == 0
    packages = gzip.decompress((dists / "foox" / "binary-amd64" / "Packages.gz").read_bytes())
    assert b"Package: hello-fb\n" in packages and b"Package: hello-fb-data\n" in packages
    assert built.exists()  # the upload is left where it was

    # A tampered Release no longer verifies against its detached signature.
    release = dists / "Release"
    release.write_text(release.read_text().replace("Codename: bookworm", "Codename: evil"))
    assert gpgv(keyring, dists / "Release.gpg", release).returncode != 0


def test_a_newer_deb_replaces_the_older_one(signed_instance, debs, tools, anonymous_client):
    publishing.publish(deb_target(signed_instance), [debs["2"].changes], **tools)
    publishing.publish(deb_target(signed_instance), [debs["3"].changes], **tools)
    listing = anonymous_client.get(ARTIFACTS.format(fmt="deb", dist="bookworm", deriv="main"))
    versions = {(a["name"], a["architecture"]): a["version"] for a in listing.json()}
    # reprepro replaces packages by name: the data package of 1.0-2 stays, as on disk.
    assert versions == {
        ("hello-fb", "x86_64"): "1.0-3",
        ("hello-fb", "src"): "1.0-3",
        ("hello-fb-data", "noarch"): "1.0-2",
    }
    pool = format_root("default", "deb") / "pool" / "main" / "h" / "hello-fb"
    assert not list(pool.glob("hello-fb_1.0-2_*.deb"))
    assert (pool / "hello-fb_1.0-3.dsc").exists()


def test_an_older_deb_keeps_the_newer_one_and_the_index_says_so(
    signed_instance, debs, tools, recorder, anonymous_client
):
    publishing.publish(deb_target(signed_instance), [debs["3"].changes], **tools)
    older = debs["2"].debs["hello-fb"]
    published = publishing.publish(deb_target(signed_instance), [older], **tools)
    assert published == []
    assert any("stays in deb registry bookworm/main" in line for line in recorder.lines)
    description = anonymous_client.get(
        ARTIFACT.format(fmt="deb", dist="bookworm", deriv="main", arch="x86_64", name="hello-fb")
    ).json()
    assert description["changelog"][0]["version"] == "1.0-3"


def test_lone_debs_find_their_source_published_later(
    signed_instance, debs, tools, anonymous_client
):
    built = debs["2"]
    publishing.publish(deb_target(signed_instance), list(built.debs.values()), **tools)
    assert not Artifact.objects.filter(architecture="src").exists()
    assert Artifact.objects.get(name="hello-fb", architecture="x86_64").source is None
    publishing.publish(deb_target(signed_instance), [built.dsc], **tools)
    source = Artifact.objects.get(name="hello-fb", architecture="src")
    assert set(source.binaries.values_list("name", flat=True)) == {"hello-fb", "hello-fb-data"}


# --- rpm -----------------------------------------------------------------------------------


def test_rpm_import_indexes_signs_and_places_the_packages(
    signed_instance, rpms, tools, anonymous_client, tmp_path
):
    built = rpms["2"]
    publishing.publish(rpm_target(signed_instance), rpm_files(built), **tools)

    base = format_root("default", "rpm") / "el8" / "main"
    placed = {p.relative_to(base).as_posix() for p in base.glob("*/Packages/*.rpm")}
    assert placed == {
        "source/Packages/hello-fb-1.0-2.src.rpm",
        "x86_64/Packages/hello-fb-1.0-2.x86_64.rpm",
        "x86_64/Packages/hello-fb-data-1.0-2.noarch.rpm",
    }
    keyring = dearmored_key(signed_instance, tmp_path)
    for folder in ("source", "x86_64"):
        repodata = base / folder / "repodata"
        assert gpgv(keyring, repodata / "repomd.xml.asc", repodata / "repomd.xml").returncode == 0
    rpmdb = tmp_path / "rpmdb"
    rpmdb.mkdir()
    (tmp_path / "key.asc").write_text(signed_instance.keyring.public_key)
    subprocess.run(
        ["rpmkeys", "--dbpath", str(rpmdb), "--import", str(tmp_path / "key.asc")], check=True
    )
    for path in placed:
        checked = subprocess.run(
            ["rpmkeys", "--dbpath", str(rpmdb), "--checksig", str(base / path)],
            capture_output=True,
            text=True,
        )
        assert checked.returncode == 0 and "signatures OK" in checked.stdout, checked.stdout
    # The uploaded files are signed as copies: the originals stay as they were.
    original = subprocess.run(
        ["rpm", "-qp", "--qf", "%{RSAHEADER:pgpsig}", str(built.source)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert original == "(none)"

    sizes = {p.name: p.stat().st_size for p in base.glob("*/Packages/*.rpm")}
    listing = anonymous_client.get(ARTIFACTS.format(fmt="rpm", dist="el8", deriv="main")).json()
    assert listing == [
        artifact("x86_64", "hello-fb", sizes["hello-fb-1.0-2.x86_64.rpm"], "1.0-2"),
        artifact("noarch", "hello-fb-data", sizes["hello-fb-data-1.0-2.noarch.rpm"], "1.0-2"),
        artifact("src", "hello-fb", sizes["hello-fb-1.0-2.src.rpm"], "1.0-2"),
    ]
    binary = anonymous_client.get(
        ARTIFACT.format(fmt="rpm", dist="el8", deriv="main", arch="x86_64", name="hello-fb")
    ).json()
    assert binary["changelog"] == wire_changelog(built.changelog)
    assert binary["content"] == wire_content(built.contents["hello-fb"])
    data = anonymous_client.get(
        ARTIFACT.format(fmt="rpm", dist="el8", deriv="main", arch="noarch", name="hello-fb-data")
    ).json()
    assert data["content"] == wire_content(built.contents["hello-fb-data"])
    assert data["source"]["architecture"] == "src"


def test_a_new_rpm_source_replaces_everything_built_from_the_old_one(
    signed_instance, rpms, tools, anonymous_client
):
    publishing.publish(rpm_target(signed_instance), rpm_files(rpms["2"]), **tools)
    publishing.publish(rpm_target(signed_instance), rpm_files(rpms["3"]), **tools)
    base = format_root("default", "rpm") / "el8" / "main"
    assert sorted(p.name for p in base.glob("*/Packages/*.rpm")) == [
        "hello-fb-1.0-3.src.rpm",
        "hello-fb-1.0-3.x86_64.rpm",
    ]
    listing = anonymous_client.get(ARTIFACTS.format(fmt="rpm", dist="el8", deriv="main")).json()
    assert [(a["name"], a["architecture"], a["version"]) for a in listing] == [
        ("hello-fb", "x86_64", "1.0-3"),
        ("hello-fb", "src", "1.0-3"),
    ]
    primary = next((base / "x86_64" / "repodata").glob("*-primary.xml.gz"))
    metadata = gzip.decompress(primary.read_bytes()).decode()
    assert "hello-fb-data" not in metadata and 'rel="3"' in metadata


# --- deletion ------------------------------------------------------------------------------


def test_deleting_a_deb_binary_and_then_its_source(signed_instance, debs, tools):
    target = deb_target(signed_instance)
    publishing.publish(target, [debs["2"].changes], **tools)
    assert publishing.delete(target, "hello-fb-data", "noarch", "1.0-2", **tools) == [
        ("hello-fb-data", "noarch")
    ]
    repository = DebRepository(signed_instance, run=tools["run"])
    assert {(i.name, i.architecture) for i in repository.listing("bookworm")} == {
        ("hello-fb", "x86_64"),
        ("hello-fb", "src"),
    }
    removed = publishing.delete(target, "hello-fb", "src", "1.0-2", **tools)
    assert set(removed) == {("hello-fb", "x86_64"), ("hello-fb", "src")}
    assert repository.listing("bookworm") == []
    # Nothing left: the registry levels leave the index with the last artifact.
    assert not RegistryFormat.objects.exists()
    assert not list((format_root("default", "deb") / "pool").rglob("*.deb"))


def test_deleting_an_rpm_source_removes_its_binaries(signed_instance, rpms, tools):
    target = rpm_target(signed_instance)
    publishing.publish(target, rpm_files(rpms["2"]), **tools)
    publishing.delete(target, "hello-fb", "src", "1.0-2", **tools)
    base = format_root("default", "rpm") / "el8" / "main"
    assert not list(base.glob("*/Packages/*.rpm"))
    primary = next((base / "x86_64" / "repodata").glob("*-primary.xml.gz"))
    assert 'packages="0"' in gzip.decompress(primary.read_bytes()).decode()
    assert not Artifact.objects.exists()


def test_deleting_a_version_that_is_not_there_is_refused(signed_instance, rpms, tools):
    target = rpm_target(signed_instance)
    publishing.publish(target, rpm_files(rpms["2"]), **tools)
    with pytest.raises(PublishError, match=r"hello-fb version 1\.0-1 with architecture src"):
        publishing.delete(target, "hello-fb", "src", "1.0-1", **tools)
    assert Artifact.objects.count() == 3


# --- crash consistency and reindex ---------------------------------------------------------


def test_a_section_that_died_after_the_files_changed_is_repaired_by_the_next(
    signed_instance, rpms, debs, tools, monkeypatch, recorder
):
    target = rpm_target(signed_instance)

    def crash(*args, **kwargs):
        raise RuntimeError("worker died")

    with monkeypatch.context() as patch:
        patch.setattr(indexing, "record_packages", crash)
        with pytest.raises(RuntimeError):
            publishing.publish(target, rpm_files(rpms["2"]), **tools)
    # The files changed, the index did not: a marker says so.
    assert not Artifact.objects.exists()
    assert (format_root("default", "rpm") / ".changing-el8").exists()

    publishing.publish(rpm_target(signed_instance, "foox"), rpm_files(rpms["3"]), **tools)
    assert any("did not finish: reindexing" in line for line in recorder.lines)
    # Repaired once: the section after a committed one does not reindex.
    recorder.lines.clear()
    publishing.publish(rpm_target(signed_instance, "foox"), rpm_files(rpms["3"]), **tools)
    assert not any("did not finish" in line for line in recorder.lines)
    indexed = set(
        Artifact.objects.values_list("derivative__name", "name", "architecture", "version")
    )
    assert indexed == {
        ("main", "hello-fb", "x86_64", "1.0-2"),
        ("main", "hello-fb-data", "noarch", "1.0-2"),
        ("main", "hello-fb", "src", "1.0-2"),
        ("foox", "hello-fb", "x86_64", "1.0-3"),
        ("foox", "hello-fb", "src", "1.0-3"),
    }


def test_reindex_restores_the_same_api_answers(
    signed_instance, debs, rpms, tools, anonymous_client
):
    publishing.publish(deb_target(signed_instance), [debs["2"].changes], **tools)
    publishing.publish(rpm_target(signed_instance, "foox"), rpm_files(rpms["2"]), **tools)
    urls = [
        "/default/registry.json",
        "/default/registry/deb.json",
        "/default/registry/rpm/el8.json",
        ARTIFACTS.format(fmt="deb", dist="bookworm", deriv="main"),
        ARTIFACTS.format(fmt="rpm", dist="el8", deriv="foox"),
        "/default/search.json?artifact=hello",
    ]
    for fmt, deriv in (("deb", "main"), ("rpm", "foox")):
        for arch, name in (
            ("src", "hello-fb"),
            ("x86_64", "hello-fb"),
            ("noarch", "hello-fb-data"),
        ):
            urls.append(artifact_url(fmt, arch, name, deriv))
    before = {url: anonymous_client.get(url).json() for url in urls}

    RegistryFormat.objects.all().delete()
    assert anonymous_client.get("/default/registry.json").json() == []
    call_command("registry", "reindex", "--instance", "default", stdout=io.StringIO())

    assert {url: anonymous_client.get(url).json() for url in urls} == before


# --- refused input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "distribution", "derivative", "message"),
    [
        ("osi", "bookworm", "main", "Format osi has no registry"),
        ("deb", "trixie", "main", "Distribution trixie not found in deb pipelines"),
        ("deb", "el8", "main", "Distribution el8 not found in deb pipelines"),
        ("deb", "bookworm", "nope", "Derivative nope not found for distribution bookworm"),
    ],
)
def test_unknown_targets_are_refused(
    signed_instance, debs, tools, fmt, distribution, derivative, message
):
    target = Target(signed_instance, fmt, distribution, derivative)
    with pytest.raises(PublishError, match=message):
        publishing.publish(target, [debs["2"].changes], **tools)
    assert not format_root("default", "deb").exists()


def test_files_that_are_not_packages_are_refused(signed_instance, tmp_path, tools):
    fake = tmp_path / "evil_1.0_amd64.deb"
    fake.write_bytes(b"!<arch>\nnot really")
    with pytest.raises(PublishError, match=r"evil_1\.0_amd64\.deb: not a readable Debian package"):
        publishing.publish(deb_target(signed_instance), [fake], **tools)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(PublishError, match="not a Debian package"):
        publishing.publish(deb_target(signed_instance), [text], **tools)
    with pytest.raises(PublishError, match="not an rpm package"):
        publishing.publish(rpm_target(signed_instance), [text], **tools)
    fake_rpm = tmp_path / "x-1-1.noarch.rpm"
    fake_rpm.write_bytes(b"\xed\xab\xee\xdb garbage")
    with pytest.raises(PublishError, match="not readable rpm packages"):
        publishing.publish(rpm_target(signed_instance), [fake_rpm], **tools)


def test_a_changes_file_naming_files_outside_its_folder_is_refused(signed_instance, debs, tools):
    # Beside the real files, so that only the hostile name is wrong.
    hostile = debs["2"].changes.with_name("hostile.changes")
    text = debs["2"].changes.read_text()
    deb_name = debs["2"].debs["hello-fb"].name
    hostile.write_text(text.replace(f" {deb_name}", f" ../../etc/{deb_name}"))
    with pytest.raises(PublishError, match="refusing file name"):
        publishing.publish(deb_target(signed_instance), [hostile], **tools)


def test_architectures_outside_the_pipelines_are_refused(signed_instance, tmp_path, tools):
    (deb,) = build_many_debs(tmp_path, 1, prefix="foreign")
    tree = tmp_path / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    control.write_text(control.read_text().replace("Architecture: all", "Architecture: arm64"))
    arm = tmp_path / "foreign_1.0_arm64.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-b", str(tree), str(arm)],
        check=True,
        capture_output=True,
    )
    with pytest.raises(PublishError, match="architecture aarch64 is not one of the instance"):
        publishing.publish(deb_target(signed_instance), [arm], **tools)


def test_publishing_without_a_keyring_says_so(default_instance, data_dir, debs):
    with pytest.raises(CommandError, match="has no keyring yet"):
        call_command(
            "registry", "import", "--instance", "default", "--format", "deb",
            "--distribution", "bookworm", str(debs["2"].changes),
        )  # fmt: skip


def test_import_command_reports_what_it_published(signed_instance, rpms, capsys):
    call_command(
        "registry", "import", "--instance", "default", "--format", "rpm",
        "--distribution", "el8", "--derivative", "foox", *map(str, rpm_files(rpms["2"])),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "hello-fb 1.0-2 src: published" in out
    assert "hello-fb-data 1.0-2 noarch: published" in out
    with pytest.raises(CommandError, match="Unknown instance nope"):
        call_command("registry", "reindex", "--instance", "nope")


# --- deletion API --------------------------------------------------------------------------


@pytest.fixture
def editor(signed_instance, client_for, fatbuildr_group_member):
    return client_for(signed_instance, fatbuildr_group_member.username)


def test_delete_endpoint_queues_a_deletion_task(signed_instance, rpms, tools, editor, sent):
    publishing.publish(rpm_target(signed_instance), rpm_files(rpms["2"]), **tools)
    size = Artifact.objects.get(name="hello-fb-data").size
    url = ARTIFACT.format(fmt="rpm", dist="el8", deriv="main", arch="noarch", name="hello-fb-data")
    response = editor.delete(f"{url}?version=1.0-2")
    assert response.status_code == 200
    task = Task.objects.get(pk=response.json()["task"])
    assert (task.name, task.user, task.format, task.distribution, task.derivative) == (
        TaskName.ARTIFACT_DELETION, "builder", "rpm", "el8", "main"
    )  # fmt: skip
    assert list(TaskLock.objects.filter(task=task).values_list("resource", flat=True)) == [
        "artifact:default:rpm:el8:main:hello-fb"
    ]
    wire = editor.get(f"/default/tasks/{task.pk}.json").json()
    assert wire["artifact"] == {
        "name": "hello-fb-data", "architecture": "noarch", "version": "1.0-2", "size": size
    }  # fmt: skip
    assert isinstance(wire["artifact"]["size"], int) and size > 0


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("rpm/el8/main/noarch/hello-fb-data.json?version=9.9-9", 404, "version 9.9-9"),
        ("rpm/el8/main/x86_64/nothing.json?version=1.0-2", 404, "Artifact nothing"),
        ("rpm/el8/foox/src/hello-fb.json?version=1.0-2", 404, "Derivative foox not found"),
        ("rpm/el7/main/src/hello-fb.json?version=1.0-2", 404, "Distribution el7 not found"),
        ("osi/x/main/src/hello-fb.json?version=1.0-2", 404, "Distribution x not found"),
        ("rpm/el8/main/src/hello-fb.json", 400, "Missing version"),
        # What upstream's client sends (compat §2.8): a clean 404.
        (
            "deb/bookworm/main/%7Bartifact.architecture%7D/%7Bartifact.name%7D.json"
            "?version=%7Bartifact.version%7D",
            404,
            "Distribution bookworm not found",
        ),
    ],
)
def test_delete_endpoint_refuses_what_is_not_there(
    signed_instance, rpms, tools, editor, sent, path, status, message
):
    publishing.publish(rpm_target(signed_instance), rpm_files(rpms["2"]), **tools)
    response = editor.delete(f"/default/registry/{path}")
    assert response.status_code == status
    assert message in response.json()["error"]
    assert not Task.objects.exists() and not sent


def test_delete_endpoint_needs_edit_registry(signed_instance, rpms, tools, anonymous_client, sent):
    publishing.publish(rpm_target(signed_instance), rpm_files(rpms["2"]), **tools)
    url = ARTIFACT.format(fmt="rpm", dist="el8", deriv="main", arch="src", name="hello-fb")
    response = anonymous_client.delete(f"{url}?version=1.0-2")
    assert response.status_code == 403
    assert "edit-registry" in response.json()["error"]
    assert not Task.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_deletion_task_runs_the_deletion(signed_instance, debs, tools, editor, sent):
    publishing.publish(deb_target(signed_instance), [debs["2"].changes], **tools)
    url = artifact_url("deb", "noarch", "hello-fb-data")
    task_id = editor.delete(f"{url}?version=1.0-2").json()["task"]
    assert engine.execute(task_id)
    task = Task.objects.get(pk=task_id)
    assert task.result == TaskResult.SUCCESS, task.error
    assert not Artifact.objects.filter(name="hello-fb-data").exists()
    journal = task.journal_path.read_bytes()
    assert b"reprepro" in journal and b"Removing hello-fb-data (noarch)" in journal

    # Deleting it again: the task fails cleanly, the registry is unchanged.
    task_id = engine.submit(
        signed_instance, TaskName.ARTIFACT_DELETION, user="builder", format="deb",
        distribution="bookworm", derivative="main", artifact="hello-fb-data",
        artifact_architecture="noarch", artifact_version="1.0-2",
    ).pk  # fmt: skip
    engine.execute(str(task_id))
    task = Task.objects.get(pk=task_id)
    assert task.result == TaskResult.FAILED
    assert "hello-fb-data version 1.0-2 with architecture noarch is not in" in task.error
    assert Artifact.objects.count() == 2


@pytest.mark.parametrize("fmt", ["deb", "rpm"])
def test_publication_queries_do_not_grow_with_the_registry(signed_instance, debs, rpms, tools, fmt):
    target = deb_target(signed_instance) if fmt == "deb" else rpm_target(signed_instance)
    files = [debs["2"].changes] if fmt == "deb" else rpm_files(rpms["2"])
    publishing.publish(target, files, **tools)  # the first one creates the registry
    derivative = indexing.derivative_row(signed_instance, fmt, target.distribution, "main")
    counts = []
    for existing in (10, 1000):
        Artifact.objects.filter(name__startswith="other-").delete()
        Artifact.objects.bulk_create(
            Artifact(derivative=derivative, name=f"other-{i}", architecture="noarch", version="1")
            for i in range(existing)
        )
        with CaptureQueriesContext(connection) as queries:
            publishing.publish(target, files, **tools)
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_rpms_published_one_at_a_time_keep_each_other(signed_instance, rpms, tools):
    built = rpms["2"]
    for path in rpm_files(built):
        publishing.publish(rpm_target(signed_instance), [path], **tools)
    base = format_root("default", "rpm") / "el8" / "main"
    assert sorted(p.name for p in base.glob("*/Packages/*.rpm")) == [
        "hello-fb-1.0-2.src.rpm",
        "hello-fb-1.0-2.x86_64.rpm",
        "hello-fb-data-1.0-2.noarch.rpm",
    ]
    source = Artifact.objects.get(architecture="src")
    assert set(source.binaries.values_list("name", flat=True)) == {"hello-fb", "hello-fb-data"}


def rewrite_control(deb: Path, work: Path, edit) -> Path:
    """A copy of *deb* whose control file went through *edit*."""
    tree = work / f"tree-{deb.stem}"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    control.write_text(edit(control.read_text()))
    rebuilt = work / f"edited-{deb.name}"
    build = ["dpkg-deb", "--root-owner-group", "-b", str(tree), str(rebuilt)]
    subprocess.run(build, check=True, capture_output=True)
    return rebuilt


def test_debs_without_section_or_priority_get_debian_defaults(signed_instance, tmp_path, tools):
    bare, own = build_many_debs(tmp_path, 2, prefix="fields")
    without = rewrite_control(
        bare,
        tmp_path,
        lambda text: "".join(
            line for line in text.splitlines(keepends=True)
            if not line.startswith(("Section:", "Priority:"))
        ),
    )  # fmt: skip
    kept = rewrite_control(
        own,
        tmp_path,
        lambda text: text.replace("Section: misc", "Section: utils").replace(
            "Priority: optional", "Priority: important"
        ),
    )
    publishing.publish(deb_target(signed_instance), [without, kept], **tools)
    packages = format_root("default", "deb") / "dists/bookworm/main/binary-amd64/Packages"
    stanzas = {
        stanza.split("\n")[0]: stanza
        for stanza in packages.read_text().split("\n\n")
        if stanza.strip()
    }
    assert "Section: misc" in stanzas["Package: fields-00001"]
    assert "Priority: optional" in stanzas["Package: fields-00001"]
    assert "Section: utils" in stanzas["Package: fields-00002"]
    assert "Priority: important" in stanzas["Package: fields-00002"]


def test_reindex_leaves_out_only_an_unreadable_rpm(signed_instance, rpms, tools, recorder):
    publishing.publish(rpm_target(signed_instance), rpm_files(rpms["2"]), **tools)
    packages = format_root("default", "rpm") / "el8" / "main" / "x86_64" / "Packages"
    (packages / "broken-1.0-1.noarch.rpm").write_bytes(b"\xed\xab\xee\xdb not an rpm")
    publishing.reindex(signed_instance, **tools)
    assert set(Artifact.objects.values_list("name", "architecture")) == {
        ("hello-fb", "x86_64"),
        ("hello-fb-data", "noarch"),
        ("hello-fb", "src"),
    }
    assert any(line.startswith("Skipping broken-1.0-1.noarch.rpm") for line in recorder.lines)

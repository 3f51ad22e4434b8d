"""`POST /{instance}/build`: what fatbuildrctl sends is queued, anything else refused cleanly.

Archives are built the way fatbuildrctl builds them (compat §2.6): the
definition directory as an xz tarball with arcname ".", each source as
`<id>-<version>.tar.xz` with one top folder. A refused submission answers an
Error object and leaves no task and no file behind. No worker runs here: the
tests use the `db` fixture, whose transaction never commits, so no task
message is sent unless a test runs the on-commit callbacks itself.
"""

import io
import lzma
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.parsers import MultiPartParser
from rest_framework.test import APIClient

from accounts.policy import _load
from builds import services
from builds.definition import MAX_DEFINITION_SIZE
from fatbuildr_site.exceptions import domain_error_status
from tasks.models import Task, TaskLock, TaskName, workspace_path
from tests.helpers import assert_error

pytestmark = pytest.mark.usefixtures("fresh_policy_cache")

ARTIFACT_YML = """\
version: 2.10
source: https://ftp.gnu.org/gnu/hello/hello-{{ version }}.tar.gz
deb:
  release: 1
rpm:
  release: 1
"""
# No version: the main source must come with the request.
UNVERSIONED_YML = """\
source: https://ftp.gnu.org/gnu/hello/hello-{{ version }}.tar.gz
deb:
  release: 1
"""
FOOX_YML = """\
source: https://ftp.gnu.org/gnu/hello/hello-{{ version }}.tar.gz
derivatives:
  main: 2.10
  foox: 2.12
deb:
  release: 1
"""
FIELDS = {
    "format": "deb",
    "distribution": "bookworm",
    "architectures": "x86_64",
    "derivative": "main",
    "artifact": "hello",
    "user_name": "John Doe",
    "user_email": "john.doe@example.org",
    "message": "Test build",
}
# FIELDS once checked, as the service takes them.
BUILD = services.BuildRequest(
    format="deb",
    distribution="bookworm",
    derivative="main",
    artifact="hello",
    architectures=["x86_64"],
    author="John Doe",
    email="john.doe@example.org",
    message="Test build",
)


@pytest.fixture
def builder(default_instance, data_dir, client_for, fatbuildr_group_member, sent) -> APIClient:
    """A member of group fatbuildr: the vendor policy lets it build."""
    return client_for(default_instance, fatbuildr_group_member.username)


# --- Archives ------------------------------------------------------------------------------


def xz_tar(path: Path, add: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        add(tar)
    return path


def definition_tarball(tmp_path: Path, artifact_yml: str | None = ARTIFACT_YML) -> Path:
    """The tarball fatbuildrctl sends: the definition directory, arcname "."."""
    folder = tmp_path / "definition"
    (folder / "deb").mkdir(parents=True)
    (folder / "deb" / "control").write_text("Source: hello\n")
    if artifact_yml is not None:
        (folder / "artifact.yml").write_text(artifact_yml)
    return xz_tar(tmp_path / "fatbuildr-artifact.tar.xz", lambda tar: tar.add(folder, arcname="."))


def source_archive(tmp_path: Path, source_id: str = "hello", version: str = "2.10") -> Path:
    """A source tree as fatbuildrctl packs it: `<id>-<version>/` as the one top folder."""
    top = f"{source_id}-{version}"
    folder = tmp_path / "source" / top
    folder.mkdir(parents=True)
    (folder / "hello.c").write_text("int main(void) { return 0; }\n")
    return xz_tar(tmp_path / f"{top}.tar.xz", lambda tar: tar.add(folder, arcname=top))


def member(name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes = b"", **attributes):
    """A tar member built by hand, for what no honest directory holds."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for attribute, value in attributes.items():
        setattr(info, attribute, value)
    return info, io.BytesIO(data) if kind == tarfile.REGTYPE else None


def crafted_tarball(path: Path, *members, artifact_yml: str = ARTIFACT_YML) -> Path:
    """A valid definition followed by *members*: they alone make the archive hostile."""

    def add(tar: tarfile.TarFile) -> None:
        tar.addfile(*member(".", tarfile.DIRTYPE))
        tar.addfile(*member("./artifact.yml", data=artifact_yml.encode()))
        for info, data in members:
            tar.addfile(info, data)

    return xz_tar(path, add)


# --- Requests ------------------------------------------------------------------------------


def build_url(instance: str = "default") -> str:
    return f"/{instance}/build"


def post_build(client: APIClient, tarball: Path | None, *, url: str = "", **overrides):
    """POST a submission as fatbuildrctl does; an override of None leaves the field out,
    `sources` maps source ids to archive paths."""
    sources: dict[str, Path] = overrides.pop("sources", {})
    data: dict = {**FIELDS, **overrides}
    data = {name: value for name, value in data.items() if value is not None}
    handles = []
    if tarball is not None:
        handles.append(tarball.open("rb"))
        data["tarball"] = handles[-1]
    for source_id, path in sources.items():
        handles.append(path.open("rb"))
        data[f"source/{source_id}"] = handles[-1]
    try:
        return client.post(url or build_url(), data, format="multipart")
    finally:
        for handle in handles:
            handle.close()


def raw_multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart body with file names the test client would not send (it keeps basenames)."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for name, file_name, content in files:
        header = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
        header += f'filename="{file_name}"\r\n\r\n'
        parts.append(header.encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if not path.is_dir()}


def assert_refused_cleanly(data_dir: Path, sent: list) -> None:
    """No task, no message, no workspace left."""
    assert not Task.objects.exists()
    assert sent == []
    workspaces = data_dir / "workspaces" / "default"
    assert not workspaces.exists() or not any(workspaces.iterdir())


# --- Success -------------------------------------------------------------------------------


def test_build_is_queued_with_its_uploads_in_the_workspace(
    builder, default_instance, data_dir, tmp_path, sent, django_capture_on_commit_callbacks
):
    tarball = definition_tarball(tmp_path)
    source = source_archive(tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_build(builder, tarball, sources={"hello": source})

    assert response.status_code == 200, response.content
    assert set(response.json()) == {"task"}
    task = Task.objects.get(pk=uuid.UUID(response.json()["task"]))
    assert sent == [task.pk]
    assert (task.name, task.user, task.format, task.distribution, task.derivative) == (
        TaskName.ARTIFACT_BUILD, "builder", "deb", "bookworm", "main"
    )  # fmt: skip
    assert (task.artifact, task.architectures) == ("hello", ["x86_64"])
    assert (task.author, task.email, task.message) == (
        "John Doe", "john.doe@example.org", "Test build"
    )  # fmt: skip

    workspace = workspace_path(default_instance.pk, task.pk)
    assert task.place == str(workspace)
    assert workspace.is_relative_to(data_dir)
    saved_source = workspace / "upload" / "sources" / "hello" / "hello-2.10.tar.xz"
    assert task.archives == [{"id": "hello", "path": str(saved_source)}]
    assert saved_source.read_bytes() == source.read_bytes()
    # Saved under the server's name whatever the client called it, and never extracted.
    assert services.uploaded_tarball(workspace) == workspace / "upload" / "artifact.tar"
    assert (workspace / "upload" / "artifact.tar").read_bytes() == tarball.read_bytes()
    assert files_under(workspace) == {saved_source, workspace / "upload" / "artifact.tar"}
    assert (workspace / "upload").stat().st_mode & 0o077 == 0

    locks = set(TaskLock.objects.filter(task=task).values_list("resource", "exclusive"))
    assert locks == {
        ("artifact:default:deb:bookworm:main:hello", True),
        ("environment:default:deb:bookworm:x86_64", False),
    }
    wire = builder.get(f"/default/tasks/{task.pk}.json").json()
    assert wire["archives"] == [{"id": "hello", "path": str(saved_source)}]
    assert wire["architectures"] == ["x86_64"] and wire["state"] == "pending"


def test_build_without_sources_takes_the_declared_version(builder, tmp_path, data_dir):
    response = post_build(builder, definition_tarball(tmp_path), message="")
    assert response.status_code == 200, response.content
    task = Task.objects.get()
    assert (task.archives, task.message) == ([], "")


def test_every_architecture_holds_its_build_environment(builder, tmp_path, settings):
    settings.FATBUILDR_HOST_ARCHITECTURE = "aarch64"
    response = post_build(
        builder, definition_tarball(tmp_path), architectures="x86_64,aarch64,x86_64"
    )
    assert response.status_code == 200, response.content
    task = Task.objects.get()
    assert task.architectures == ["x86_64", "aarch64"]
    shared = TaskLock.objects.filter(task=task, exclusive=False).values_list("resource", flat=True)
    assert set(shared) == {
        "environment:default:deb:bookworm:x86_64",
        "environment:default:deb:bookworm:aarch64",
    }


def test_derivative_build_of_an_artifact_that_accepts_it(builder, tmp_path):
    response = post_build(
        builder, definition_tarball(tmp_path, FOOX_YML), distribution="bookworm", derivative="foox"
    )
    assert response.status_code == 200, response.content
    locks = TaskLock.objects.filter(task=Task.objects.get(), exclusive=True)
    assert list(locks.values_list("resource", flat=True)) == [
        "artifact:default:deb:bookworm:foox:hello"
    ]


def test_unversioned_artifact_builds_from_its_uploaded_main_source(builder, tmp_path):
    tarball = definition_tarball(tmp_path, UNVERSIONED_YML)
    response = post_build(builder, tarball, sources={"hello": source_archive(tmp_path)})
    assert response.status_code == 200, response.content


def test_unversioned_artifact_needs_its_main_source(builder, tmp_path, data_dir, sent):
    response = post_build(builder, definition_tarball(tmp_path, UNVERSIONED_YML))
    assert_error(response, 400, "source/hello")
    assert_refused_cleanly(data_dir, sent)


def test_build_in_mono_instance_mode(builder, mono_mode, tmp_path):
    response = post_build(builder, definition_tarball(tmp_path), url="/build")
    assert response.status_code == 200, response.content
    assert Task.objects.get().instance_id == "default"


def test_source_file_name_is_reduced_to_its_basename(builder, tmp_path, data_dir):
    fields = dict(FIELDS)
    body, content_type = raw_multipart(
        fields,
        [
            (
                "tarball",
                "../../fatbuildr-artifact.tar.xz",
                definition_tarball(tmp_path).read_bytes(),
            ),
            ("source/hello", "../../hello-2.10.tar.xz", source_archive(tmp_path).read_bytes()),
        ],
    )
    response = builder.generic("POST", build_url(), body, content_type=content_type)
    assert response.status_code == 200, response.content
    task = Task.objects.get()
    path = Path(task.archives[0]["path"])
    assert path == Path(task.place) / "upload" / "sources" / "hello" / "hello-2.10.tar.xz"
    assert path.is_file()
    assert all(saved.is_relative_to(task.place) for saved in files_under(data_dir))


# --- Fields --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*FIELDS])
def test_missing_field_is_refused(builder, tmp_path, data_dir, sent, name):
    response = post_build(builder, definition_tarball(tmp_path), **{name: None})
    assert_error(response, 400, f"Missing field {name}")
    assert_refused_cleanly(data_dir, sent)


@pytest.mark.parametrize("name", [name for name in FIELDS if name != "message"])
def test_empty_field_is_refused(builder, tmp_path, data_dir, sent, name):
    response = post_build(builder, definition_tarball(tmp_path), **{name: ""})
    assert_error(response, 400, f"Missing field {name}")
    assert_refused_cleanly(data_dir, sent)


def test_missing_tarball_is_refused(builder, data_dir, sent):
    assert_error(post_build(builder, None), 400, "Missing field tarball")
    assert_refused_cleanly(data_dir, sent)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"artifact": "../hello"}, "Invalid artifact name ../hello"),
        ({"artifact": ".hello"}, "Invalid artifact name .hello"),
        ({"architectures": "x86_64,"}, "Invalid architectures list"),
        ({"user_name": "John\nDoe"}, "Field user_name holds a control character"),
        ({"message": "nul \x00 byte"}, "Field message holds a NUL or invalid character"),
        ({"user_email": "x" * 256}, "Field user_email is longer than 255 characters"),
    ],
)
def test_malformed_field_is_refused(builder, tmp_path, data_dir, sent, overrides, message):
    response = post_build(builder, definition_tarball(tmp_path), **overrides)
    assert_error(response, 400, message)
    assert_refused_cleanly(data_dir, sent)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"format": "zip"}, "Format zip not supported by instance pipelines"),
        ({"distribution": "bookworm2"}, "Distribution bookworm2 not found in deb pipelines"),
        # el8 exists, but in the rpm pipelines.
        ({"distribution": "el8"}, "Distribution el8 not found in deb pipelines"),
        (
            {"derivative": "nope"},
            "Derivative nope not found in deb pipelines for distribution bookworm",
        ),
        ({"architectures": "sparc"}, "Architecture sparc not found in instance pipelines"),
        ({"architectures": "x86_64,sparc"}, "Architecture sparc not found in instance pipelines"),
    ],
)
def test_unknown_pipeline_item_is_404(builder, tmp_path, data_dir, sent, overrides, message):
    response = post_build(builder, definition_tarball(tmp_path), **overrides)
    assert response.status_code == 404
    assert response.json() == {"error": message}
    assert_refused_cleanly(data_dir, sent)


# --- Permissions and methods ---------------------------------------------------------------


def test_anonymous_cannot_build_under_the_vendor_policy(default_instance, data_dir, tmp_path, sent):
    response = post_build(APIClient(), definition_tarball(tmp_path))
    assert response.status_code == 403
    assert response.json() == {"error": "anonymous role is not allowed to perform action build"}
    assert_refused_cleanly(data_dir, sent)


def test_user_outside_the_build_roles_cannot_build(
    default_instance, data_dir, tmp_path, client_for, sent
):
    response = post_build(client_for(default_instance, "mallory"), definition_tarball(tmp_path))
    assert response.status_code == 403
    assert response.json() == {"error": "user mallory is not allowed to perform action build"}
    assert_refused_cleanly(data_dir, sent)


def test_anonymous_build_is_submitted_as_anonymous(
    default_instance, data_dir, tmp_path, settings, sent
):
    policy = tmp_path / "policy.acl"
    policy.write_text("[roles]\nanonymous\n\n[anonymous]\nactions=build\n")
    settings.FATBUILDR_POLICY = policy
    _load.cache_clear()
    response = post_build(APIClient(), definition_tarball(tmp_path))
    assert response.status_code == 200, response.content
    assert Task.objects.get().user == "anonymous"


def test_get_is_405_for_a_builder_and_403_for_anonymous(builder, default_instance):
    # Upstream's catch-all answered 404 here (compat §1.2); a 405 names the real mistake.
    assert_error(builder.get(build_url()), 405)
    response = APIClient().get(build_url())
    assert response.status_code == 403
    assert "build" in response.json()["error"]


def test_json_body_is_refused(builder, data_dir, sent):
    assert_error(builder.post(build_url(), FIELDS, format="json"), 415)
    assert_refused_cleanly(data_dir, sent)


def test_malformed_multipart_is_an_error_object(builder, data_dir, sent):
    response = builder.generic(
        "POST", build_url(), b"garbage", content_type="multipart/form-data; boundary="
    )
    assert_error(response, 400)
    assert_refused_cleanly(data_dir, sent)


# --- Sizes ---------------------------------------------------------------------------------


def test_request_larger_than_the_limit_is_refused_before_reading(
    builder, tmp_path, data_dir, sent, settings, monkeypatch
):
    settings.FATBUILDR_BUILD_UPLOAD_MAX_SIZE = 1000

    def must_not_run(*args, **kwargs):
        raise AssertionError("the body was read")

    monkeypatch.setattr(MultiPartParser, "parse", must_not_run)
    response = post_build(builder, definition_tarball(tmp_path))
    assert_error(response, 413, "Build submission larger than 1000 bytes")
    assert_refused_cleanly(data_dir, sent)


def test_uploads_larger_than_the_limit_are_refused_without_content_length(
    default_instance, data_dir, settings, sent
):
    settings.FATBUILDR_BUILD_UPLOAD_MAX_SIZE = 10
    with pytest.raises(services.SubmissionError, match="larger than 10 bytes") as error:
        services.submit_build(
            default_instance,
            user="builder",
            build=BUILD,
            tarball=SimpleUploadedFile("t.tar.xz", b"x" * 11),
            sources={},
        )
    assert domain_error_status(error.value) == 400
    assert_refused_cleanly(data_dir, sent)


def test_workspace_is_removed_when_the_task_cannot_be_queued(
    default_instance, data_dir, tmp_path, monkeypatch, sent
):
    def broken_submit(*args, **kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(services, "submit", broken_submit)
    with pytest.raises(RuntimeError):
        services.submit_build(
            default_instance,
            user="builder",
            build=BUILD,
            tarball=SimpleUploadedFile("t.tar.xz", definition_tarball(tmp_path).read_bytes()),
            sources={},
        )
    assert_refused_cleanly(data_dir, sent)


# --- Hostile or wrong archives -------------------------------------------------------------

ESCAPE = "escape-target"


def hostile_tarballs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each hostile tarball kind, with a word its refusal must contain."""
    escape = tmp_path / ESCAPE
    depth = "../" * 12
    cases = {
        "absolute-path": ("absolute", member(str(escape), data=b"pwned")),
        "dot-dot": ("leaves", member(f"./{depth}{ESCAPE}", data=b"pwned")),
        "dot-dot-inside": ("leaves", member(f"./deb/../../{ESCAPE}", data=b"pwned")),
        "escaping-symlink": ("symlink", member("./link", tarfile.SYMTYPE, linkname=depth)),
        "escaping-symlink-then-write": (
            "symlink",
            member("./link", tarfile.SYMTYPE, linkname=depth),
            member(f"./link/{ESCAPE}", data=b"pwned"),
        ),
        # Each link looks harmless alone; together they point above the root.
        "escaping-symlink-chain": (
            "symlink",
            member("./deb/up", tarfile.SYMTYPE, linkname=".."),
            member("./link", tarfile.SYMTYPE, linkname="deb/up/.."),
        ),
        "absolute-symlink": ("absolute", member("./link", tarfile.SYMTYPE, linkname=str(escape))),
        "hard-link-outside": (
            "hard link",
            member("./link", tarfile.LNKTYPE, linkname=f"{depth}etc/passwd"),
        ),
        "absolute-hard-link": (
            "hard link",
            member("./link", tarfile.LNKTYPE, linkname="/etc/passwd"),
        ),
        "char-device": (
            "character device",
            member("./null", tarfile.CHRTYPE, devmajor=1, devminor=3),
        ),
        "block-device": ("block device", member("./sda", tarfile.BLKTYPE, devmajor=8)),
        "fifo": ("FIFO", member("./fifo", tarfile.FIFOTYPE)),
    }
    return {
        name: (crafted_tarball(tmp_path / f"{name}.tar.xz", *members), reason)
        for name, (reason, *members) in cases.items()
    }


HOSTILE_KINDS = [
    "absolute-path",
    "dot-dot",
    "dot-dot-inside",
    "escaping-symlink",
    "escaping-symlink-then-write",
    "escaping-symlink-chain",
    "absolute-symlink",
    "hard-link-outside",
    "absolute-hard-link",
    "char-device",
    "block-device",
    "fifo",
]


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_hostile_tarball_is_refused(builder, tmp_path, data_dir, sent, kind):
    tarball, reason = hostile_tarballs(tmp_path)[kind]
    before = files_under(tmp_path)
    response = post_build(builder, tarball)
    assert_error(response, 400, "tarball: ")
    assert reason in response.json()["error"]
    assert_refused_cleanly(data_dir, sent)
    assert not (tmp_path / ESCAPE).exists()
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_hostile_source_archive_is_refused(builder, tmp_path, data_dir, sent, kind):
    # A hostile archive renamed as a source: the source label names the culprit.
    source = tmp_path / "hello-2.10.tar.xz"
    hostile, reason = hostile_tarballs(tmp_path)[kind]
    hostile.rename(source)
    tarball = definition_tarball(tmp_path)
    before = files_under(tmp_path)
    response = post_build(builder, tarball, sources={"hello": source})
    assert_error(response, 400, "source hello: ")
    assert reason in response.json()["error"]
    assert_refused_cleanly(data_dir, sent)
    assert not (tmp_path / ESCAPE).exists()
    assert files_under(tmp_path) == before


def test_tarball_with_too_many_members_is_refused(builder, tmp_path, data_dir, sent, settings):
    settings.FATBUILDR_BUILD_ARCHIVE_MAX_MEMBERS = 5
    members = [member(f"./file{number}", data=b"x") for number in range(10)]
    response = post_build(builder, crafted_tarball(tmp_path / "many.tar.xz", *members))
    assert_error(response, 400, "tarball: archive has more than 5 members")
    assert_refused_cleanly(data_dir, sent)


def test_tarball_too_large_once_uncompressed_is_refused(
    builder, tmp_path, data_dir, sent, settings
):
    settings.FATBUILDR_BUILD_ARCHIVE_MAX_SIZE = 10_000
    # Compresses to almost nothing: only the uncompressed size tells.
    bomb = member("./bomb", data=b"\0" * 100_000)
    tarball = crafted_tarball(tmp_path / "bomb.tar.xz", bomb)
    assert tarball.stat().st_size < 10_000
    response = post_build(builder, tarball)
    assert_error(response, 400, "over 10000 bytes")
    assert_refused_cleanly(data_dir, sent)


def test_not_a_tarball_is_refused(builder, tmp_path, data_dir, sent):
    junk = tmp_path / "junk.tar.xz"
    junk.write_bytes(lzma.compress(b"this is not a tar archive" * 100))
    assert_error(post_build(builder, junk), 400, "tarball: ")
    assert_refused_cleanly(data_dir, sent)
    junk.write_bytes(b"\x89PNG not even compressed")
    assert_error(post_build(builder, junk), 400, "tarball: ")
    assert_refused_cleanly(data_dir, sent)


def test_tarball_without_definition_is_refused(builder, tmp_path, data_dir, sent):
    response = post_build(builder, definition_tarball(tmp_path, artifact_yml=None))
    assert_error(response, 400, "tarball has no artifact.yml")
    assert_refused_cleanly(data_dir, sent)


def test_invalid_yaml_is_refused(builder, tmp_path, data_dir, sent):
    response = post_build(builder, definition_tarball(tmp_path, "deb: [release: 1\n  - :"))
    assert_error(response, 400)
    assert_refused_cleanly(data_dir, sent)


def test_format_missing_from_the_definition_is_refused(builder, tmp_path, data_dir, sent):
    no_rpm = ARTIFACT_YML.replace("rpm:\n  release: 1\n", "")
    assert "rpm" not in no_rpm
    response = post_build(
        builder, definition_tarball(tmp_path, no_rpm), format="rpm", distribution="el8"
    )
    assert_error(response, 400, "artifact hello has no rpm packaging")
    assert_refused_cleanly(data_dir, sent)


def test_derivative_the_definition_does_not_accept_is_refused(builder, tmp_path, data_dir, sent):
    response = post_build(builder, definition_tarball(tmp_path), derivative="foox")
    assert_error(response, 400, "artifact hello does not accept derivative foox")
    assert_refused_cleanly(data_dir, sent)


def add_definition_as(name: str) -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        tar.addfile(*member(".", tarfile.DIRTYPE))
        tar.addfile(*member(f"./{name}", data=ARTIFACT_YML.encode()))

    return add


@pytest.mark.parametrize("name", ["artifact.yaml", "meta.yml"])
def test_other_definition_file_names_are_read(builder, tmp_path, name):
    tarball = xz_tar(tmp_path / "definition.tar.xz", add_definition_as(name))
    response = post_build(builder, tarball)
    assert response.status_code == 200, response.content


def test_rpm_build_holds_its_own_environment(builder, tmp_path):
    response = post_build(builder, definition_tarball(tmp_path), format="rpm", distribution="el8")
    assert response.status_code == 200, response.content
    locks = set(TaskLock.objects.filter(task=Task.objects.get()).values_list("resource", flat=True))
    assert locks == {
        "artifact:default:rpm:el8:main:hello",
        "environment:default:rpm:rocky-8:x86_64",
    }


@pytest.mark.parametrize(
    ("field", "file_name", "message"),
    [
        ("source/hello", "../../escape", "Invalid file name 'escape' of source hello"),
        # Django drops a file part named "..": the main source is then missing.
        ("source/hello", "..", "source/hello"),
        ("source/hello", "hello.tar.xz", "Invalid file name 'hello.tar.xz'"),
        ("source/hello", "hello-.tar.xz", "Invalid file name 'hello-.tar.xz'"),
        ("source/hello", "other-1.0.tar.xz", "Invalid file name 'other-1.0.tar.xz'"),
        ("source/hello", "hello-1.0.zip", "Invalid file name 'hello-1.0.zip'"),
        ("source/../hello", "hello-2.10.tar.xz", "Invalid source id ../hello"),
        ("source/", "hello-2.10.tar.xz", "Invalid source id"),
    ],
)
def test_bad_source_upload_is_refused(builder, tmp_path, data_dir, sent, field, file_name, message):
    tarball = definition_tarball(tmp_path, UNVERSIONED_YML)
    body, content_type = raw_multipart(
        FIELDS,
        [
            ("tarball", "fatbuildr-artifact.tar.xz", tarball.read_bytes()),
            (field, file_name, source_archive(tmp_path).read_bytes()),
        ],
    )
    response = builder.generic("POST", build_url(), body, content_type=content_type)
    assert_error(response, 400, message)
    assert_refused_cleanly(data_dir, sent)
    assert not (tmp_path.parent / "escape").exists()


def test_file_field_sent_twice_is_refused(builder, tmp_path, data_dir, sent):
    content = definition_tarball(tmp_path).read_bytes()
    body, content_type = raw_multipart(
        FIELDS, [("tarball", "a.tar.xz", content), ("tarball", "b.tar.xz", content)]
    )
    response = builder.generic("POST", build_url(), body, content_type=content_type)
    assert_error(response, 400, "Field tarball sent more than once")
    assert_refused_cleanly(data_dir, sent)


@pytest.mark.parametrize("name", [*FIELDS])
def test_text_field_sent_twice_is_refused(builder, tmp_path, data_dir, sent, name):
    # As `fatbuildrctl`'s curl equivalent would: -F format=deb -F format=rpm.
    other = {"format": "rpm", "distribution": "el8"}.get(name, FIELDS[name])
    response = post_build(builder, definition_tarball(tmp_path), **{name: [FIELDS[name], other]})
    assert_error(response, 400, f"Field {name} sent more than once")
    assert_refused_cleanly(data_dir, sent)


def test_file_sent_as_a_text_field_is_not_its_value(builder, tmp_path, data_dir, sent):
    content = definition_tarball(tmp_path).read_bytes()
    fields = {name: value for name, value in FIELDS.items() if name != "user_name"}
    body, content_type = raw_multipart(
        fields, [("tarball", "a.tar.xz", content), ("user_name", "name.txt", b"John\nDoe")]
    )
    response = builder.generic("POST", build_url(), body, content_type=content_type)
    assert_error(response, 400, "Missing field user_name")
    assert_refused_cleanly(data_dir, sent)


def test_deeply_nested_definition_is_refused(builder, tmp_path, data_dir, sent):
    response = post_build(builder, definition_tarball(tmp_path, "[" * 5000))
    assert_error(response, 400, "nested deeper than")
    assert_refused_cleanly(data_dir, sent)


def test_definition_of_many_aliases_is_refused(builder, tmp_path, data_dir, sent):
    # A billion laughs: ten lines that expand to 10^10 nodes for whoever walks them.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]
    response = post_build(builder, definition_tarball(tmp_path, "\n".join(lines)))
    assert_error(response, 400, "more than 100000 nodes")
    assert_refused_cleanly(data_dir, sent)


def test_oversized_definition_is_refused(builder, tmp_path, data_dir, sent):
    oversized = "version: 1.0\n" + "#" * MAX_DEFINITION_SIZE + "\n"
    response = post_build(builder, definition_tarball(tmp_path, oversized))
    assert_error(response, 400, str(MAX_DEFINITION_SIZE))
    assert_refused_cleanly(data_dir, sent)


def test_definition_symlink_is_not_followed(builder, tmp_path, data_dir, sent):
    def add(tar: tarfile.TarFile) -> None:
        tar.addfile(*member(".", tarfile.DIRTYPE))
        tar.addfile(*member("./real.yml", data=ARTIFACT_YML.encode()))
        tar.addfile(*member("./artifact.yml", tarfile.SYMTYPE, linkname="real.yml"))

    response = post_build(builder, xz_tar(tmp_path / "linked.tar.xz", add))
    assert_error(response, 400, "tarball has no artifact.yml")
    assert_refused_cleanly(data_dir, sent)


def test_source_without_a_single_top_folder_is_refused(builder, tmp_path, data_dir, sent):
    flat = crafted_tarball(tmp_path / "hello-2.10.tar.xz")
    response = post_build(builder, definition_tarball(tmp_path), sources={"hello": flat})
    assert_error(response, 400, "source hello")
    assert_refused_cleanly(data_dir, sent)


@pytest.mark.parametrize(
    ("file_name", "version"),
    [
        ("hello-2.10.tar.xz", "2.10"),
        ("hello-2.10~rc1.tar.gz", "2.10~rc1"),
        ("hello-2.10-3.tar.bz2", "2.10-3"),
        ("hello-1.0.tar", "1.0"),
        ("hello-.tar.xz", None),
        ("hello-1.0.zip", None),
        ("hello2-1.0.tar.xz", None),
        ("hello-1.0/x.tar.xz", None),
    ],
)
def test_version_of_an_uploaded_source_comes_from_its_name(file_name, version):
    assert services.uploaded_source_version("hello", file_name) == version

"""`POST /{instance}/build` with hostile or wrong archives and definitions: each is refused
with an Error object and leaves no task and no file behind (the same requests as
tests/test_build_submission.py, whose `builder` fixture lives in tests/conftest.py)."""

import lzma
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from builds import services
from builds.definition import MAX_DEFINITION_SIZE
from tasks.models import Task, TaskLock
from tests.build_requests import (
    ARTIFACT_YML,
    FIELDS,
    UNVERSIONED_YML,
    assert_refused_cleanly,
    build_url,
    crafted_tarball,
    definition_tarball,
    files_under,
    member,
    post_build,
    raw_multipart,
    source_archive,
    xz_tar,
)
from tests.helpers import assert_error

pytestmark = pytest.mark.usefixtures("fresh_policy_cache")


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

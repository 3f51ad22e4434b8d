"""Artifact definitions, their archives, versions, templates and downloaded sources.

Every archive refusal is exercised with a real crafted tarball, and sources are
downloaded from a local HTTP server, so the tests check what the code really does.
"""

import gzip
import hashlib
import io
import lzma
import os
import random
import tarfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

import pytest

from builds import sources
from builds.archives import (
    ArchiveError,
    ArchiveLimits,
    check_archive,
    default_limits,
    extract_archive,
    read_member,
    single_top_folder,
)
from builds.definition import (
    DefinitionError,
    SourceSpec,
    load_definition,
    parse_definition,
    patches,
)
from builds.formats import architecture_dependent
from builds.sources import SourceError, cached_source, verify_checksums
from builds.templates import TemplateError, render_template, render_tree
from builds.versions import ArtifactVersion

LIMITS = ArchiveLimits(max_size=1024 * 1024, max_members=100)


# --------------------------------------------------------------------------- archives


def member(name: str, kind: bytes = tarfile.REGTYPE, **attributes) -> tarfile.TarInfo:
    """A tar header of the given type; attributes are set as given (size, linkname...)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attributes.items():
        setattr(info, key, value)
    return info


def write_tar(
    path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w"
) -> Path:
    """Write an archive with exactly these headers, in this order (tarfile allows anything)."""
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def regular(name: str, data: bytes = b"content\n", mode: int = 0o644):
    return member(name, mode=mode), data


def directory(name: str):
    return member(name, tarfile.DIRTYPE, mode=0o755), None


def symlink(name: str, target: str):
    return member(name, tarfile.SYMTYPE, linkname=target), None


def hardlink(name: str, target: str, mode: int = 0o644):
    return member(name, tarfile.LNKTYPE, linkname=target, mode=mode), None


def test_check_archive_lists_normalized_names_of_any_compression(tmp_path):
    members = [
        directory("."),
        regular("./artifact.yml"),
        directory("./deb"),
        regular("./deb/control"),
        symlink("./deb/link", "control"),
        hardlink("./deb/hard", "deb/control"),
    ]
    expected = ["artifact.yml", "deb", "deb/control", "deb/link", "deb/hard"]
    for mode in ("w", "w:gz", "w:bz2", "w:xz"):
        path = write_tar(tmp_path / f"archive-{mode[-2:]}.tar", members, mode)
        assert check_archive(path, label="tarball", limits=LIMITS) == expected


def test_default_limits_come_from_the_settings(settings):
    settings.FATBUILDR_BUILD_ARCHIVE_MAX_SIZE = 1234
    settings.FATBUILDR_BUILD_ARCHIVE_MAX_MEMBERS = 56
    assert default_limits() == ArchiveLimits(max_size=1234, max_members=56)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([regular("/etc/passwd")], "tarball: member '/etc/passwd' has an absolute name"),
        ([regular("../x")], "tarball: member '../x' leaves the archive folder"),
        ([regular("a/../../x")], "tarball: member 'a/../../x' leaves the archive folder"),
        (
            [symlink("link", "../../etc")],
            "tarball: member 'link' is a symlink that leaves the archive folder",
        ),
        (
            [directory("a"), symlink("a/link", "../..")],
            "tarball: member 'a/link' is a symlink that leaves the archive folder",
        ),
        (
            [symlink("link", "/etc/passwd")],
            "tarball: member 'link' is a symlink to an absolute path",
        ),
        # Each link is harmless alone; together d/up/.. is the parent of the archive folder.
        (
            [directory("d"), symlink("d/up", ".."), symlink("u", "d/up/..")],
            "tarball: member 'u' is a symlink that leaves the archive folder",
        ),
        # Same attack with the links listed in the other order.
        (
            [symlink("u", "d/up/.."), directory("d"), symlink("d/up", "..")],
            "tarball: member 'u' is a symlink that leaves the archive folder",
        ),
        ([symlink("a", "b"), symlink("b", "a/x")], "is part of a symlink loop"),
        (
            [hardlink("hard", "../outside")],
            "tarball: member 'hard' is a hard link to '../outside', outside the archive folder",
        ),
        (
            [hardlink("hard", "/etc/shadow")],
            "tarball: member 'hard' is a hard link to '/etc/shadow', outside the archive folder",
        ),
        (
            [hardlink("hard", "later"), regular("later")],
            "member 'hard' is a hard link to 'later', which is not an earlier regular file",
        ),
        (
            [directory("d"), hardlink("hard", "d")],
            "member 'hard' is a hard link to 'd', which is not an earlier regular file",
        ),
        (
            [(member("tty", tarfile.CHRTYPE, devmajor=4, devminor=1), None)],
            "tarball: member 'tty' is a special file (character device)",
        ),
        (
            [(member("sda", tarfile.BLKTYPE, devmajor=8, devminor=0), None)],
            "tarball: member 'sda' is a special file (block device)",
        ),
        (
            [(member("pipe", tarfile.FIFOTYPE), None)],
            "tarball: member 'pipe' is a special file (FIFO)",
        ),
        (
            [symlink("d", "real"), directory("real"), regular("d/file")],
            "tarball: member 'd/file' is under 'd', which is a symlink",
        ),
        (
            [regular("d/sub/file"), symlink("d", ".")],
            "tarball: member 'd/sub/file' is under 'd', which is a symlink",
        ),
        (
            [symlink("f", "target"), regular("target"), regular("f")],
            "tarball: member 'f' appears twice and one of them is a symlink",
        ),
    ],
)
def test_check_archive_refuses_unsafe_members(tmp_path, members, message):
    path = write_tar(tmp_path / "bad.tar", members, "w:xz")
    with pytest.raises(ArchiveError) as error:
        check_archive(path, label="tarball", limits=LIMITS)
    if message is not None:
        assert message in str(error.value)


def test_check_archive_refuses_too_many_members(tmp_path):
    path = write_tar(tmp_path / "many.tar", [regular(f"f{index}") for index in range(5)])
    limits = ArchiveLimits(max_size=LIMITS.max_size, max_members=4)
    with pytest.raises(ArchiveError, match="source hello: archive has more than 4 members"):
        check_archive(path, label="source hello", limits=limits)
    assert len(check_archive(path, label="source hello", limits=ArchiveLimits(10**6, 5))) == 5


def test_check_archive_refuses_too_large_total_size(tmp_path):
    path = write_tar(tmp_path / "large.tar", [regular("a", b"x" * 600), regular("b", b"y" * 600)])
    with pytest.raises(ArchiveError, match="member 'b' takes the archive over 1000 bytes"):
        check_archive(path, label="tarball", limits=ArchiveLimits(1000, 100))
    assert check_archive(path, label="tarball", limits=ArchiveLimits(1200, 100)) == ["a", "b"]


def test_check_archive_stops_a_bomb_at_its_header(tmp_path):
    """A header announcing 1 TiB, followed by only 1 MiB of data: if the data were read,
    the archive would be reported truncated after inflating it, not refused for its size."""
    header = member("bomb", size=2**40, mode=0o644).tobuf(format=tarfile.GNU_FORMAT)
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(gzip.compress(header + bytes(1024 * 1024)))
    started = time.monotonic()
    with pytest.raises(ArchiveError, match="member 'bomb' takes the archive over"):
        check_archive(path, label="tarball", limits=ArchiveLimits(2**30, 100))
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, I am not an archive\n" * 40, lzma.compress(b"not a tar at all" * 100)],
    ids=["empty", "text", "xz-of-text"],
)
def test_check_archive_refuses_what_is_not_a_tar(tmp_path, content):
    path = tmp_path / "bogus.tar.xz"
    path.write_bytes(content)
    with pytest.raises(ArchiveError, match=r"^tarball: not a valid tar archive"):
        check_archive(path, label="tarball", limits=LIMITS)


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz"])
def test_check_archive_refuses_corrupt_compressed_data(tmp_path, mode):
    """Random data is stored as is by the compressors: only their checksums tell that it
    was altered, so this shows they are verified."""
    data = random.Random(0).randbytes(20000)
    good = write_tar(tmp_path / "good.tar", [regular("a", data)], mode)
    content = bytearray(good.read_bytes())
    content[len(content) // 2 : len(content) // 2 + 16] = bytes(16)
    path = tmp_path / "corrupt.tar"
    path.write_bytes(bytes(content))
    with pytest.raises(ArchiveError, match=r"^tarball: not a valid tar archive"):
        check_archive(path, label="tarball", limits=LIMITS)


@pytest.mark.parametrize("cut", [5000, 512 + 10240, 512 + 10240 + 100], ids=str)
def test_check_archive_refuses_truncated_archives(tmp_path, cut):
    """Cut inside the data, right after the last member, and inside the end blocks."""
    full = write_tar(tmp_path / "full.tar", [regular("a", b"z" * 10240)]).read_bytes()
    path = tmp_path / "truncated.tar"
    path.write_bytes(full[:cut])
    with pytest.raises(ArchiveError, match="tarball: archive is truncated"):
        check_archive(path, label="tarball", limits=LIMITS)
    xz = tmp_path / "truncated.tar.xz"
    xz.write_bytes(lzma.compress(full[:cut]))
    with pytest.raises(ArchiveError, match="tarball: archive is truncated"):
        check_archive(xz, label="tarball", limits=LIMITS)


def test_check_archive_refuses_data_after_the_end(tmp_path):
    archive = write_tar(tmp_path / "a.tar", [regular("a")]).read_bytes()
    padded = tmp_path / "padded.tar.gz"
    padded.write_bytes(gzip.compress(archive + bytes(20480)))
    assert check_archive(padded, label="tarball", limits=LIMITS) == ["a"]
    stuffed = tmp_path / "stuffed.tar.gz"
    stuffed.write_bytes(gzip.compress(archive + bytes(2 * 1024 * 1024)))
    with pytest.raises(ArchiveError, match="tarball: archive has unexpected data after its end"):
        check_archive(stuffed, label="tarball", limits=LIMITS)


def test_check_archive_accepts_an_empty_archive(tmp_path):
    path = write_tar(tmp_path / "empty.tar", [])
    assert check_archive(path, label="tarball", limits=LIMITS) == []


def test_extract_archive_writes_safe_files_only(tmp_path):
    path = write_tar(
        tmp_path / "definition.tar.xz",
        [
            directory("."),
            regular("./artifact.yml", b"version: 1\n"),
            directory("./deb"),
            regular("./deb/rules", b"#!/usr/bin/make -f\n", mode=0o4777),
            symlink("./deb/compat", "rules"),
            hardlink("./deb/rules-copy", "deb/rules", mode=0o4777),
        ],
        "w:xz",
    )
    destination = tmp_path / "workspace"
    extract_archive(path, destination, label="tarball", limits=LIMITS)
    assert (destination / "artifact.yml").read_bytes() == b"version: 1\n"
    rules = destination / "deb" / "rules"
    # setuid and group/other write bits are dropped by the "data" filter.
    assert rules.stat().st_mode & 0o7777 == 0o755
    assert os.readlink(destination / "deb" / "compat") == "rules"
    assert (destination / "deb" / "rules-copy").stat().st_ino == rules.stat().st_ino
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "definition.tar.xz",
        "workspace",
        "workspace/artifact.yml",
        "workspace/deb",
        "workspace/deb/compat",
        "workspace/deb/rules",
        "workspace/deb/rules-copy",
    ]


def test_extract_archive_checks_before_writing_anything(tmp_path):
    path = write_tar(tmp_path / "bad.tar", [regular("fine"), regular("../escaped")])
    destination = tmp_path / "workspace"
    destination.mkdir()
    with pytest.raises(ArchiveError, match="leaves the archive folder"):
        extract_archive(path, destination, label="tarball", limits=LIMITS)
    assert list(destination.iterdir()) == []
    assert not (tmp_path / "escaped").exists()


def test_extract_archive_never_writes_through_existing_symlinks(tmp_path):
    """A destination that already holds a symlink to the outside must not be written
    through, even though the archive alone is harmless."""
    outside = tmp_path / "outside"
    outside.mkdir()
    destination = tmp_path / "workspace"
    destination.mkdir()
    (destination / "escape").symlink_to(outside)
    path = write_tar(tmp_path / "a.tar", [regular("escape/pwned", b"owned")])
    with pytest.raises(ArchiveError, match="tarball: member 'escape/pwned' refused"):
        extract_archive(path, destination, label="tarball", limits=LIMITS)
    assert list(outside.iterdir()) == []


def test_extract_archive_refuses_a_symlinked_destination(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    destination = tmp_path / "link"
    destination.symlink_to(real)
    path = write_tar(tmp_path / "a.tar", [regular("file")])
    with pytest.raises(ArchiveError, match="is a symlink"):
        extract_archive(path, destination, label="tarball", limits=LIMITS)
    assert list(real.iterdir()) == []


def test_read_member(tmp_path):
    path = write_tar(
        tmp_path / "definition.tar.xz",
        [
            directory("."),
            regular("./artifact.yml", b"version: 2.10\n"),
            regular("./big", b"x" * 64),
        ],
        "w:xz",
    )
    assert read_member(path, "artifact.yml", limits=LIMITS) == b"version: 2.10\n"
    assert read_member(path, "./artifact.yml", limits=LIMITS) == b"version: 2.10\n"
    assert read_member(path, "missing.yml", limits=LIMITS) is None
    with pytest.raises(ArchiveError, match=r"member '\./big' is larger than 10 bytes"):
        read_member(path, "big", max_size=10, limits=LIMITS)
    not_tar = tmp_path / "plain.txt"
    not_tar.write_text("plain text, not an archive" * 30)
    with pytest.raises(ArchiveError, match="not a valid tar archive"):
        read_member(not_tar, "artifact.yml", limits=LIMITS)


def test_single_top_folder():
    assert single_top_folder(["hello-2.10", "hello-2.10/README", "hello-2.10/src/a.c"]) == (
        "hello-2.10"
    )
    assert single_top_folder(["hello-2.10/README"]) == "hello-2.10"
    assert single_top_folder(["hello-2.10/README", "other/file"]) is None
    assert single_top_folder(["README"]) is None
    assert single_top_folder([]) is None


# --------------------------------------------------------------------------- versions


def test_version_parse_and_format():
    version = ArtifactVersion.parse("2.10-1.deb12+build2")
    assert version == ArtifactVersion(main="2.10", release="1", dist="deb12", build=2)
    assert version.full == str(version) == "2.10-1.deb12+build2"
    assert version.fullrelease == "1.deb12+build2"
    assert version.major == "2"
    assert ArtifactVersion.parse("0.1-1.el8") == ArtifactVersion("0.1", "1", "el8", 0)
    assert ArtifactVersion.parse("1.0-rc1-3") == ArtifactVersion("1.0-rc1", "3")
    assert ArtifactVersion("14", "0").full == "14-0"
    assert ArtifactVersion("14", "0").major == "14"
    assert ArtifactVersion("2.10", "1", "deb12", 0).full == "2.10-1.deb12"


@pytest.mark.parametrize("text", ["2.10", "-1", "2.10-", "2.10-1+build", "2.10-1+buildx"])
def test_version_parse_refuses_malformed(text):
    with pytest.raises(ValueError):
        ArtifactVersion.parse(text)


def test_version_next_build():
    version = ArtifactVersion("2.10", "1", "deb12")
    assert version.next_build([]) is version
    assert version.next_build(["2.10-1.deb11", "2.11-1.deb12", "garbage"]) == version
    assert version.next_build(["2.10-1.deb12"]).full == "2.10-1.deb12+build1"
    assert version.next_build(["2.10-1.deb12+build1"]).full == "2.10-1.deb12+build2"
    bumped = version.next_build(["2.10-1.deb12+build3", "2.10-1.deb12", "nonsense"])
    assert bumped.full == "2.10-1.deb12+build4"
    assert version.same_build_target(bumped)
    assert not version.same_build_target(ArtifactVersion("2.10", "2", "deb12"))


# --------------------------------------------------------------------------- templates


def test_template_filters():
    timestamp = int(datetime(2026, 11, 27, 13, 5, 9, tzinfo=UTC).timestamp())
    text = (
        "{{ v|gittag }} {{ v|rpm_version }}\n"
        "{{ t|timestamp_rpmdate }} {{ t|timestamp_iso }}\n"
        "{{ version.full }}\n"
    )
    rendered = render_template(
        text, name="spec", v="1.0~rc1-2", t=timestamp, version=ArtifactVersion("2.10", "1")
    )
    assert rendered == "1.0-rc1-2 1.0~rc1~2\nFri Nov 27 2026 2026-11-27 13:05:09\n2.10-1\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("line\n{{ ''.__class__.__mro__ }}", "rules.j2, line 2: access to attribute '__class__'"),
        ("{{ version.__init__.__globals__ }}", "rules.j2, line 1: access to attribute"),
        ("a\nb\n{{ missing }}", "rules.j2, line 3: 'missing' is undefined"),
        ("{% if %}", "rules.j2, line 1: "),
        ("{{ 'x' * 10**9 }}", "rules.j2, line 1: repeated sequence too large"),
    ],
)
def test_template_errors(text, message):
    with pytest.raises(TemplateError) as error:
        render_template(text, name="rules.j2", version="1")
    assert str(error.value).startswith(message)


def test_render_tree(tmp_path):
    (tmp_path / "deb" / "source").mkdir(parents=True)
    (tmp_path / "deb" / "control.j2").write_text("Source: {{ name }}\n")
    rules = tmp_path / "deb" / "rules.j2"
    rules.write_text("#!/usr/bin/make -f\n# {{ version }}\n")
    rules.chmod(0o755)
    (tmp_path / "deb" / "source" / "format.j2").write_text("3.0 (quilt)")
    (tmp_path / "deb" / "plain").write_text("{{ untouched }}")
    rendered = render_tree(tmp_path, name="hello", version="2.10-1")
    assert rendered == [
        tmp_path / "deb" / "control",
        tmp_path / "deb" / "rules",
        tmp_path / "deb" / "source" / "format",
    ]
    assert (tmp_path / "deb" / "control").read_text() == "Source: hello\n"
    assert (tmp_path / "deb" / "rules").read_text() == "#!/usr/bin/make -f\n# 2.10-1\n"
    assert (tmp_path / "deb" / "rules").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "deb" / "source" / "format").read_text() == "3.0 (quilt)"
    assert (tmp_path / "deb" / "plain").read_text() == "{{ untouched }}"
    assert list(tmp_path.rglob("*.j2")) == []


def test_render_tree_refuses_symlinks(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("{{ 1 }}")
    folder = tmp_path / "deb"
    folder.mkdir()
    (folder / "control.j2").symlink_to(secret)
    with pytest.raises(TemplateError, match=r"control\.j2: templates cannot be symlinks"):
        render_tree(folder)
    (folder / "control.j2").unlink()
    (folder / "rules.j2").write_text("overwritten")
    (folder / "rules").symlink_to(secret)
    with pytest.raises(TemplateError, match="rendered file rules is a symlink"):
        render_tree(folder)
    assert secret.read_text() == "{{ 1 }}"


def test_render_tree_reports_the_failing_file(tmp_path):
    (tmp_path / "rpm").mkdir()
    (tmp_path / "rpm" / "hello.spec.j2").write_text("Name: hello\nVersion: {{ nope }}\n")
    with pytest.raises(TemplateError, match=r"^rpm/hello.spec.j2, line 2: 'nope' is undefined"):
        render_tree(tmp_path)


# --------------------------------------------------------------------------- definitions

SHA256 = "31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b"
SHA1 = "f7bebf6f9c62a2295e889f66e05ce9bfaed9ace3"

HELLO = f"""\
source: https://ftp.gnu.org/gnu/hello/hello-{{{{ version }}}}.tar.gz
version: 2.10
checksums:
  2.10:
    sha256: {SHA256}
    sha1: {SHA1.upper()}
deb:
  release: 1
rpm:
  release: 2
  buildargs: --with foo
unknown:
  ignored: [1, 2]
"""


def test_parse_definition_hello():
    definition = parse_definition(HELLO, artifact="hello")
    assert definition.name == "hello"
    assert definition.formats == {
        "deb": {"release": "1"},
        "rpm": {"release": "2", "buildargs": "--with foo"},
    }
    assert definition.derivatives == {"main": {"hello": "2.10"}}
    assert definition.sources == (
        SourceSpec(
            id="hello",
            url="https://ftp.gnu.org/gnu/hello/hello-{{ version }}.tar.gz",
            filename=None,
        ),
    )
    assert definition.checksums == {"hello": {"2.10": {"sha256": SHA256, "sha1": SHA1}}}
    assert definition.path is None
    assert definition.supports("deb") and definition.supports("rpm")
    assert not definition.supports("osi")
    assert definition.release("rpm") == "2"
    assert definition.buildargs("rpm") == "--with foo"
    assert definition.buildargs("deb") == ""
    assert definition.accepts("main") and not definition.accepts("foox")
    assert definition.main_version("main") == "2.10"
    with pytest.raises(DefinitionError, match="does not support derivative foox"):
        definition.source_versions("foox")
    spec = definition.sources[0]
    assert definition.source_url(spec, "2.10") == "https://ftp.gnu.org/gnu/hello/hello-2.10.tar.gz"
    assert definition.source_filename(spec, "2.10") == "hello-2.10.tar.gz"


def test_parse_definition_stringifies_numbers_and_defaults():
    definition = parse_definition(b"version: 14\nosi:\ndeb: {}\n", artifact="image")
    assert definition.derivatives == {"main": {"image": "14"}}
    assert definition.formats == {"deb": {}, "osi": {}}
    assert definition.release("deb") == "1"
    assert definition.sources == ()
    assert definition.checksums == {}
    assert parse_definition("version: 1.0\n", artifact="a").main_version("main") == "1.0"
    assert parse_definition("version: 3.10\n", artifact="a").main_version("main") == "3.10"


def test_parse_definition_version_forms():
    versions = parse_definition(
        "versions:\n  fatbuildr: 2.0.1\n  bootstrap: 5.1\n", artifact="fatbuildr"
    )
    assert versions.derivatives == {"main": {"fatbuildr": "2.0.1", "bootstrap": "5.1"}}
    assert versions.main_version("main") == "2.0.1"

    derivatives = parse_definition(
        "derivatives:\n  main: 2.10\n  foox:\n    hello: 2.12\n    extra: 1\n", artifact="hello"
    )
    assert derivatives.derivatives == {
        "main": {"hello": "2.10"},
        "foox": {"hello": "2.12", "extra": "1"},
    }
    assert derivatives.accepts("foox")
    assert derivatives.source_versions("foox") == {"hello": "2.12", "extra": "1"}

    only_supplementary = parse_definition("versions:\n  extra: 1\n", artifact="hello")
    assert only_supplementary.main_version("main") is None

    uploaded = parse_definition("deb: {}\n", artifact="hello")
    assert uploaded.derivatives == {"main": {}}
    assert uploaded.main_version("main") is None


def test_parse_definition_sources_and_checksums_per_id():
    definition = parse_definition(
        f"""
sources:
  bootstrap: https://example.org/bootstrap/v{{{{ version }}}}.zip!bootstrap-{{{{ version }}}}.zip
  fatbuildr: https://example.org/fatbuildr-{{{{ version }}}}.tar.xz
versions:
  fatbuildr: 2.0
  bootstrap: 5.1.3
checksums:
  fatbuildr:
    2.0:
      sha1: {SHA1}
  bootstrap:
    5.1.3:
      sha256: {SHA256}
""",
        artifact="fatbuildr",
    )
    assert [spec.id for spec in definition.sources] == ["fatbuildr", "bootstrap"]
    bootstrap = definition.sources[1]
    assert bootstrap == SourceSpec(
        id="bootstrap",
        url="https://example.org/bootstrap/v{{ version }}.zip",
        filename="bootstrap-{{ version }}.zip",
    )
    assert definition.source_url(bootstrap, "5.1.3") == "https://example.org/bootstrap/v5.1.3.zip"
    assert definition.source_filename(bootstrap, "5.1.3") == "bootstrap-5.1.3.zip"
    assert definition.checksums == {
        "fatbuildr": {"2.0": {"sha1": SHA1}},
        "bootstrap": {"5.1.3": {"sha256": SHA256}},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("version: [1\n", "not valid YAML"),
        ("", "must be a mapping"),
        ("version:\n  a: 1\n", "version must be a single value"),
        ("version: ../1\n", "invalid version"),
        ("versions: 1\n", "versions must be a mapping"),
        ("versions:\n  ../evil: 1\n", "invalid source id"),
        ("derivatives:\n  main: [1]\n", "must be a single value"),
        ("source: http://a/b\nsources:\n  x: http://a/c\n", "either source or sources"),
        ("sources:\n  x/y: http://a/c\n", "invalid source id"),
        ("source: http://a/b!\n", "empty file name"),
        ("checksums:\n  1.0:\n    md5: abc\n", "unsupported checksum algorithm 'md5'"),
        ("checksums:\n  1.0:\n    sha256: xyz\n", "invalid sha256 checksum"),
        (f"checksums:\n  1.0:\n    sha256: {SHA1}\n", "invalid sha256 checksum"),
        ("checksums: [1]\n", "checksums must be a mapping"),
        (f"checksums:\n  hello:\n    1.0:\n      sha512: {SHA256}\n", "unsupported checksum"),
        ("deb: 1\n", "deb must be a mapping"),
        ("deb:\n  release: [1]\n", "deb release must be a single value"),
        ("deb:\n  release: 1.2\n", "invalid release"),
        ("!!python/object:os.system x\n", "not valid YAML"),
    ],
)
def test_parse_definition_refuses_bad_input(text, message):
    with pytest.raises(DefinitionError, match=message):
        parse_definition(text, artifact="hello")


def test_parse_definition_refuses_bad_artifact_name():
    with pytest.raises(DefinitionError, match="invalid artifact name"):
        parse_definition("version: 1\n", artifact="../hello")


@pytest.mark.parametrize(
    ("url", "version"),
    [("https://example.org/dir/", "1"), ("https://example.org/x!..", "1")],
)
def test_source_filename_refuses_unusable_names(url, version):
    definition = parse_definition(f"source: {url}\nversion: {version}\n", artifact="hello")
    with pytest.raises(DefinitionError, match="invalid file name"):
        definition.source_filename(definition.sources[0], version)


def test_source_url_template_errors_are_definition_errors():
    definition = parse_definition("source: http://a/{{ nope }}.tar\n", artifact="hello")
    with pytest.raises(DefinitionError, match="source hello, line 1: 'nope' is undefined"):
        definition.source_url(definition.sources[0], "1")


def test_load_definition(tmp_path):
    with pytest.raises(DefinitionError, match=r"has no artifact\.yml"):
        load_definition(tmp_path, artifact="hello")
    (tmp_path / "meta.yml").write_text("version: 1\n")
    assert load_definition(tmp_path, artifact="hello").main_version("main") == "1"
    (tmp_path / "artifact.yaml").write_text("version: 2\n")
    assert load_definition(tmp_path, artifact="hello").main_version("main") == "2"
    (tmp_path / "artifact.yml").write_text(HELLO)
    definition = load_definition(tmp_path, artifact="hello")
    assert definition.main_version("main") == "2.10"
    assert definition.path == tmp_path
    (tmp_path / "artifact.yml").unlink()
    (tmp_path / "artifact.yml").symlink_to(tmp_path / "meta.yml")
    with pytest.raises(DefinitionError, match="cannot be a symlink"):
        load_definition(tmp_path, artifact="hello")


def test_architecture_dependent(tmp_path):
    deb = tmp_path / "deb"
    deb.mkdir()
    (deb / "control").write_text("Source: hello\n\nPackage: hello-doc\nArchitecture: all\n")
    assert not architecture_dependent(tmp_path, "deb", artifact="hello")
    (deb / "control.j2").write_text("Package: hello\nArchitecture: any\n")
    assert architecture_dependent(tmp_path, "deb", artifact="hello")
    (deb / "control.j2").unlink()
    (deb / "control").write_text(
        "Package: a\nArchitecture: all\n\nPackage: b\narchitecture: amd64\n"
    )
    assert architecture_dependent(tmp_path, "deb", artifact="hello")

    rpm = tmp_path / "rpm"
    rpm.mkdir()
    assert architecture_dependent(tmp_path, "rpm", artifact="hello")
    (rpm / "hello.spec").write_text("Name: hello\nBuildRequires: gcc\n")
    assert architecture_dependent(tmp_path, "rpm", artifact="hello")
    (rpm / "hello.spec").write_text("Name: hello\nBuildArch:      noarch\n")
    assert not architecture_dependent(tmp_path, "rpm", artifact="hello")

    assert not architecture_dependent(tmp_path, "osi", artifact="hello")


def test_patches_order_and_symlinks(tmp_path):
    assert patches(tmp_path, "2.10") == []
    generic = tmp_path / "patches" / "generic"
    versioned = tmp_path / "patches" / "2.10"
    other = tmp_path / "patches" / "2.11"
    for folder in (generic, versioned, other):
        folder.mkdir(parents=True)
    for path in (
        generic / "b.patch",
        generic / "a.patch",
        versioned / "02-fix",
        versioned / "01-fix",
        other / "x",
    ):
        path.write_text("patch\n")
    assert [p.relative_to(tmp_path).as_posix() for p in patches(tmp_path, "2.10")] == [
        "patches/generic/a.patch",
        "patches/generic/b.patch",
        "patches/2.10/01-fix",
        "patches/2.10/02-fix",
    ]
    (versioned / "03-link").symlink_to(tmp_path / "outside")
    with pytest.raises(DefinitionError, match="is a symlink"):
        patches(tmp_path, "2.10")
    with pytest.raises(DefinitionError, match="invalid version"):
        patches(tmp_path, "../generic")


# --------------------------------------------------------------------------- sources


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def http_root(tmp_path) -> Iterator[tuple[Path, str, ThreadingHTTPServer]]:
    """A folder served over HTTP on a free local port: (folder, base URL, server)."""
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def cache_dir(settings, tmp_path) -> Path:
    settings.FATBUILDR_CACHE_DIR = tmp_path / "cache"
    settings.FATBUILDR_SOURCE_DOWNLOAD_TIMEOUT = 5
    # The test server listens on loopback, which production refuses (see below).
    settings.FATBUILDR_SOURCE_ALLOW_PRIVATE = True
    return settings.FATBUILDR_CACHE_DIR


def _definition(base: str, checksum: str | None = None):
    text = f"source: {base}/hello-{{{{ version }}}}.tar.gz\nversion: 2.10\n"
    if checksum:
        text += f"checksums:\n  2.10:\n    sha256: {checksum}\n"
    return parse_definition(text, artifact="hello")


def test_verify_checksums(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"hello")
    digest = hashlib.sha256(b"hello").hexdigest()
    verify_checksums(path, {"sha256": digest, "sha1": hashlib.sha1(b"hello").hexdigest()})
    with pytest.raises(SourceError) as error:
        verify_checksums(path, {"sha256": "0" * 64})
    assert str(error.value) == f"file: sha256 checksum mismatch, expected {'0' * 64}, got {digest}"


def test_cached_source_downloads_verifies_and_reuses(http_root, cache_dir):
    root, base, server = http_root
    content = os.urandom(3000)
    (root / "hello-2.10.tar.gz").write_bytes(content)
    definition = _definition(base, hashlib.sha256(content).hexdigest())
    lines: list[str] = []
    path = cached_source(
        definition, definition.sources[0], "2.10", instance="default", log=lines.append
    )
    assert path == cache_dir / "default" / "hello" / "hello-2.10.tar.gz"
    assert path.read_bytes() == content
    assert path.stat().st_mode & 0o777 == 0o644
    assert lines == [f"Downloading {base}/hello-2.10.tar.gz"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["hello-2.10.tar.gz"]

    # No network needed the second time.
    server.shutdown()
    lines.clear()
    again = cached_source(
        definition, definition.sources[0], "2.10", instance="default", log=lines.append
    )
    assert again == path
    assert lines == [f"Using cached {path}"]


def test_cached_source_without_checksums_reuses_the_cache(cache_dir):
    definition = _definition("http://127.0.0.1:9")  # discard port: nothing listens there
    cached = cache_dir / "default" / "hello" / "hello-2.10.tar.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached")
    path = cached_source(definition, definition.sources[0], "2.10", instance="default", log=print)
    assert path == cached
    assert cached.read_bytes() == b"cached"


def test_cached_source_checksum_mismatch_leaves_nothing(http_root, cache_dir):
    root, base, _ = http_root
    (root / "hello-2.10.tar.gz").write_bytes(b"tampered")
    definition = _definition(base, "0" * 64)
    with pytest.raises(SourceError, match=r"hello-2\.10\.tar\.gz: sha256 checksum mismatch"):
        cached_source(definition, definition.sources[0], "2.10", instance="default", log=print)
    assert list((cache_dir / "default" / "hello").iterdir()) == []


def test_cached_source_replaces_a_bad_cached_file(http_root, cache_dir):
    root, base, _ = http_root
    (root / "hello-2.10.tar.gz").write_bytes(b"good")
    definition = _definition(base, hashlib.sha256(b"good").hexdigest())
    cached = cache_dir / "default" / "hello" / "hello-2.10.tar.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a fi")
    lines: list[str] = []
    cached_source(definition, definition.sources[0], "2.10", instance="default", log=lines.append)
    assert cached.read_bytes() == b"good"
    assert lines[-1] == f"Downloading {base}/hello-2.10.tar.gz"


def test_cached_source_http_errors(http_root, cache_dir):
    _, base, _ = http_root
    definition = _definition(base)
    with pytest.raises(SourceError, match=r"Downloading .*/hello-2.10.tar.gz failed: HTTP 404"):
        cached_source(definition, definition.sources[0], "2.10", instance="default", log=print)
    assert list((cache_dir / "default" / "hello").iterdir()) == []
    refused = _definition("http://127.0.0.1:9")
    with pytest.raises(SourceError, match="failed"):
        cached_source(refused, refused.sources[0], "2.10", instance="default", log=print)


def test_cached_source_caps_the_download_size(http_root, cache_dir, settings):
    root, base, _ = http_root
    (root / "hello-2.10.tar.gz").write_bytes(b"x" * 5000)
    settings.FATBUILDR_BUILD_ARCHIVE_MAX_SIZE = 1000
    definition = _definition(base)
    with pytest.raises(SourceError, match="larger than 1000 bytes"):
        cached_source(definition, definition.sources[0], "2.10", instance="default", log=print)
    assert list((cache_dir / "default" / "hello").iterdir()) == []


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd?", "ftp://example.org/hello-{{ version }}.tar"]
)
def test_cached_source_refuses_other_schemes(cache_dir, url):
    definition = parse_definition(f"source: {url}\nversion: 1\n", artifact="hello")
    with pytest.raises(SourceError, match="only http and https URLs are supported"):
        cached_source(definition, definition.sources[0], "1", instance="default", log=print)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5432/x.tar.gz",
        "http://localhost/x.tar.gz",
        "http://[::1]/x.tar.gz",
        "http://169.254.169.254/latest/meta-data/x.tar.gz",
        "http://10.1.2.3/x.tar.gz",
        "http://192.168.0.1/x.tar.gz",
    ],
)
def test_sources_on_non_public_addresses_are_refused(cache_dir, settings, url):
    settings.FATBUILDR_SOURCE_ALLOW_PRIVATE = False
    definition = parse_definition(f"source: {url}\nversion: 1\n", artifact="hello")
    with pytest.raises(SourceError, match="non-public address"):
        cached_source(definition, definition.sources[0], "1", instance="default", log=print)
    assert not list((cache_dir / "default" / "hello").iterdir())


def test_a_redirect_is_checked_like_the_first_address(http_root, cache_dir, settings):
    """A public server could redirect to the farm's own services: every hop is checked."""
    root, base, _ = http_root
    (root / "hello-2.10.tar.gz").write_bytes(b"data")
    redirect = ThreadingHTTPServer(("127.0.0.1", 0), _redirect_handler(f"{base}/hello-2.10.tar.gz"))
    thread = threading.Thread(target=redirect.serve_forever, daemon=True)
    thread.start()
    try:
        definition = _definition(f"http://127.0.0.1:{redirect.server_address[1]}")
        lines: list[str] = []
        path = cached_source(
            definition, definition.sources[0], "2.10", instance="default", log=lines.append
        )
        assert path.read_bytes() == b"data"  # followed, when private addresses are allowed

        path.unlink()
        checked: list[str] = []
        settings.FATBUILDR_SOURCE_ALLOW_PRIVATE = False
        real_check = sources.check_destination

        def public_first_hop(url: str) -> None:
            # Stands for a public first server: only the redirect's target is checked for real.
            checked.append(url)
            if len(checked) > 1:
                real_check(url)

        with (
            mock.patch.object(sources, "check_destination", public_first_hop),
            pytest.raises(SourceError, match="non-public address"),
        ):
            cached_source(definition, definition.sources[0], "2.10", instance="default", log=print)
        assert checked[-1] == f"{base}/hello-2.10.tar.gz"
        assert not path.exists()
    finally:
        redirect.shutdown()
        redirect.server_close()
        thread.join(timeout=5)


def _redirect_handler(location: str) -> type[BaseHTTPRequestHandler]:
    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the http.server API
            self.send_response(302)
            self.send_header("Location", location)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Redirect

"""builds.archives: checks and extraction of source archives.

Every archive refusal is exercised with a real crafted tarball, so the tests check what
the code really does.
"""

import gzip
import io
import lzma
import os
import random
import tarfile
import time
from pathlib import Path

import pytest

from builds.archives import (
    ArchiveError,
    ArchiveLimits,
    check_archive,
    default_limits,
    extract_archive,
    read_member,
    single_top_folder,
)

LIMITS = ArchiveLimits(max_size=1024 * 1024, max_members=100)


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

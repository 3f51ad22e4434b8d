"""Inspection and extraction of untrusted tar archives (uploaded definitions and sources).

Every archive a client sends is read as a stream and checked member by member before
anything touches the disk: upstream Fatbuildr only skipped absolute names and ``..``, and
followed symlinks wherever they pointed. Here an archive is refused as a whole as soon as
one member could write, or later make the build read, outside the extraction folder, or
when its size or member count goes over the configured limits.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import posixpath
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BufferedIOBase
from pathlib import Path

from django.conf import settings

# How many symlinks a path may go through when resolving a link target inside the
# archive, as the kernel's ELOOP limit: deeper chains are refused rather than followed.
MAX_SYMLINK_HOPS = 40

# Errors the tarfile module and its decompressors raise on data that is not a sound tar
# archive: none of them may escape as anything but an ArchiveError.
_READ_ERRORS = (tarfile.TarError, lzma.LZMAError, zlib.error, EOFError, OSError)


class ArchiveError(ValueError):
    """An archive is unreadable or unsafe; the message is meant for the submitter."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on one archive: total uncompressed size of its members and their number."""

    max_size: int
    max_members: int


def default_limits() -> ArchiveLimits:
    """The limits configured in the settings, read at call time so tests can change them."""
    return ArchiveLimits(
        max_size=settings.FATBUILDR_BUILD_ARCHIVE_MAX_SIZE,
        max_members=settings.FATBUILDR_BUILD_ARCHIVE_MAX_MEMBERS,
    )


# Compressed formats tarfile reads, by magic number. They are decompressed here rather than
# by tarfile, whose stream reader never checks the gzip CRC: a corrupted archive would go
# unnoticed. The Python modules verify each format's checksums and report truncation.
_DECOMPRESSORS: tuple[tuple[bytes, Callable[[Path], BufferedIOBase]], ...] = (
    (b"\x1f\x8b", gzip.GzipFile),
    (b"BZh", bz2.BZ2File),
    (b"\xfd7zXZ\x00", lzma.LZMAFile),
    (b"\x5d\x00\x00\x80", lzma.LZMAFile),
)

# Data after the end-of-archive blocks (record padding) is read to let the decompressor
# verify its checksums; more than this is not padding and is refused.
MAX_TRAILING_DATA = 1024 * 1024


def _decompressed(path: Path) -> BufferedIOBase:
    """The archive file, through the decompressor its magic number calls for."""
    with path.open("rb") as handle:
        magic = handle.read(6)
    for prefix, opener in _DECOMPRESSORS:
        if magic.startswith(prefix):
            return opener(path)
    return path.open("rb")


@contextmanager
def _open_stream(path: Path, label: str) -> Iterator[tarfile.TarFile]:
    """Open the archive as a forward-only stream and turn read failures into ArchiveError.

    Stream mode never seeks, so a member's data is only decompressed when the iteration
    goes past it: a header announcing too much data is refused before it is inflated.
    """
    try:
        with _decompressed(path) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            yield tar
    except ArchiveError:
        raise
    except FileNotFoundError:
        raise ArchiveError(f"{label}: archive not found") from None
    except EOFError:
        # Raised by the decompressors when the compressed stream stops early.
        raise ArchiveError(f"{label}: archive is truncated") from None
    except _READ_ERRORS as error:
        if str(error) == "unexpected end of data":
            raise ArchiveError(f"{label}: archive is truncated") from None
        raise ArchiveError(f"{label}: not a valid tar archive ({error})") from None


def _iter_members(tar: tarfile.TarFile, label: str) -> Iterator[tarfile.TarInfo]:
    """Yield the members, then make sure the archive is complete and intact.

    tarfile silently ends the iteration when the data stops at a member boundary or inside
    a header; a sound archive ends with a zero block, which the stream has then consumed.
    The rest is then read so that the decompressor reaches, and checks, its trailer.
    """
    yield from tar
    stream = tar.fileobj
    if stream is None:
        return
    if stream.tell() - tar.offset < tarfile.BLOCKSIZE:
        raise ArchiveError(f"{label}: archive is truncated")
    trailing = 0
    while chunk := stream.read(tarfile.RECORDSIZE):
        trailing += len(chunk)
        if trailing > MAX_TRAILING_DATA:
            raise ArchiveError(f"{label}: archive has unexpected data after its end")


def _limited_members(
    tar: tarfile.TarFile, label: str, limits: ArchiveLimits
) -> Iterator[tarfile.TarInfo]:
    """The members, refusing the archive once their number or their announced sizes go over
    the limits: checked at each header, before the member's data is inflated."""
    total_size = 0
    for count, member in enumerate(_iter_members(tar, label), start=1):
        if count > limits.max_members:
            raise ArchiveError(f"{label}: archive has more than {limits.max_members} members")
        total_size += max(member.size, 0)
        if total_size > limits.max_size:
            raise ArchiveError(
                f"{label}: member {member.name!r} takes the archive over {limits.max_size} bytes"
            )
        yield member


def _normalize(name: str, label: str) -> str:
    """The member name without "./" prefixes, empty or "." components; "" for the root.

    Refuses names that could designate something outside the archive folder.
    """
    if "\x00" in name:
        raise ArchiveError(f"{label}: member {name!r} has a NUL character in its name")
    if name.startswith("/"):
        raise ArchiveError(f"{label}: member {name!r} has an absolute name")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{label}: member {name!r} leaves the archive folder")
    return "/".join(parts)


def _resolves_inside(
    folder: str, target: str, symlinks: dict[str, str], *, label: str, name: str
) -> None:
    """Refuse a symlink whose target, resolved from `folder` through the archive's own
    symlinks, ends up above the archive root.

    A purely lexical check is not enough: with ``d/up -> ..``, the target ``d/up/..`` looks
    harmless but designates the parent of the extraction folder.
    """
    resolved = [part for part in folder.split("/") if part]
    pending = list(reversed(target.split("/")))
    hops = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                raise ArchiveError(
                    f"{label}: member {name!r} is a symlink that leaves the archive folder"
                )
            resolved.pop()
            continue
        resolved.append(part)
        link = symlinks.get("/".join(resolved))
        if link is None:
            continue
        hops += 1
        if hops > MAX_SYMLINK_HOPS:
            raise ArchiveError(f"{label}: member {name!r} is part of a symlink loop")
        resolved.pop()
        # Targets were checked to be relative when the link members were read.
        pending.extend(reversed(link.split("/")))


def check_archive(path: Path, *, label: str, limits: ArchiveLimits | None = None) -> list[str]:
    """Read the whole archive without extracting it and return its normalized member names.

    Raises ArchiveError when the file is not a complete tar archive (any compression
    tarfile detects), or when a member is unsafe: absolute or ``..`` names, symlinks that
    are absolute or resolve outside the archive, hard links to anything but an earlier
    regular member, special files, members under a symlinked folder, or a symlink sharing
    its name with another member. The member count and the sum of the declared sizes are
    checked after every header, so a decompression bomb is stopped before it is inflated.
    """
    limits = limits or default_limits()
    names: list[str] = []
    regular: set[str] = set()
    symlinks: dict[str, str] = {}
    seen: dict[str, bool] = {}  # name -> is a symlink
    raw_names: dict[str, str] = {}
    with _open_stream(path, label) as tar:
        for member in _limited_members(tar, label, limits):
            name = _normalize(member.name, label)
            if not name:
                if not member.isdir():
                    raise ArchiveError(f"{label}: member {member.name!r} is not a directory")
                continue
            if member.issym():
                _check_link_target(member, label)
                if member.linkname.startswith("/"):
                    raise ArchiveError(
                        f"{label}: member {member.name!r} is a symlink to an absolute path"
                    )
                symlinks[name] = member.linkname
            elif member.islnk():
                _check_link_target(member, label)
                try:
                    target = _normalize(member.linkname, label)
                except ArchiveError:
                    raise ArchiveError(
                        f"{label}: member {member.name!r} is a hard link to "
                        f"{member.linkname!r}, outside the archive folder"
                    ) from None
                if target not in regular:
                    raise ArchiveError(
                        f"{label}: member {member.name!r} is a hard link to "
                        f"{member.linkname!r}, which is not an earlier regular file"
                    )
            elif member.isreg():
                regular.add(name)
            elif not member.isdir():
                raise ArchiveError(
                    f"{label}: member {member.name!r} is a special file ({_describe_type(member)})"
                )
            if name in seen and (seen[name] or member.issym()):
                # A symlink replacing a member, or a member written over a symlink, is
                # how archives smuggle writes through links: no legitimate tool needs it.
                raise ArchiveError(
                    f"{label}: member {member.name!r} appears twice and one of them is a symlink"
                )
            seen[name] = member.issym()
            if name not in raw_names:
                raw_names[name] = member.name
                names.append(name)

    # Checked once the whole archive is known, since a folder may become a symlink after
    # its members were listed, and a link target may go through links listed later.
    for name in names:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in symlinks:
                raise ArchiveError(
                    f"{label}: member {raw_names[name]!r} is under {raw_names[parent]!r}, "
                    "which is a symlink"
                )
    for name, target in symlinks.items():
        _resolves_inside(
            posixpath.dirname(name), target, symlinks, label=label, name=raw_names[name]
        )
    return names


def _check_link_target(member: tarfile.TarInfo, label: str) -> None:
    """Refuse empty or NUL-bearing link targets, which no extraction handles sanely."""
    if not member.linkname or "\x00" in member.linkname:
        raise ArchiveError(f"{label}: member {member.name!r} has an invalid link target")


def _describe_type(member: tarfile.TarInfo) -> str:
    """A readable name for a member type refused by check_archive."""
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "FIFO"
    return f"type {member.type!r}"


def read_member(
    path: Path,
    name: str,
    *,
    max_size: int = 1024 * 1024,
    label: str | None = None,
    limits: ArchiveLimits | None = None,
) -> bytes | None:
    """The content of the regular member `name` ("./name" works too), None when absent.

    When the name appears more than once the last one wins, as on extraction. The archive
    is read to its end under the same limits as check_archive.
    """
    label = label or path.name
    limits = limits or default_limits()
    wanted = _normalize(name, label)
    content: bytes | None = None
    with _open_stream(path, label) as tar:
        for member in _limited_members(tar, label, limits):
            if _normalize(member.name, label) != wanted:
                continue
            if not member.isreg():
                content = None
                continue
            if member.size > max_size:
                raise ArchiveError(
                    f"{label}: member {member.name!r} is larger than {max_size} bytes"
                )
            extracted = tar.extractfile(member)
            content = extracted.read() if extracted is not None else None
    return content


def extract_archive(
    path: Path, destination: Path, *, label: str, limits: ArchiveLimits | None = None
) -> list[str]:
    """Check the archive, then extract it into `destination` (created when missing); the
    member names, as check_archive gives them.

    tarfile's "data" filter drops owners, setuid bits and device files and checks, against
    the real file system, that nothing is written or linked outside the destination, which
    also covers symlinks that already exist in a non-empty destination.
    """
    if destination.is_symlink():
        raise ArchiveError(f"{label}: extraction folder {destination} is a symlink")
    names = check_archive(path, label=label, limits=limits)
    destination.mkdir(parents=True, exist_ok=True)

    def data_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        try:
            return tarfile.data_filter(member, dest)
        except tarfile.FilterError as error:
            raise ArchiveError(f"{label}: member {member.name!r} refused ({error})") from None

    with _open_stream(path, label) as tar:
        try:
            tar.extractall(destination, filter=data_filter)
        except OSError as error:
            # Conflicts between members (a file where a folder was) surface as OSError.
            raise ArchiveError(f"{label}: extraction failed ({error})") from None
    return names


def content_digest(path: Path, *, label: str, limits: ArchiveLimits | None = None) -> str:
    """A digest of what an archive holds, whatever its compression, member order, times and
    owners: two tarballs made of the same tree at different times have the same digest."""
    check_archive(path, label=label, limits=limits)
    entries = []
    with _open_stream(path, label) as tar:
        for member in _iter_members(tar, label):
            data = hashlib.sha256()
            if member.isreg():
                handle = tar.extractfile(member)
                while handle is not None and (chunk := handle.read(1024 * 1024)):
                    data.update(chunk)
            kind = member.type.decode(errors="replace")
            entries.append(
                f"{_normalize(member.name, label)}\0{kind}\0{member.mode & 0o7777:o}\0"
                f"{member.linkname}\0{data.hexdigest()}"
            )
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()


def single_top_folder(names: list[str]) -> str | None:
    """The one top folder every member is under, else None.

    A lone top-level file is not a folder: at least one member must be below the top name.
    """
    tops = {name.split("/", 1)[0] for name in names if name}
    if len(tops) != 1:
        return None
    (top,) = tops
    if not any(name.startswith(f"{top}/") for name in names):
        return None
    return top

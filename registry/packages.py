"""Read what the index needs out of package files: identity, changelog, content.

Readers run before the publish critical section, on files that may come from
anywhere (an import, a build): every failure is a `PackageError` naming the
file, never a crash with a traceback. deb files are read with python-debian,
rpm files with the `rpm` query tool.
"""

import os
import stat
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path

from debian import deb822
from debian.changelog import Changelog, ChangelogParseError
from debian.debfile import DebError, DebFile

from registry.constants import NOARCH_ARCHITECTURE, SOURCE_ARCHITECTURE
from registry.storage import fatbuildr_architecture

# A changelog or a file list bigger than this is not one we index: it would be hostile.
MAX_CHANGELOG_BYTES = 16 * 1024 * 1024
RPM_QUERY_TIMEOUT = 120


class PackageError(Exception):
    """A package file cannot be read or is not what it claims to be."""


@dataclass(frozen=True)
class ChangelogItem:
    version: str
    author: str
    date: int  # seconds since the epoch
    changes: tuple[str, ...]


@dataclass(frozen=True)
class ContentItem:
    path: str
    type: str  # "f", "d", "l" or "n/a"
    size: int


@dataclass
class PackageInfo:
    """One package file as the index sees it."""

    path: Path
    name: str
    architecture: str  # Fatbuildr names: src, noarch, x86_64...
    version: str
    source_name: str
    source_version: str
    size: int
    changelog: list[ChangelogItem] = field(default_factory=list)
    content: list[ContentItem] = field(default_factory=list)
    # deb control fields reprepro needs (empty when the package has none).
    section: str = ""
    priority: str = ""

    @property
    def is_source(self) -> bool:
        return self.architecture == SOURCE_ARCHITECTURE


def change_lines(lines: Iterable[str], *, bullet: str) -> tuple[str, ...]:
    """Changelog lines as upstream lists them: stripped, bullet removed, empty ones dropped."""
    stripped = (line.strip() for line in lines)
    return tuple(line.removeprefix(bullet) for line in stripped if line and line != bullet.strip())


# --- deb -------------------------------------------------------------------------------


def _changelog_items(text: str, origin: Path) -> list[ChangelogItem]:
    try:
        changelog = Changelog(text, strict=False)
    except ChangelogParseError as error:
        raise PackageError(f"{origin.name}: unreadable Debian changelog: {error}") from error
    items = []
    for block in changelog:
        if block.version is None:
            continue
        try:
            date = int(parsedate_to_datetime(block.date).timestamp()) if block.date else 0
        except (TypeError, ValueError):
            date = 0
        items.append(
            ChangelogItem(
                version=str(block.version),
                author=block.author or "",
                date=date,
                changes=change_lines(block.changes(), bullet="* "),
            )
        )
    return items


def _tar_type(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "f"
    if member.isdir():
        return "d"
    if member.issym():
        return "l"
    return "n/a"


def read_deb(path: Path) -> PackageInfo:
    """A binary package: control fields, /usr/share/doc changelog, data tarball members."""
    try:
        deb = DebFile(str(path))
        control = deb.debcontrol()
        changelog = deb.changelog()
        members = deb.data.tgz().getmembers()
    except (DebError, OSError, tarfile.TarError, KeyError, ValueError, EOFError) as error:
        raise PackageError(f"{path.name}: not a readable Debian package: {error}") from error
    name = control.get("Package", "")
    version = control.get("Version", "")
    architecture = control.get("Architecture", "")
    if not (name and version and architecture):
        raise PackageError(f"{path.name}: control file lacks Package, Version or Architecture")
    # Source: "name" or "name (version)" when the binary version differs (binNMU).
    source_field = control.get("Source", name).split()
    source_name = source_field[0]
    source_version = source_field[1].strip("()") if len(source_field) > 1 else version
    content = []
    for member in members:
        member_path = member.name.removeprefix(".")
        if member_path in ("", "/"):
            continue
        content.append(ContentItem(path=member_path, type=_tar_type(member), size=member.size))
    return PackageInfo(
        path=path,
        name=name,
        architecture=fatbuildr_architecture(architecture),
        version=version,
        source_name=source_name,
        source_version=source_version,
        size=path.stat().st_size,
        changelog=_changelog_items(str(changelog), path) if changelog else [],
        content=content,
        section=control.get("Section", ""),
        priority=control.get("Priority", ""),
    )


def debian_changelog_from_tarball(tarball: Path) -> str | None:
    try:
        with tarfile.open(tarball) as archive:
            for member in archive:
                parts = Path(member.name).parts
                # debian/changelog, or <dir>/debian/changelog in a native tarball.
                if parts[-2:] == ("debian", "changelog") and len(parts) <= 3:
                    if not member.isreg() or member.size > MAX_CHANGELOG_BYTES:
                        return None
                    extracted = archive.extractfile(member)
                    return extracted.read().decode("utf-8", "replace") if extracted else None
    except (OSError, tarfile.TarError, EOFError) as error:
        raise PackageError(f"{tarball.name}: unreadable tarball: {error}") from error
    return None


def read_dsc(path: Path) -> PackageInfo:
    """A source package: the .dsc, its files beside it, the changelog of its debian tarball."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            dsc = deb822.Dsc(handle)
    except OSError as error:
        raise PackageError(f"{path.name}: unreadable: {error}") from error
    name, version = dsc.get("Source", ""), dsc.get("Version", "")
    if not (name and version):
        raise PackageError(f"{path.name}: not a Debian source control file")
    changelog_text = None
    for entry in dsc.get("Files", []):
        # Every file must be beside the .dsc (reprepro reads them from there).
        member = _sibling(path, entry["name"])
        if changelog_text is None and ".tar" in member.name and ".orig" not in member.name:
            changelog_text = debian_changelog_from_tarball(member)
    return PackageInfo(
        path=path,
        name=name,
        architecture=SOURCE_ARCHITECTURE,
        version=version,
        source_name=name,
        source_version=version,
        # Upstream lists deb sources with size 0 (reprepro gives none).
        size=0,
        changelog=_changelog_items(changelog_text, path) if changelog_text else [],
    )


def _sibling(control_file: Path, name: str) -> Path:
    """A file named in a .dsc or .changes: a plain name in the same folder, nothing else."""
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise PackageError(f"{control_file.name}: refusing file name {name!r}")
    sibling = control_file.parent / name
    if not sibling.is_file():
        raise PackageError(f"{control_file.name}: {name} is missing beside it")
    return sibling


def changes_files(path: Path) -> list[Path]:
    """The .deb and .dsc files a .changes uploads (debug .ddeb packages are left out)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            changes = deb822.Changes(handle)
    except OSError as error:
        raise PackageError(f"{path.name}: unreadable: {error}") from error
    entries = changes.get("Files", [])
    if not entries:
        raise PackageError(f"{path.name}: not a Debian .changes file (no Files)")
    listed = []
    for entry in entries:
        name = entry["name"]
        if name.endswith((".deb", ".dsc")):
            listed.append(_sibling(path, name))
    if not listed:
        raise PackageError(f"{path.name}: lists no .deb or .dsc")
    return listed


# --- rpm -------------------------------------------------------------------------------

# One query per file gives identity, changelog and file list; fields are separated by
# control characters that rpm prints verbatim and package metadata cannot contain
# usefully, so hostile names cannot forge records.
_RS, _US, _GS = "\x1e", "\x1f", "\x1d"
RPM_QUERY_FORMAT = (
    "%{NAME}\x1f%{EPOCHNUM}\x1f%{VERSION}\x1f%{RELEASE}\x1f%{ARCH}\x1f%{SOURCEPACKAGE}"
    "\x1f%{SOURCERPM}\x1d"
    "[%{CHANGELOGTIME}\x1f%{CHANGELOGNAME}\x1f%{CHANGELOGTEXT}\x1e]\x1d"
    "[%{FILENAMES}\x1f%{FILEMODES}\x1f%{FILESIZES}\x1e]"
)


def rpm_version(version: str, release: str) -> str:
    """The registry version of an rpm: version-release, as upstream lists it."""
    return f"{version}-{release}"


def _rpm_source_name(sourcerpm: str, fallback: str) -> tuple[str, str]:
    # "hello-1.0-2.src.rpm" -> ("hello", "1.0-2"): name-version-release with dashes in name.
    stem = sourcerpm.removesuffix(".rpm").removesuffix(".src").removesuffix(".nosrc")
    parts = stem.rsplit("-", 2)
    if len(parts) != 3:
        return fallback, ""
    return parts[0], f"{parts[1]}-{parts[2]}"


def _rpm_changelog_item(time: str, name: str, text: str) -> ChangelogItem:
    # Header line "Name <mail> - 1.0-2": author, then the version after the last " - ".
    author, _, version = name.rpartition(" - ")
    if not author:
        author, version = name, ""
    return ChangelogItem(
        version=version.strip(),
        author=author.strip(),
        date=int(time),
        changes=change_lines(text.splitlines(), bullet="- "),
    )


def _file_type(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "f"
    if stat.S_ISDIR(mode):
        return "d"
    if stat.S_ISLNK(mode):
        return "l"
    return "n/a"


def _parse_rpm_record(path: Path, record: str) -> PackageInfo:
    try:
        header, changelog_part, files_part = record.split(_GS)
        name, _epoch, version, release, arch, is_source, sourcerpm = header.split(_US)
    except ValueError as error:
        raise PackageError(f"{path.name}: unexpected rpm query output") from error
    changelog = []
    for entry in filter(None, changelog_part.split(_RS)):
        time, author, text = entry.split(_US, 2)
        changelog.append(_rpm_changelog_item(time, author, text))
    content = []
    for entry in filter(None, files_part.split(_RS)):
        filename, mode, size = entry.split(_US, 2)
        content.append(ContentItem(path=filename, type=_file_type(int(mode)), size=int(size)))
    full_version = rpm_version(version, release)
    if is_source == "1":
        architecture, source_name, source_version = SOURCE_ARCHITECTURE, name, full_version
        content = []
    else:
        architecture = NOARCH_ARCHITECTURE if arch == "noarch" else arch
        source_name, source_version = _rpm_source_name(sourcerpm, name)
    return PackageInfo(
        path=path,
        name=name,
        architecture=architecture,
        version=full_version,
        source_name=source_name,
        source_version=source_version or full_version,
        size=path.stat().st_size,
        changelog=changelog,
        content=content,
    )


def read_rpms(paths: Iterable[Path]) -> list[PackageInfo]:
    """Binary and source RPMs, in one `rpm` query for all of them."""
    paths = list(paths)
    if not paths:
        return []
    for path in paths:
        if not path.is_file():
            raise PackageError(f"{path.name}: not a file")
    separator = f"{_GS}{_GS}{_RS}{_RS}"
    try:
        completed = subprocess.run(
            # --nosignature/--nodigest: reading metadata needs no key; rpmsign comes later.
            ["rpm", "-qp", "--nosignature", "--nodigest", "--qf", RPM_QUERY_FORMAT + separator]
            + [os.fspath(path) for path in paths],
            capture_output=True,
            timeout=RPM_QUERY_TIMEOUT,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PackageError(f"unable to query rpm files: {error}") from error
    if completed.returncode != 0:
        message = completed.stderr.decode(errors="replace").strip().splitlines()
        raise PackageError(f"not readable rpm packages: {' '.join(message[-3:])}")
    records = completed.stdout.decode("utf-8", "replace").split(separator)[:-1]
    if len(records) != len(paths):
        raise PackageError("unexpected rpm query output")
    return [_parse_rpm_record(path, record) for path, record in zip(paths, records, strict=True)]

"""Real tiny package builders for the test-suite and benchmarks.

Everything here runs the real Debian and RPM tools, so the artifacts are genuine:

* :func:`build_deb` runs ``dpkg-buildpackage -us -uc -sa -rfakeroot`` on a generated
  debhelper (compat 13) source package, giving a ``.changes``, a ``.dsc``, the source
  tarballs and one or two ``.deb`` files (about 2 s);
* :func:`build_rpm` runs ``rpmbuild -ba`` on a generated spec, giving a ``.src.rpm`` and
  one or two binary ``.rpm`` files (well under a second);
* :func:`build_many_debs` and :func:`build_many_rpms` mass-produce distinct, tiny binary
  packages for the benchmarks that fill a registry (``dpkg-deb --build`` per package,
  and ``rpmbuild -bb`` on specs with hundreds of subpackages each).

The builders describe what they built (versions, changelog, file lists) so that tests can
compare what a registry reports with what is really inside the packages. Every builder
works in the directory it is given, which must not be shared with a concurrent call.
The orig tarball of :func:`build_deb` is byte-for-byte reproducible for a given name and
upstream version, so several revisions can be uploaded to the same repository.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shlex
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cache
from itertools import pairwise
from pathlib import Path

__all__ = [
    "DEFAULT_AUTHOR",
    "BuiltDeb",
    "BuiltRpm",
    "ChangelogItem",
    "PackageBuildError",
    "build_deb",
    "build_many_debs",
    "build_many_rpms",
    "build_rpm",
    "deb_host_arch",
    "default_changelog",
    "rpm_host_arch",
]

DEFAULT_AUTHOR = "Fatbuildr Tests <tests@example.org>"
"""The author of the default changelog entries, also the maintainer of the packages."""

#: 2023-01-03 10:00:00 UTC, the date of the newest default changelog entry.
_DEFAULT_DATE = 1672740000
_DAY = 86400
#: Lines of tool output kept in a :class:`PackageBuildError`.
_TAIL_LINES = 40
#: Subpackages per spec in :func:`build_many_rpms`.
RPMS_PER_SPEC = 500

_DEB_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_DEB_UPSTREAM = re.compile(r"[0-9][A-Za-z0-9.+~]*")
_DEB_REVISION = re.compile(r"[A-Za-z0-9.+~]+")
_DEB_FULL_VERSION = re.compile(r"(?:[0-9]+:)?[0-9][A-Za-z0-9.+~:-]*")
_DEB_DISTRIBUTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]*")
_RPM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_RPM_VERSION = re.compile(r"[A-Za-z0-9._+~^]+")
_RPM_FULL_VERSION = re.compile(r"(?:[0-9]+:)?[A-Za-z0-9._+~^-]+")
_AUTHOR = re.compile(r"[^<>\n]*[^<>\s] <[^<>\s@]+@[^<>\s@]+>")
_RPM_CHANGELOG_NAME = re.compile(r"(?P<author>.*>)\s+-\s+(?P<version>\S+)")

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

#: debhelper steps that have nothing to do in these packages but cost time.
_SKIPPED_DH_STEPS = (
    "dh_auto_configure",
    "dh_auto_build",
    "dh_auto_test",
    "dh_auto_clean",
    "dh_update_autotools_config",
    "dh_autoreconf",
    "dh_strip_nondeterminism",
    "dh_dwz",
    "dh_strip",
    "dh_makeshlibs",
    "dh_shlibdeps",
    "dh_perl",
    "dh_usrlocal",
)


class PackageBuildError(RuntimeError):
    """A packaging command failed; the message holds the command and its output tail."""


@dataclass(frozen=True)
class ChangelogItem:
    """One changelog entry; lists of entries are newest first."""

    version: str
    """Full version, e.g. ``"1.0-2"``."""
    author: str
    """``"Name <email>"``."""
    date: int
    """Epoch seconds (UTC)."""
    changes: tuple[str, ...]
    """Change lines, without the leading ``"* "`` (deb) or ``"- "`` (rpm)."""


@dataclass(frozen=True)
class BuiltDeb:
    """The result of :func:`build_deb`."""

    changes: Path
    """The ``.changes`` file, listing the dsc, the tarballs (orig included) and the debs."""
    dsc: Path
    debs: dict[str, Path]
    """Binary package name -> ``.deb`` path."""
    source: str
    """Source package name."""
    version: str
    """Full version, e.g. ``"1.0-2"`` (just the version for a native package)."""
    changelog: list[ChangelogItem]
    """What debian/changelog says, newest first."""
    contents: dict[str, list[tuple[str, str, int]]]
    """Binary name -> ``[(path, type, size)]`` of the data tarball members, in the order of
    ``dpkg-deb --fsys-tarfile``: paths like ``"/usr/bin/x"`` (the root ``"/"`` skipped),
    type ``"f"``, ``"d"``, ``"l"`` (``"h"`` for a hard link), size as in the tarball."""


@dataclass(frozen=True)
class BuiltRpm:
    """The result of :func:`build_rpm`."""

    source: Path
    """The ``.src.rpm``."""
    binaries: dict[str, Path]
    """Binary package name -> ``.rpm`` (host arch for the main one, noarch for -data)."""
    name: str
    version: str
    """``"version-release"``, e.g. ``"1.0-2"``."""
    changelog: list[ChangelogItem]
    """Read back from the binary rpm, newest first. rpm keeps days only: ``date`` is noon UTC
    of the entry's day (the builds run with ``TZ=UTC``)."""
    contents: dict[str, list[tuple[str, str, int]]]
    """Binary name -> ``[(path, type, size)]`` as ``rpm -qp --qf '[%{FILENAMES}
    %{FILEMODES:perms} %{FILESIZES}\\n]'`` gives them; type ``"f"`` for ``"-"``, else the
    first character of the permissions (``"d"``, ``"l"``...)."""


# --------------------------------------------------------------------------- helpers


def _run(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command with ``check=True, capture_output=True``; raise
    :class:`PackageBuildError` with the tail of its output if it fails."""
    try:
        return subprocess.run(
            [os.fspath(arg) for arg in args],
            cwd=cwd,
            env=dict(env) if env is not None else _tool_env(),
            input=stdin,
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as error:
        output = (error.stdout or b"") + (error.stderr or b"")
        tail = "\n".join(output.decode(errors="replace").splitlines()[-_TAIL_LINES:])
        command = shlex.join(os.fspath(arg) for arg in args)
        raise PackageBuildError(
            f"{command} failed with exit status {error.returncode} (in {cwd}):\n{tail}"
        ) from error
    except FileNotFoundError as error:
        raise PackageBuildError(f"{args[0]} is not installed: {error}") from error


def _tool_env() -> dict[str, str]:
    """The environment of the packaging tools: the current one, minus anything that would
    change how Debian packages are built, in the C locale and the UTC time zone."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DEB_", "DH_", "DPKG_", "MAKEFLAGS", "MFLAGS"))
        and key not in {"SOURCE_DATE_EPOCH", "DEBEMAIL", "DEBFULLNAME", "EMAIL"}
    }
    # rpm >= 4.17 builds subpackages with OpenMP threads, whose default busy-waiting
    # doubles the CPU time of rpmbuild (and starves concurrent builds on 2 cores).
    env.update(LC_ALL="C.UTF-8", TZ="UTC", OMP_WAIT_POLICY="PASSIVE")
    return env


@cache
def deb_host_arch() -> str:
    """The Debian architecture of this host (``amd64``), as ``Architecture: any`` builds for."""
    return _run(["dpkg", "--print-architecture"]).stdout.decode().strip()


@cache
def rpm_host_arch() -> str:
    """The RPM architecture of this host (``x86_64``), from ``rpm --eval %_arch``."""
    return _run(["rpm", "--eval", "%_arch"]).stdout.decode().strip()


def _check(value: str, pattern: re.Pattern[str], what: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"invalid {what}: {value!r}")


def _older_version(version: str, revision: str | None) -> str:
    """A version older than ``version[-revision]``, for the second default changelog entry."""
    if revision is None:
        return f"{version}~rc1"
    if revision.isdigit() and int(revision) > 1:
        return f"{version}-{int(revision) - 1}"
    return f"{version}~rc1-1"


def default_changelog(
    name: str, full_version: str, older_version: str
) -> tuple[ChangelogItem, ChangelogItem]:
    """The two default changelog entries: *full_version* on 2023-01-03 10:00 UTC and
    *older_version* one day before, both by :data:`DEFAULT_AUTHOR`."""
    return (
        ChangelogItem(
            version=full_version,
            author=DEFAULT_AUTHOR,
            date=_DEFAULT_DATE,
            changes=(f"Build {name} {full_version} for the tests.", "Refresh the data file."),
        ),
        ChangelogItem(
            version=older_version,
            author=DEFAULT_AUTHOR,
            date=_DEFAULT_DATE - _DAY,
            changes=("Initial release.",),
        ),
    )


def _check_changelog(
    items: Sequence[ChangelogItem], full_version: str, version_pattern: re.Pattern[str]
) -> list[ChangelogItem]:
    """Validate changelog entries (newest first, the first one for *full_version*)."""
    entries = list(items)
    if not entries:
        raise ValueError("the changelog needs at least one entry")
    for item in entries:
        if not isinstance(item, ChangelogItem):
            raise TypeError(f"not a ChangelogItem: {item!r}")
    if entries[0].version != full_version:
        raise ValueError(
            f"the newest changelog entry is for {entries[0].version!r}, "
            f"not the version built ({full_version!r})"
        )
    for item in entries:
        _check(item.version, version_pattern, "changelog version")
        _check(item.author, _AUTHOR, "changelog author (expected 'Name <email>')")
        if not isinstance(item.date, int) or item.date < 0:
            raise ValueError(f"invalid changelog date: {item.date!r}")
        if not item.changes:
            raise ValueError(f"changelog entry {item.version} has no changes")
        for line in item.changes:
            if not line.strip() or "\n" in line or "\r" in line:
                raise ValueError(f"invalid changelog line in {item.version}: {line!r}")
    for newer, older in pairwise(entries):
        if older.date > newer.date:
            raise ValueError("changelog entries must be newest first (dates not increasing)")
    return entries


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _reproducible_tar_gz(target: Path, members: Sequence[tuple[str, bytes, int]]) -> None:
    """Write a tar.gz of ``(name, content, mode)`` regular files, identical for identical
    input: fixed mtime, root ownership, no gzip timestamp or name."""
    mtime = _DEFAULT_DATE
    directories = sorted({name.rsplit("/", 1)[0] for name, _, _ in members if "/" in name})
    with (
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(info)
        for name, content, mode in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), mode, mtime
            tar.addfile(info, io.BytesIO(content))


def _tar_type(member: tarfile.TarInfo) -> str:
    if member.isdir():
        return "d"
    if member.issym():
        return "l"
    if member.islnk():
        return "h"
    if member.isfile():
        return "f"
    return "?"


def deb_contents(deb: Path) -> list[tuple[str, str, int]]:
    """``[(path, type, size)]`` of a .deb's data tarball, as ``dpkg-deb --fsys-tarfile``
    lists it (leading ``"."`` removed, root skipped)."""
    tar_bytes = _run(["dpkg-deb", "--fsys-tarfile", deb]).stdout
    entries = []
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        for member in tar:
            path = "/" + member.name.removeprefix(".").strip("/")
            if path == "/":
                continue
            entries.append((path, _tar_type(member), member.size))
    return entries


# --------------------------------------------------------------------------- deb


def _deb_changelog_text(source: str, distribution: str, items: Sequence[ChangelogItem]) -> str:
    blocks = []
    for item in items:
        date = format_datetime(datetime.fromtimestamp(item.date, UTC))
        lines = "\n".join(f"  * {line}" for line in item.changes)
        blocks.append(
            f"{source} ({item.version}) {distribution}; urgency=medium\n\n"
            f"{lines}\n\n -- {item.author}  {date}\n"
        )
    return "\n".join(blocks)


def _changes_files(changes: Path) -> list[str]:
    """File names of the ``Files:`` field of a .changes file."""
    names, in_files = [], False
    for line in changes.read_text().splitlines():
        if line.startswith("Files:"):
            in_files = True
        elif in_files and line.startswith(" "):
            names.append(line.split()[-1])
        elif in_files:
            break
    return names


def build_deb(
    workdir: Path,
    name: str = "hello-fb",
    version: str = "1.0",
    revision: str = "1",
    *,
    distribution: str = "bookworm",
    changelog: Sequence[ChangelogItem] | None = None,
    with_data_package: bool = True,
    native: bool = False,
) -> BuiltDeb:
    """Build a real Debian source package and its binaries with ``dpkg-buildpackage``.

    The source package *name* (``3.0 (quilt)``, or ``3.0 (native)`` if *native*, in which
    case *revision* is ignored: native versions have none) is generated in
    ``workdir/<name>-<version>/`` with debhelper-compat 13, and built with ``dpkg-buildpackage
    -us -uc -sa -rfakeroot`` (unsigned, full upload). The results land in *workdir*:

    * binary *name* (Architecture: any) with ``/usr/bin/<name>``, a shell script printing
      ``hello from <name> <full version>``;
    * if *with_data_package*, binary ``<name>-data`` (Architecture: all) with
      ``/usr/share/<name>/data.txt`` and the symlink ``/usr/share/<name>/link -> data.txt``;
    * both carry ``/usr/share/doc/<binary>/changelog.Debian.gz``.

    *changelog* (newest first, the first entry for the full version) defaults to two entries
    (:func:`default_changelog`). Raises :class:`ValueError` on invalid names or versions and
    :class:`PackageBuildError` if a tool fails.
    """
    _check(name, _DEB_NAME, "Debian package name")
    _check(version, _DEB_UPSTREAM, "upstream version (no epoch nor '-')")
    _check(distribution, _DEB_DISTRIBUTION, "distribution")
    if not native:
        _check(revision, _DEB_REVISION, "Debian revision")
    full_version = version if native else f"{version}-{revision}"
    if changelog is None:
        changelog = default_changelog(
            name, full_version, _older_version(version, None if native else revision)
        )
    entries = _check_changelog(changelog, full_version, _DEB_FULL_VERSION)

    workdir = Path(workdir).resolve()
    tree = workdir / f"{name}-{version}"
    if tree.exists():
        raise ValueError(f"{tree} already exists: use a fresh workdir")
    debian = tree / "debian"
    data_package = f"{name}-data"

    # Upstream files: identical for every revision of name/version (same orig tarball).
    upstream = [
        ("README", f"{name} {version}, a tiny package built by the Fatbuildr tests.\n", 0o644),
        ("data.txt", f"data of {name} {version}\n", 0o644),
    ]
    for filename, text, mode in upstream:
        _write(tree / filename, text, mode)
    if not native:
        _reproducible_tar_gz(
            workdir / f"{name}_{version}.orig.tar.gz",
            [(f"{name}-{version}/{f}", text.encode(), mode) for f, text, mode in upstream],
        )

    maintainer = entries[0].author
    control = (
        f"Source: {name}\nSection: misc\nPriority: optional\nMaintainer: {maintainer}\n"
        "Build-Depends: debhelper-compat (= 13)\nStandards-Version: 4.6.2\n"
        "Rules-Requires-Root: no\n\n"
        f"Package: {name}\nArchitecture: any\nDepends: ${{misc:Depends}}\n"
        f"Description: hello program of the Fatbuildr tests\n"
        f" Prints a greeting with the version of {name}.\n"
    )
    install = [
        f"\tprintf '#!/bin/sh\\necho \"hello from {name} {full_version}\"\\n' > hello.sh",
        f"\tinstall -D -m 0755 hello.sh debian/{name}/usr/bin/{name}",
    ]
    if with_data_package:
        control += (
            f"\nPackage: {data_package}\nArchitecture: all\nDepends: ${{misc:Depends}}\n"
            f"Description: data of the hello program of the Fatbuildr tests\n"
            f" A data file and a symbolic link to it.\n"
        )
        install += [
            f"\tinstall -D -m 0644 data.txt debian/{data_package}/usr/share/{name}/data.txt",
            f"\tln -s data.txt debian/{data_package}/usr/share/{name}/link",
        ]
    rules = (
        "#!/usr/bin/make -f\n%:\n\tdh $@\n\noverride_dh_auto_install:\n"
        + "\n".join(install)
        + "\n\n# Nothing to do for these, and they cost time.\n"
        + " ".join(f"override_{step}" for step in _SKIPPED_DH_STEPS)
        + ":\n"
    )
    _write(debian / "control", control)
    _write(debian / "rules", rules, 0o755)
    _write(debian / "changelog", _deb_changelog_text(name, distribution, entries))
    _write(debian / "source" / "format", "3.0 (native)\n" if native else "3.0 (quilt)\n")
    _write(debian / "clean", "hello.sh\n")

    _run(["dpkg-buildpackage", "-us", "-uc", "-sa", "-rfakeroot"], cwd=tree)

    changes = workdir / f"{name}_{full_version}_{deb_host_arch()}.changes"
    dsc = workdir / f"{name}_{full_version}.dsc"
    debs = {
        filename.split("_", 1)[0]: workdir / filename
        for filename in _changes_files(changes)
        if filename.endswith(".deb")
    }
    for path in (dsc, *debs.values()):
        if not path.is_file():
            raise PackageBuildError(f"dpkg-buildpackage did not produce {path}")
    return BuiltDeb(
        changes=changes,
        dsc=dsc,
        debs=debs,
        source=name,
        version=full_version,
        changelog=entries,
        contents={binary: deb_contents(path) for binary, path in debs.items()},
    )


# --------------------------------------------------------------------------- rpm

#: Spec preamble: no debuginfo package, no build-id links, no brp scripts (nothing to strip
#: or compress, and they are the slow part).
_RPM_SPEC_HEADER = """\
%global debug_package %{nil}
%define _build_id_links none
%define __os_install_post %{nil}
"""


def _rpm_date(epoch: int) -> str:
    """``Tue Jan 03 2023``: the changelog date, in English whatever the locale."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return (
        f"{_WEEKDAYS[moment.weekday()]} {_MONTHS[moment.month - 1]} {moment.day:02d} {moment.year}"
    )


def _rpm_changelog_text(items: Sequence[ChangelogItem]) -> str:
    blocks = []
    for item in items:
        lines = "\n".join(f"- {line}" for line in item.changes)
        blocks.append(f"* {_rpm_date(item.date)} {item.author} - {item.version}\n{lines}\n")
    return "\n".join(blocks)


def _spec_escape(text: str) -> str:
    """Protect ``%`` from macro expansion in spec text."""
    return text.replace("%", "%%")


def _rpmbuild(spec: Path, topdir: Path, *options: str, magic: Path | None = None) -> list[Path]:
    """Run ``rpmbuild --nodeps`` with *topdir* (and a private tmp dir); the paths written.
    *magic* replaces the libmagic database rpm classifies the files with."""
    tmp = topdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = _tool_env()
    if magic is not None:
        env["MAGIC"] = os.fspath(magic)
    result = _run(
        [
            "rpmbuild",
            *options,
            "--nodeps",
            "--define",
            f"_topdir {topdir}",
            "--define",
            f"_tmppath {tmp}",
            spec,
        ],
        cwd=spec.parent,
        env=env,
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    return [
        Path(line.split(":", 1)[1].strip())
        for line in output.splitlines()
        if line.startswith("Wrote: ")
    ]


_FIELD, _RECORD = "\x1f", "\x1e"


def rpm_contents(rpm: Path) -> list[tuple[str, str, int]]:
    """``[(path, type, size)]`` of an rpm, from ``rpm -qp --qf`` (type ``"f"`` for
    regular files, else the first character of the permissions)."""
    return _parse_rpm_files(
        _run(
            ["rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEMODES:perms} %{FILESIZES}\n]", rpm]
        ).stdout.decode()
    )


def _parse_rpm_files(text: str) -> list[tuple[str, str, int]]:
    entries = []
    for line in text.splitlines():
        if not line:
            continue
        path, perms, size = line.rsplit(" ", 2)
        entries.append((path, "f" if perms[0] == "-" else perms[0], int(size)))
    return entries


def rpm_changelog(rpm: Path) -> list[ChangelogItem]:
    """The changelog of an rpm, newest first: author and version split from the
    ``Name <email> - version`` header, the leading ``"- "`` removed from the lines."""
    fmt = f"[%{{CHANGELOGTIME}}{_FIELD}%{{CHANGELOGNAME}}{_FIELD}%{{CHANGELOGTEXT}}{_RECORD}]"
    text = _run(["rpm", "-qp", "--qf", fmt, rpm]).stdout.decode()
    items = []
    for record in filter(None, text.split(_RECORD)):
        time, header, body = record.split(_FIELD)
        match = _RPM_CHANGELOG_NAME.fullmatch(header.strip())
        author, version = (match["author"], match["version"]) if match else (header.strip(), "")
        items.append(
            ChangelogItem(
                version=version,
                author=author,
                date=int(time),
                changes=tuple(
                    line[2:] if line.startswith("- ") else line
                    for line in body.splitlines()
                    if line
                ),
            )
        )
    return items


def build_rpm(
    workdir: Path,
    name: str = "hello-fb",
    version: str = "1.0",
    release: str = "1",
    *,
    changelog: Sequence[ChangelogItem] | None = None,
    with_data_package: bool = True,
) -> BuiltRpm:
    """Build a real source rpm and its binaries with ``rpmbuild -ba --nodeps``.

    The spec ``workdir/<name>.spec`` (``AutoReqProv: no``: the packages require nothing, not
    even /bin/sh, so dnf installs them in an empty installroot) is built with ``_topdir``
    ``workdir/rpmbuild``, giving:

    * binary *name* (host arch, see :func:`rpm_host_arch`) with ``/usr/bin/<name>``, a shell
      script printing ``hello from <name> <version>-<release>``;
    * if *with_data_package*, ``<name>-data`` (noarch) owning ``%dir /usr/share/<name>``,
      ``data.txt`` and the symlink ``link -> data.txt``;
    * the ``.src.rpm`` (just the spec).

    *changelog* (newest first, the first entry for ``version-release``, dates not increasing:
    rpm refuses anything else) defaults to two entries (:func:`default_changelog`); it is
    written as ``* Tue Jan 03 2023 Name <email> - 1.0-2`` headers with ``- line`` lines.
    Raises :class:`ValueError` on invalid input and :class:`PackageBuildError` if a tool fails.
    """
    _check(name, _RPM_NAME, "RPM package name")
    _check(version, _RPM_VERSION, "RPM version (no '-')")
    _check(release, _RPM_VERSION, "RPM release (no '-')")
    full_version = f"{version}-{release}"
    if changelog is None:
        changelog = default_changelog(name, full_version, _older_version(version, release))
    entries = _check_changelog(changelog, full_version, _RPM_FULL_VERSION)

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    topdir = workdir / "rpmbuild"
    if topdir.exists():
        raise ValueError(f"{topdir} already exists: use a fresh workdir")
    share = f"/usr/share/{name}"
    spec_text = (
        _RPM_SPEC_HEADER + f"\nName: {name}\nVersion: {version}\nRelease: {release}\n"
        "Summary: hello program of the Fatbuildr tests\nLicense: MIT\nAutoReqProv: no\n\n"
        f"%description\nPrints a greeting with the version of {name}.\n\n"
    )
    install = [
        "mkdir -p %{buildroot}/usr/bin",
        f"printf '#!/bin/sh\\necho \"hello from {name} {full_version}\"\\n'"
        f" > %{{buildroot}}/usr/bin/{name}",
        f"chmod 0755 %{{buildroot}}/usr/bin/{name}",
    ]
    files = f"%files\n/usr/bin/{name}\n"
    if with_data_package:
        spec_text += (
            "%package data\nSummary: data of the hello program of the Fatbuildr tests\n"
            "BuildArch: noarch\nAutoReqProv: no\n\n"
            "%description data\nA data file and a symbolic link to it.\n\n"
        )
        install += [
            f"mkdir -p %{{buildroot}}{share}",
            f"echo 'data of {name} {version}' > %{{buildroot}}{share}/data.txt",
            f"ln -s data.txt %{{buildroot}}{share}/link",
        ]
        files += f"\n%files data\n%dir {share}\n{share}/data.txt\n{share}/link\n"
    spec_text += (
        "%install\n"
        + "\n".join(install)
        + "\n\n"
        + files
        + "\n%changelog\n"
        + _spec_escape(_rpm_changelog_text(entries))
    )
    spec = workdir / f"{name}.spec"
    _write(spec, spec_text)

    written = _rpmbuild(spec, topdir, "-ba")
    sources = [path for path in written if path.name.endswith(".src.rpm")]
    rpms = [path for path in written if not path.name.endswith(".src.rpm")]
    if len(sources) != 1 or len(rpms) != 1 + with_data_package:
        raise PackageBuildError(f"rpmbuild wrote unexpected files: {written}")

    # One query for the names and file lists of all the binaries.
    fmt = f"%{{NAME}}{_FIELD}[%{{FILENAMES}} %{{FILEMODES:perms}} %{{FILESIZES}}\n]{_RECORD}"
    text = _run(["rpm", "-qp", "--qf", fmt, *rpms]).stdout.decode()
    binaries: dict[str, Path] = {}
    contents: dict[str, list[tuple[str, str, int]]] = {}
    for path, record in zip(rpms, filter(None, text.split(_RECORD)), strict=True):
        binary, files_text = record.split(_FIELD)
        binaries[binary] = path
        contents[binary] = _parse_rpm_files(files_text)
    return BuiltRpm(
        source=sources[0],
        binaries=binaries,
        name=name,
        version=full_version,
        changelog=rpm_changelog(binaries[name]),
        contents=contents,
    )


# --------------------------------------------------------------------------- bulk


def _bulk_names(prefix: str, count: int) -> list[str]:
    if count < 0:
        raise ValueError(f"invalid count: {count}")
    width = max(5, len(str(count)))
    return [f"{prefix}-{index:0{width}d}" for index in range(1, count + 1)]


def _workers() -> int:
    return max(1, os.cpu_count() or 1)


def build_many_debs(workdir: Path, count: int, prefix: str = "bulk") -> list[Path]:
    """Build *count* distinct tiny binary debs ``<prefix>-00001_1.0_all.deb``... in *workdir*.

    Each is ``dpkg-deb --root-owner-group -Znone --build`` of a tree holding a minimal
    DEBIAN/control (Package, Version 1.0, Architecture all, Maintainer, Description) and one
    file ``/usr/share/<prefix>/<package>.txt``; the builds run in parallel over the CPUs.
    The trees are removed once built. Returns the .deb paths in name order.
    """
    _check(prefix, _DEB_NAME, "Debian package name prefix")
    workdir = Path(workdir).resolve()
    names = _bulk_names(prefix, count)
    trees = workdir / "trees"
    trees.mkdir(parents=True, exist_ok=True)

    def build(batch: list[str]) -> list[Path]:
        env = _tool_env()
        paths = []
        for name in batch:
            tree = trees / name
            _write(
                tree / "DEBIAN" / "control",
                # reprepro wants a section and a priority in every package it includes.
                f"Package: {name}\nVersion: 1.0\nArchitecture: all\n"
                f"Section: misc\nPriority: optional\nMaintainer: {DEFAULT_AUTHOR}\n"
                f"Description: bulk package {name} of the Fatbuildr benchmarks\n",
            )
            _write(tree / "usr" / "share" / prefix / f"{name}.txt", f"{name}\n")
            deb = workdir / f"{name}_1.0_all.deb"
            _run(
                ["dpkg-deb", "--root-owner-group", "-Znone", "--build", tree, deb],
                env=env,
            )
            shutil.rmtree(tree)  # 10,000 trees of 4 KiB blocks would take 500 MB
            paths.append(deb)
        return paths

    return _in_parallel(build, names, batch_size=50)


def _in_parallel(
    function: Callable[[list[str]], list[Path]], names: list[str], batch_size: int
) -> list[Path]:
    """Run *function* on batches of *names* in parallel; check that all the paths exist."""
    batches = [names[start : start + batch_size] for start in range(0, len(names), batch_size)]
    with ThreadPoolExecutor(max_workers=_workers()) as executor:
        results = [path for paths in executor.map(function, batches) for path in paths]
    missing = [path for path in results if not Path(path).is_file()]
    if missing:
        raise PackageBuildError(f"{len(missing)} packages were not built, e.g. {missing[0]}")
    return results


def build_many_rpms(workdir: Path, count: int, prefix: str = "bulk") -> list[Path]:
    """Build *count* distinct tiny noarch rpms ``<prefix>-00001-1.0-1.noarch.rpm``...

    The packages are subpackages (``%package -n <prefix>-NNNNN``, one file
    ``/usr/share/<prefix>/<package>.txt`` each, ``AutoReqProv: no``) of specs holding up to
    :data:`RPMS_PER_SPEC` of them, built with ``rpmbuild -bb`` in parallel over the CPUs; the
    rpms land in ``workdir/rpms/noarch/``. Returns their paths in name order.
    """
    _check(prefix, _RPM_NAME, "RPM package name prefix")
    workdir = Path(workdir).resolve()
    names = _bulk_names(prefix, count)
    rpmdir = workdir / "rpms"

    def build(batch: list[str]) -> list[Path]:
        base = f"{prefix}-specs-{batch[0].rsplit('-', 1)[1]}"
        lines = [
            _RPM_SPEC_HEADER,
            f"%define _rpmdir {rpmdir}",
            f"Name: {base}\nVersion: 1.0\nRelease: 1\nSummary: bulk packages\nLicense: MIT",
            "BuildArch: noarch\nAutoReqProv: no\n\n%description\nBulk packages.\n",
        ]
        for name in batch:
            lines.append(
                f"%package -n {name}\nSummary: bulk package {name} of the Fatbuildr benchmarks\n"
                f"AutoReqProv: no\n\n%description -n {name}\nBulk package {name}.\n"
            )
        lines.append(
            f"%install\nmkdir -p %{{buildroot}}/usr/share/{prefix}\n"
            f"cd %{{buildroot}}/usr/share/{prefix}"
        )
        lines.extend(f"echo {name} > {name}.txt" for name in batch)
        for name in batch:
            lines.append(f"\n%files -n {name}\n/usr/share/{prefix}/{name}.txt")
        spec = workdir / f"{base}.spec"
        _write(spec, "\n".join(lines) + "\n")
        _rpmbuild(spec, workdir / f"rpmbuild-{base}", "-bb", magic=magic)
        return [rpmdir / "noarch" / f"{name}-1.0-1.noarch.rpm" for name in batch]

    workdir.mkdir(parents=True, exist_ok=True)
    # rpm loads the whole libmagic database (thousands of regexes) once per subpackage to
    # classify its files: 80% of the time. A one-rule database makes that instant (the
    # files are then classified by libmagic's built-in tests only, e.g. "ASCII text").
    (rpmdir / "noarch").mkdir(parents=True, exist_ok=True)  # rpmbuild's mkdir is racy
    magic = workdir / "tiny.magic"
    magic.write_text("0\tstring\tFATBUILDR-NOTHING\tnothing\n")
    per_worker = -(-len(names) // _workers())
    return _in_parallel(build, names, batch_size=max(1, min(RPMS_PER_SPEC, per_worker)))

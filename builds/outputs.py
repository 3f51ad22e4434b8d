"""Step 3 of a build, in the worker: the results, out of a folder the build's code could
write, into `output/` (what gets signed and published)."""

import os
import shutil
from pathlib import Path

from debian import deb822

from builds.preparation import remove_path
from registry.publishing import PublishError


def collect_outputs(build_dir: Path, output: Path, results: list[Path]) -> list[Path]:
    """Copy the results into `output/`, refusing links and anything outside the build folder.

    The build folder was writable by the build's own code: a result, or a file
    a .changes names, may be a link to a file of the worker's host. Only
    regular files reached without any link are copied, with O_NOFOLLOW.
    """
    remove_path(output)
    output.mkdir()
    wanted: list[Path] = []
    for result in results:
        wanted.append(result)
        if result.suffix == ".changes":
            _check_regular(build_dir, result)
            wanted += _listed_files(result)
    copies: dict[str, Path] = {}
    for path in wanted:
        _check_regular(build_dir, path)
        copy = output / path.name
        if path.name not in copies:
            _copy_no_follow(path, copy)
            copies[path.name] = copy
    if not results:
        raise PublishError("the build produced no package")
    return [copies[r.name] for r in results]


def _listed_files(changes: Path) -> list[Path]:
    """Every file a .changes uploads (the .dsc's tarballs included), as plain names."""
    with changes.open(encoding="utf-8", errors="replace") as handle:
        entries = deb822.Changes(handle).get("Files", [])
    files = []
    for entry in entries:
        name = entry["name"]
        if not name or "/" in name or name in (".", ".."):
            raise PublishError(f"{changes.name}: refusing file name {name!r}")
        files.append(changes.parent / name)
    if not files:
        raise PublishError(f"{changes.name}: lists no file")
    return files


def _check_regular(build_dir: Path, path: Path) -> None:
    relative = path.relative_to(build_dir)
    current = build_dir
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            raise PublishError(f"build result {relative} goes through a link: refused")
    if not path.is_file():
        raise PublishError(f"build result {relative} is not a regular file")


def _copy_no_follow(source: Path, destination: Path) -> None:
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as reader, open(destination, "xb") as writer:
        shutil.copyfileobj(reader, writer)

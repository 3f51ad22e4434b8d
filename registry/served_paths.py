"""Which registry paths may be served, opened safely, and directory listings (compat §1.7).

Requests name files under `<data>/registry/<instance>/` as percent-decoded URL
paths (`deb/dists/bookworm/InRelease`). Upstream checked existence on the raw
joined path and listed folders outside the registry; here every path goes
through the same policy, twice:

* lexically, on the requested segments: no `..` (nor any segment starting with
  `.`: createrepo's `.repodata` temporary folder, editor files), no NUL, no
  backslash, no absolute path, nothing under reprepro's private `deb/conf` and
  `deb/db`;
* on the real path once every symlink is resolved: it must still be inside the
  instance registry root, and pass the same checks (a symlink inside the
  registry may point to another file of the registry, never to `deb/conf`,
  another instance or anywhere else).

The file is then opened one component at a time from a descriptor of the root,
never following a symlink, so a symlink swapped in after the check is refused
rather than followed; callers read and stat that descriptor, not the path.

Nothing here knows about HTTP: failures are `RegistryPathError`, a not-found
domain error whose message never says why, so that a prober learns nothing
about what exists.
"""

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fatbuildr_site.errors import NotFoundError
from registry.repositories import REPOSITORIES
from registry.storage import instance_registry_root

# The top folders of an instance registry that are served (compat §8).
SERVED_FORMATS = ("deb", "rpm", "osi")
# The one answer to every path that is not served, whatever the reason.
FILE_NOT_FOUND = "File not found in registry"

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class RegistryPathError(NotFoundError):
    """The path names nothing that may be served: missing, refused, or outside the registry.

    The message is the same for every cause; the path is kept for logs and tests.
    """

    def __init__(self, path: str) -> None:
        super().__init__(FILE_NOT_FOUND)
        self.path = path


def is_servable(parts: Iterable[str]) -> bool:
    """Whether path segments relative to an instance registry root may be served at all."""
    parts = tuple(parts)
    if not parts or parts[0] not in SERVED_FORMATS:
        return False
    for part in parts:
        # "." and ".." start with a dot too; a backslash could be a separator to
        # whatever reads the path next.
        if not part or part.startswith(".") or "\x00" in part or "\\" in part or "/" in part:
            return False
    kind = REPOSITORIES.get(parts[0])
    private = kind.private_folders if kind else ()
    return not (len(parts) > 1 and parts[1] in private)


def split_registry_path(path: str) -> tuple[str, ...]:
    """The segments of a requested (already percent-decoded) path, if it passes the policy.

    Empty segments (`deb//dists`) are dropped, as a normalizing path join would;
    a trailing slash is allowed and means the path must be a directory.
    """
    if path.startswith("/") or "\x00" in path or "\\" in path:
        raise RegistryPathError(path)
    parts = tuple(part for part in path.split("/") if part)
    if not is_servable(parts):
        raise RegistryPathError(path)
    return parts


def confined_real_parts(root: Path, parts: tuple[str, ...]) -> tuple[str, ...]:
    """The segments of the real path of *parts* below *root* (already resolved), symlinks
    followed; refused when it leaves *root* or fails the policy."""
    try:
        real = root.joinpath(*parts).resolve(strict=True)
        real_parts = real.relative_to(root).parts
    except (OSError, RuntimeError, ValueError) as error:  # missing, loop, or outside root
        raise RegistryPathError("/".join(parts)) from error
    if not is_servable(real_parts):
        raise RegistryPathError("/".join(parts))
    return real_parts


def open_beneath(root: Path, parts: tuple[str, ...]) -> int:
    """Open *root*/*parts* walking down from a descriptor of *root* without following any
    symlink, so the result is the file that was checked, not one swapped in meanwhile.

    Raises OSError (ELOOP, ENOTDIR, ENOENT...) when a component is a symlink or missing.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, part in enumerate(parts):
            flags = _OPEN_FLAGS if index == len(parts) - 1 else _OPEN_FLAGS | os.O_DIRECTORY
            child = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass
class RegistryNode:
    """An opened registry file or directory. It owns `fd` until `close()` or `detach()`."""

    fd: int
    stat: os.stat_result
    # Requested segments, normalized: what URLs of a listing are built from.
    parts: tuple[str, ...]
    # Segments of the real path below `root`, symlinks resolved.
    real_parts: tuple[str, ...]
    # The instance registry root, resolved.
    root: Path

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.stat.st_mode)

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def real_path(self) -> str:
        """The real path relative to the instance registry root, with `/` separators."""
        return "/".join(self.real_parts)

    def detach(self) -> int:
        """Hand the descriptor over to the caller, who closes it."""
        fd, self.fd = self.fd, -1
        return fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.detach())

    def __enter__(self) -> "RegistryNode":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_registry_path(instance_id: str, path: str) -> RegistryNode:
    """Open the registry file or directory an URL path names, after every check.

    Only regular files and directories are returned; a path with a trailing
    slash must be a directory.
    """
    parts = split_registry_path(path)
    try:
        root = instance_registry_root(instance_id).resolve(strict=True)
    except (OSError, RuntimeError) as error:
        raise RegistryPathError(path) from error
    real_parts = confined_real_parts(root, parts)
    try:
        fd = open_beneath(root, real_parts)
    except OSError as error:
        raise RegistryPathError(path) from error
    node = RegistryNode(fd=fd, stat=os.fstat(fd), parts=parts, real_parts=real_parts, root=root)
    mode = node.stat.st_mode
    if not (stat.S_ISDIR(mode) or (stat.S_ISREG(mode) and not path.endswith("/"))):
        node.close()
        raise RegistryPathError(path)
    return node


@dataclass(frozen=True)
class DirectoryEntry:
    """One line of a directory listing."""

    name: str
    is_dir: bool
    size: int
    mtime: float


def list_directory(node: RegistryNode) -> list[DirectoryEntry]:
    """The entries of an opened directory a request could be served, sorted by name.

    Hidden entries, reprepro's private folders, symlinks leading out of the
    registry, special files and names that are not UTF-8 are left out.
    """
    entries = []
    with os.scandir(node.fd) as scan:
        for entry in scan:
            name = entry.name
            try:
                name.encode()
            except UnicodeEncodeError:  # Undecodable bytes: no URL could name it.
                continue
            if not (is_servable((*node.parts, name)) and is_servable((*node.real_parts, name))):
                continue
            try:
                if entry.is_symlink():
                    target = confined_real_parts(node.root, (*node.real_parts, name))
                    info = os.stat(node.root.joinpath(*target), follow_symlinks=False)
                else:
                    info = entry.stat(follow_symlinks=False)
            except (OSError, RegistryPathError):  # Vanished meanwhile, or refused.
                continue
            if stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
                entries.append(
                    DirectoryEntry(
                        name=name,
                        is_dir=stat.S_ISDIR(info.st_mode),
                        size=info.st_size,
                        mtime=info.st_mtime,
                    )
                )
    return sorted(entries, key=lambda entry: entry.name)

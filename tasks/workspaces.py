"""The folders of task workspaces, shared by the web server and the workers.

Permission model (README "Permissions", docs/design.md): the web server may run
as an unprivileged user whose group owns the data root, the workers run as
root. The web server writes in one place only: it creates the workspace of a
build task (its uploads), or of a pending task it cancels (its journal), in
`workspaces/<instance>/`, a folder a worker may have created first. So
`workspaces/` and `workspaces/<instance>/` are made group-writable (0775)
with the group of the data root by whichever process creates them, and
repaired by a worker that finds them otherwise. Nothing else changes: no
setgid bit, which would spread into the build trees (dpkg-deb refuses a
setgid control folder), and no group-writable umask, which would open the
registries and keyrings to the web server.
"""

import contextlib
import os
import stat
from pathlib import Path

from django.conf import settings

from tasks.models import instance_workspaces_root

SHARED_FOLDER_MODE = 0o775


def instance_workspaces(instance_id: str) -> Path:
    """The folder of *instance_id*'s task workspaces, made if missing; the web server and
    the workers can both create workspaces in it, whoever made it."""
    folder = instance_workspaces_root(instance_id)
    data_root = Path(settings.FATBUILDR_DATA_DIR)
    data_root.mkdir(parents=True, exist_ok=True)
    group = data_root.stat().st_gid
    _shared_folder(folder.parent, group)
    _shared_folder(folder, group)
    return folder


def _shared_folder(path: Path, group: int) -> None:
    """Make *path* a folder of mode 0775 and group *group*, as far as this process may:
    root sets both, the folder's owner its mode. A link there is refused (OSError)."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=SHARED_FOLDER_MODE)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        status = os.fstat(fd)
        is_root = os.geteuid() == 0
        if is_root and status.st_gid != group:
            os.fchown(fd, -1, group)
            status = os.fstat(fd)  # A chown may clear mode bits.
        # Set explicitly: the umask may have taken bits from mkdir's mode.
        if stat.S_IMODE(status.st_mode) != SHARED_FOLDER_MODE and (
            is_root or status.st_uid == os.geteuid()
        ):
            os.fchmod(fd, SHARED_FOLDER_MODE)
    finally:
        os.close(fd)

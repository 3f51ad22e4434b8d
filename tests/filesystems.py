"""File system measures shared by the tests and the benchmarks (no Django here: the benches
import it before they set Django up)."""

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


def used_bytes(folder: Path) -> int:
    """Bytes in use on the file system of *folder*: Django spools request bodies into unnamed
    files (O_TMPFILE), which no listing of the folder shows."""
    stats = os.statvfs(folder)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


@contextlib.contextmanager
def private_tmpfs(folder: Path, size: str = "3g") -> Iterator[None]:
    """A tmpfs of its own on *folder* (as root), so that its use is measured alone."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)

"""The interface every registry format implements, and the words it is written in.

The publish service (registry/publishing.py) is format-neutral: it checks the
target, reads nothing itself, holds the critical section and writes the
index. What a format does with its files (reprepro for deb; rpmsign,
createrepo_c and gpg for rpm) is a `Repository` subclass in a module of its
own, registered in `registry.repositories.REPOSITORIES`.
"""

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from instances.models import Instance
from registry.models import RegistryDerivative
from registry.packages import PackageInfo
from registry.storage import format_root

if TYPE_CHECKING:
    from registry.publishing import Section

Log = Callable[..., None]
Run = Callable[..., None]


class PublishError(Exception):
    """A publication, deletion or reindex was refused or failed; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where packages go: a derivative of a distribution of a format registry."""

    instance: Instance
    format: str
    distribution: str
    derivative: str

    def __str__(self) -> str:
        return f"{self.format} registry {self.distribution}/{self.derivative}"


class Repository:
    """The registry of one format of an instance, changed through the tools with *run*.

    The service calls `read_packages` before the lock, then `publish` (which
    enters the critical section it is given when its files are ready),
    `delete_files` and `read_distribution` with the lock held.
    """

    format: ClassVar[str]
    # Top folders of the format's registry that are the tools' state, never served.
    private_folders: ClassVar[tuple[str, ...]] = ()

    def __init__(self, instance: Instance, *, run: Run) -> None:
        self.instance = instance
        self.root = format_root(instance.pk, self.format)
        self.run = run

    @classmethod
    def lock_names(cls, instance_id: str, distribution: str) -> list[str]:
        """The advisory locks of a critical section on one distribution."""
        return [f"registry:{instance_id}:{cls.format}:{distribution}"]

    @classmethod
    def read_packages(cls, paths: Sequence[Path]) -> list[PackageInfo]:
        """What the index needs from the package files (read before the lock)."""
        raise NotImplementedError

    def publish(
        self,
        target: Target,
        paths: Sequence[Path],
        packages: list[PackageInfo],
        *,
        section: "AbstractContextManager[Section]",
        log: Log,
        workspace: Path | None,
    ) -> list[PackageInfo]:
        """Put the packages in the registry inside *section* and index them with
        `section.index()`; the packages published."""
        raise NotImplementedError

    def delete_files(
        self, target: Target, derivative: RegistryDerivative, removed: list[tuple[str, str]]
    ) -> None:
        """Remove the files of these indexed (name, architecture) packages (lock held)."""
        raise NotImplementedError

    def distributions_on_disk(self) -> list[str]:
        raise NotImplementedError

    def read_distribution(self, distribution: str, *, log: Log) -> dict[str, list[PackageInfo]]:
        """Every readable package of a distribution on disk, by derivative (lock held)."""
        raise NotImplementedError


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)

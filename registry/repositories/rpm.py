"""rpm registries: `rpm/<distribution>/<derivative>/<arch>/{Packages,repodata}` made with
rpmsign, createrepo_c and gpg."""

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from registry import indexing, signing
from registry.constants import NOARCH_ARCHITECTURE, SOURCE_ARCHITECTURE, ArtifactFormat
from registry.models import Artifact, RegistryDerivative
from registry.packages import PackageError, PackageInfo, read_rpms
from registry.repositories.base import Log, Repository, Target
from registry.storage import rpm_folder

if TYPE_CHECKING:
    from registry.publishing import Section

READ_BATCH = 500


def rpm_file_name(name: str, version: str, architecture: str) -> str:
    """The canonical file name of an rpm in a repository (version is version-release)."""
    suffix = "src" if architecture == SOURCE_ARCHITECTURE else architecture
    return f"{name}-{version}.{suffix}.rpm"


def _rpm_key_of(file_name: str) -> tuple[str, str] | None:
    """(name, architecture) of name-version-release.arch.rpm (version and release hold no
    dash), src for source packages."""
    stem, _, architecture = file_name.removesuffix(".rpm").rpartition(".")
    parts = stem.rsplit("-", 2)
    if len(parts) != 3:
        return None
    return parts[0], SOURCE_ARCHITECTURE if architecture in ("src", "nosrc") else architecture


class RpmRepository(Repository):
    """`rpm/<distribution>/<derivative>/<arch>/{Packages,repodata}` with createrepo_c."""

    format = ArtifactFormat.RPM

    @classmethod
    def read_packages(cls, paths: Sequence[Path]) -> list[PackageInfo]:
        for path in paths:
            if not path.name.endswith(".rpm"):
                raise PackageError(f"{path.name}: not an rpm package (.rpm, .src.rpm)")
        return read_rpms(list(paths))

    def folder(self, target: Target, architecture: str) -> Path:
        return self.root / target.distribution / target.derivative / rpm_folder(architecture)

    def folders_of(self, target: Target, architecture: str) -> list[Path]:
        """Where a package goes: noarch ones into every architecture's repository."""
        if architecture == NOARCH_ARCHITECTURE:
            return [self.folder(target, a) for a in self.instance.pipeline_architectures()]
        return [self.folder(target, architecture)]

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
        packages = indexing.unique_packages(packages)
        with tempfile.TemporaryDirectory(prefix="publish-", dir=workspace) as staging:
            # Signing touches only copies in the staging folder: outside the lock.
            signed = self.sign_packages(packages, Path(staging))
            with section as held:
                self._replace(target, packages, signed, held)
        return packages

    def _replace(
        self,
        target: Target,
        packages: list[PackageInfo],
        signed: dict[Path, Path],
        section: "Section",
    ) -> None:
        existing = indexing.find_derivative(
            target.instance, target.format, target.distribution, target.derivative
        )
        # A package replaces its other version; a source also replaces what was built
        # from its other versions (binaries it no longer builds go).
        replaced = {(p.name, p.architecture) for p in packages}
        if existing is not None:
            for source in (p for p in packages if p.is_source):
                replaced.update(
                    indexing.artifacts_of_source(existing, source.name, other_than=source.version)
                )
        touched = self.remove_packages(
            [self.folder(target, SOURCE_ARCHITECTURE), *self.derivative_folders(target)],
            replaced,
        )
        for package in packages:
            for folder in self.folders_of(target, package.architecture):
                self.add(folder, signed[package.path])
                touched.add(folder)
        self.refresh(touched)
        with section.index():
            derivative = indexing.derivative_row(
                target.instance, target.format, target.distribution, target.derivative
            )
            indexing.record_packages(derivative, packages)
            indexing.forget_artifacts(
                derivative, replaced - {(p.name, p.architecture) for p in packages}
            )

    def delete_files(
        self, target: Target, derivative: RegistryDerivative, removed: list[tuple[str, str]]
    ) -> None:
        wanted = set(removed)
        rows = Artifact.objects.filter(derivative=derivative, name__in={n for n, _ in wanted})
        touched = set()
        for name, architecture, version in rows.values_list("name", "architecture", "version"):
            if (name, architecture) not in wanted:
                continue
            file_name = rpm_file_name(name, version, architecture)
            for folder in self.folders_of(target, architecture):
                path = folder / "Packages" / file_name
                if path.exists():
                    path.unlink()
                    touched.add(folder)
        self.refresh(touched)

    def sign_packages(self, packages: Sequence[PackageInfo], staging: Path) -> dict[Path, Path]:
        """Signed copies of the packages, by original path; the originals stay untouched."""
        copies = {}
        for package in packages:
            copy = staging / rpm_file_name(package.name, package.version, package.architecture)
            shutil.copyfile(package.path, copy)
            copies[package.path] = copy
        signing.ensure_agent(self.instance.pk)
        self.run(signing.rpmsign_command(self.instance.pk, list(copies.values())))
        return copies

    def remove_packages(self, folders: Iterable[Path], keys: set[tuple[str, str]]) -> set[Path]:
        """Delete the rpms of these (name, architecture) packages; the folders that changed."""
        changed = set()
        for folder in folders:
            packages = folder / "Packages"
            if not packages.is_dir():
                continue
            with os.scandir(packages) as entries:
                for entry in entries:
                    if entry.name.endswith(".rpm") and _rpm_key_of(entry.name) in keys:
                        os.unlink(entry.path)
                        changed.add(folder)
        return changed

    def add(self, folder: Path, signed: Path) -> None:
        packages = folder / "Packages"
        packages.mkdir(parents=True, exist_ok=True)
        temporary = packages / f".{signed.name}.tmp"
        shutil.copyfile(signed, temporary)
        os.replace(temporary, packages / signed.name)

    def refresh(self, folders: Iterable[Path]) -> None:
        """Regenerate and sign the metadata of the repositories that changed."""
        signing.ensure_agent(self.instance.pk)
        for folder in sorted(set(folders)):
            (folder / "Packages").mkdir(parents=True, exist_ok=True)
            self.run(["createrepo_c", "--update", "--no-database", "--quiet", str(folder)])
            repomd = folder / "repodata" / "repomd.xml"
            self.run(
                signing.detach_sign_command(
                    self.instance.pk, repomd, repomd.with_name("repomd.xml.asc")
                )
            )

    def derivative_folders(self, target: Target) -> list[Path]:
        base = self.root / target.distribution / target.derivative
        return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def scan(self, distribution: str) -> dict[str, list[Path]]:
        """Every rpm of a distribution on disk, by derivative."""
        base = self.root / distribution
        found: dict[str, list[Path]] = {}
        if not base.is_dir():
            return found
        for derivative in sorted(p for p in base.iterdir() if p.is_dir()):
            files = sorted(derivative.glob("*/Packages/*.rpm"))
            if files:
                found[derivative.name] = files
        return found

    def distributions_on_disk(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def read_distribution(self, distribution: str, *, log: Log) -> dict[str, list[PackageInfo]]:
        found: dict[str, list[PackageInfo]] = {}
        for derivative, files in self.scan(distribution).items():
            for start in range(0, len(files), READ_BATCH):
                found.setdefault(derivative, []).extend(
                    _read_rpms_skipping_bad(files[start : start + READ_BATCH], log)
                )
        return found


def _read_rpms_skipping_bad(files: list[Path], log: Log) -> list[PackageInfo]:
    """A batch in one rpm query; when one file is unreadable, the others one by one, so
    that it alone is left out of the index."""
    try:
        return read_rpms(files)
    except PackageError:
        packages = []
        for path in files:
            try:
                packages.extend(read_rpms([path]))
            except PackageError as error:
                log(f"Skipping {path.name}: {error}", logging.WARNING)
        return packages

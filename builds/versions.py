"""Version strings of built artifacts: ``<main>-<release>[.<dist>][+build<N>]`` (compat §7.3)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

BUILD_MARKER = "+build"


@dataclass(frozen=True, order=False)
class ArtifactVersion:
    """One artifact version: upstream version, format release, distribution tag, rebuild.

    Not ordered on purpose: comparing Debian or RPM versions needs the tools' own rules,
    and nothing here needs more than equality.
    """

    main: str
    release: str
    dist: str = ""
    build: int = 0

    @property
    def fullrelease(self) -> str:
        """The part after the main version, e.g. ``1.deb12+build2``."""
        text = self.release
        if self.dist:
            text += f".{self.dist}"
        if self.build > 0:
            text += f"{BUILD_MARKER}{self.build}"
        return text

    @property
    def full(self) -> str:
        """The whole version, e.g. ``2.10-1.deb12`` or ``2.10-1.deb12+build1``."""
        return f"{self.main}-{self.fullrelease}"

    @property
    def major(self) -> str:
        """The main version up to its first dot (``2`` for ``2.10``)."""
        return self.main.split(".", 1)[0]

    @classmethod
    def parse(cls, text: str) -> ArtifactVersion:
        """Parse a full version; the last "-" separates the main version from the release.

        Raises ValueError when there is no "-", a part is empty or the build is not a number.
        """
        main, separator, rest = text.rpartition("-")
        if not separator:
            raise ValueError(f"version {text!r} has no release part")
        rest, marker, build_text = rest.partition(BUILD_MARKER)
        build = 0
        if marker:
            if not build_text.isdigit() or not build_text.isascii():
                raise ValueError(f"version {text!r} has an invalid build number")
            build = int(build_text)
        release, _, dist = rest.partition(".")
        if not main or not release:
            raise ValueError(f"version {text!r} has an empty main or release part")
        return cls(main=main, release=release, dist=dist, build=build)

    def same_build_target(self, other: ArtifactVersion) -> bool:
        """Whether both versions differ at most by their rebuild number."""
        return (self.main, self.release, self.dist) == (other.main, other.release, other.dist)

    def next_build(self, published: Iterable[str]) -> ArtifactVersion:
        """This version, bumped past the rebuilds of it that are already published.

        Published versions that do not parse are ignored: registries may hold packages
        that Fatbuildr did not build.
        """
        builds = []
        for text in published:
            try:
                version = text if isinstance(text, ArtifactVersion) else self.parse(text)
            except ValueError:
                continue
            if self.same_build_target(version):
                builds.append(version.build)
        if not builds:
            return self
        return dataclasses.replace(self, build=max(builds) + 1)

    def __str__(self) -> str:
        return self.full

"""The interface every build format implements: the steps a build calls."""

from pathlib import Path
from typing import ClassVar

from builds.environments import BuildEnvironment
from builds.preparation import Build


class Builder:
    """Turns a prepared `Build` into package files: `prepare()` lays out the build folder
    on the host (no code of the artifact runs), `build()` runs the format's tools in the
    sandbox, one architecture after the other, and `results()` names the package files
    to collect and publish (a deb `.changes` stands for the files it lists)."""

    format: ClassVar[str]
    # Packages of the format's build roots on top of mmdebstrap's `buildd` variant.
    root_packages: ClassVar[tuple[str, ...]]

    @classmethod
    def root_suite(cls, env: BuildEnvironment) -> str:
        """The Debian suite the format's build root *env* is made from."""
        raise NotImplementedError

    @classmethod
    def architecture_dependent(cls, folder: Path, artifact: str) -> bool:
        """Whether the definition in *folder* makes per-architecture packages (compat §2.6
        item 4)."""
        return False

    def __init__(self, build: Build) -> None:
        self.build_ = build

    def prepare(self) -> None:
        raise NotImplementedError

    def build(self) -> None:
        raise NotImplementedError

    def results(self) -> list[Path]:
        raise NotImplementedError

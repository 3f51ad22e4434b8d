"""The interface every build format implements: the steps a build calls."""

from pathlib import Path
from typing import ClassVar

from builds.preparation import Build


class Builder:
    """Turns a prepared `Build` into package files: `prepare()` lays out the build folder
    on the host (no code of the artifact runs), `build()` runs the format's tools in the
    sandbox, one architecture after the other, and `results()` names the package files
    to collect and publish (a deb `.changes` stands for the files it lists)."""

    format: ClassVar[str]

    def __init__(self, build: Build) -> None:
        self.build_ = build

    def prepare(self) -> None:
        raise NotImplementedError

    def build(self) -> None:
        raise NotImplementedError

    def results(self) -> list[Path]:
        raise NotImplementedError

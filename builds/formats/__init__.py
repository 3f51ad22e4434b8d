"""Build formats: one module per format behind the `Builder` interface (base.py).

A new format is a module with a `Builder` subclass, added to `BUILDERS`.
"""

from pathlib import Path

from builds.definition import check_artifact_name
from builds.formats.base import Builder
from builds.formats.deb import DebBuilder
from builds.formats.rpm import RpmBuilder
from builds.preparation import Build

BUILDERS: dict[str, type[Builder]] = {kind.format: kind for kind in (DebBuilder, RpmBuilder)}


class FormatError(Exception):
    """No builder for the format of a build."""


def builder_for(build: Build) -> Builder:
    """The builder of a prepared build, by its format."""
    try:
        kind = BUILDERS[build.target.format]
    except KeyError:
        raise FormatError(f"Format {build.target.format} has no builder") from None
    return kind(build)


def architecture_dependent(folder: Path, fmt: str, *, artifact: str) -> bool:
    """Whether builds of the format produce per-architecture packages (compat §2.6 item 4);
    a format without a builder never does."""
    check_artifact_name(artifact)
    kind = BUILDERS.get(fmt)
    return kind is not None and kind.architecture_dependent(folder, artifact)


__all__ = ["BUILDERS", "Builder", "FormatError", "architecture_dependent", "builder_for"]

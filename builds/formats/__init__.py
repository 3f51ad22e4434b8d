"""Build formats: one module per format behind the `Builder` interface (base.py).

A new format is a module with a `Builder` subclass, added to `BUILDERS`.
"""

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


__all__ = ["BUILDERS", "Builder", "FormatError", "builder_for"]

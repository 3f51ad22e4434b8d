"""Names of the registries; the pipeline names they share live in `instances.constants`."""

from instances.constants import MAIN_DERIVATIVE, ArtifactFormat

__all__ = ["MAIN_DERIVATIVE", "NOARCH_ARCHITECTURE", "SOURCE_ARCHITECTURE", "ArtifactFormat"]

# Architecture names of source and architecture-independent artifacts.
SOURCE_ARCHITECTURE = "src"
NOARCH_ARCHITECTURE = "noarch"

"""Registry formats: one module per format behind the `Repository` interface (base.py).

A new format is a module with a `Repository` subclass, added to `REPOSITORIES`.
"""

from registry.repositories.base import PublishError, Repository, Target
from registry.repositories.deb import DebRepository
from registry.repositories.rpm import RpmRepository

# The formats that have a registry, in the order reindexing walks them.
REPOSITORIES: dict[str, type[Repository]] = {
    kind.format: kind for kind in (DebRepository, RpmRepository)
}


def repository_class(fmt: str) -> type[Repository]:
    """The Repository of a format; PublishError when the format has no registry."""
    try:
        return REPOSITORIES[fmt]
    except KeyError:
        raise PublishError(f"Format {fmt} has no registry to publish into") from None


__all__ = ["REPOSITORIES", "PublishError", "Repository", "Target", "repository_class"]

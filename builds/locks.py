"""Resource locks of build tasks (DESIGN: Tasks, Resources).

A build holds its artifact exclusively, so rebuilds of one artifact run in
submission order and see each other's results, and holds its build
environments shared, so that builds run side by side while an environment
update (exclusive) waits for them and the builds queued after it wait for the
update.
"""

from instances.models import Instance
from registry.publishing import Target, artifact_lock
from tasks.engine import Lock


def environment_lock(
    instance: Instance, fmt: str, environment: str, architecture: str, *, exclusive: bool
) -> Lock:
    """The lock on one build root: (instance, format, environment, architecture)."""
    return Lock(f"environment:{instance.pk}:{fmt}:{environment}:{architecture}", exclusive)


def build_locks(
    target: Target, artifact: str, environment: str, architectures: list[str]
) -> list[Lock]:
    """Every lock an `artifact build` task of *artifact* into *target* holds."""
    return [artifact_lock(target, artifact)] + [
        environment_lock(target.instance, target.format, environment, architecture, exclusive=False)
        for architecture in architectures
    ]

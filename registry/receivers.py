"""What the registry app does when other apps report something (connected in `apps.py`)."""

from django.dispatch import receiver

from instances.models import Instance
from instances.signals import instance_loaded
from registry.keyrings import queue_keyring_creation


@receiver(instance_loaded, dispatch_uid="registry.queue_keyring_creation")
def queue_keyring_of_loaded_instance(*, instance: Instance, user: str, **kwargs) -> str | None:
    """A loaded instance without a keyring gets its `keyring creation` task queued."""
    task = queue_keyring_creation(instance, user=user)
    return None if task is None else f"keyring creation queued (task {task.pk})"

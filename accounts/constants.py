"""Permission actions (upstream fatbuildrweb and polkit action names)."""

from django.db import models


class Action(models.TextChoices):
    """Every action a policy may grant."""

    VIEW_PIPELINE = "view-pipeline"
    VIEW_REGISTRY = "view-registry"
    EDIT_REGISTRY = "edit-registry"
    VIEW_TASK = "view-task"
    VIEW_KEYRING = "view-keyring"
    BUILD = "build"
    # Ours: upstream has no cancellation.
    CANCEL_TASK = "cancel-task"
    # Upstream D-Bus/polkit actions, accepted in policies for compatibility.
    EDIT_REGISTRY_AS = "edit-registry-as"
    BUILD_AS = "build-as"
    PURGE_HISTORY = "purge-history"
    EDIT_KEYRING = "edit-keyring"
    MANAGE_IMAGE = "manage-image"
    MANAGE_TOKEN = "manage-token"


ANONYMOUS_ROLE = "anonymous"

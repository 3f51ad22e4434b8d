"""The Task row: the one source of truth for queued, running and finished work."""

import uuid
from pathlib import Path

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Func, Value

# Global FIFO order of submissions, given by PostgreSQL at insert time so that
# web processes on several hosts agree on it whatever their clocks say.
QUEUE_SEQUENCE = "tasks_task_queue_order_seq"


class NextVal(Func):
    function = "nextval"
    output_field = models.BigIntegerField()


class TaskName(models.TextChoices):
    """The eleven upstream task names; clients rebuild tasks by name (compat §2.5)."""

    ARTIFACT_BUILD = "artifact build"
    ARTIFACT_DELETION = "artifact deletion"
    KEYRING_CREATION = "keyring creation"
    KEYRING_RENEWAL = "keyring renewal"
    HISTORY_PURGE = "history purge"
    IMAGE_CREATION = "image creation"
    IMAGE_UPDATE = "image update"
    IMAGE_SHELL = "image shell"
    IMAGE_BUILD_ENV_CREATION = "image build environment creation"
    IMAGE_BUILD_ENV_UPDATE = "image build environment update"
    IMAGE_BUILD_ENV_SHELL = "image build environment shell"


class TaskState(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"


class TaskResult(models.TextChoices):
    UNKNOWN = "unknown"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"


class Task(models.Model):
    """A unit of state-changing work for an instance.

    Every type-specific field of every upstream task type is a non-null
    column, so the wire form never carries a null (clients assert on it).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    instance = models.ForeignKey(
        "instances.Instance", on_delete=models.CASCADE, related_name="tasks"
    )
    name = models.CharField(max_length=64, choices=TaskName.choices)
    user = models.CharField(max_length=255, help_text="Submitting identity (token sub).")
    state = models.CharField(max_length=16, choices=TaskState.choices, default=TaskState.PENDING)
    result = models.CharField(max_length=16, choices=TaskResult.choices, default=TaskResult.UNKNOWN)
    submission = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    place = models.CharField(max_length=4096, blank=True, help_text="Task workspace.")
    queue_order = models.BigIntegerField(
        db_default=NextVal(Value(QUEUE_SEQUENCE)), unique=True, editable=False
    )

    # Engine bookkeeping (never on the wire).
    worker = models.CharField(max_length=255, blank=True, default="", help_text="host:pid")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    process_group = models.IntegerField(null=True, blank=True, help_text="Of the running command.")
    dispatched_at = models.DateTimeField(null=True, blank=True)
    dispatch_count = models.PositiveIntegerField(default=0)
    redispatch_at = models.DateTimeField(
        null=True, blank=True, help_text="When the reconciler may send the message again."
    )
    cancel_requested_by = models.CharField(max_length=255, blank=True, default="")
    error = models.TextField(blank=True, default="", help_text="Why the task failed.")

    # Build, deletion and image fields.
    format = models.CharField(max_length=8, blank=True, default="")
    distribution = models.CharField(max_length=64, blank=True, default="")
    derivative = models.CharField(max_length=64, blank=True, default="")
    artifact = models.CharField(max_length=255, blank=True, default="", db_index=True)
    architectures = ArrayField(models.CharField(max_length=32), default=list, blank=True)
    archives = models.JSONField(default=list, blank=True, help_text='[{"id": ..., "path": ...}]')
    author = models.CharField(max_length=255, blank=True, default="")
    email = models.CharField(max_length=255, blank=True, default="")
    message = models.TextField(blank=True, default="")
    # Deletion: the artifact object besides its name.
    artifact_architecture = models.CharField(max_length=32, blank=True, default="")
    artifact_version = models.CharField(max_length=255, blank=True, default="")
    artifact_size = models.BigIntegerField(default=0)
    # Keyring renewal.
    duration = models.CharField(max_length=32, blank=True, default="")
    # Images and build environments.
    force = models.BooleanField(default=False)
    environment = models.CharField(max_length=128, blank=True, default="")
    architecture = models.CharField(max_length=32, blank=True, default="")
    term = models.CharField(max_length=64, blank=True, default="")
    command = ArrayField(models.TextField(), default=list, blank=True)

    class Meta:
        ordering = ["queue_order"]
        indexes = [
            models.Index(fields=["instance", "state", "queue_order"], name="task_queue"),
            models.Index(
                fields=["queue_order"], name="task_pending", condition=models.Q(state="pending")
            ),
            models.Index(
                fields=["heartbeat_at"],
                name="task_running_heartbeat",
                condition=models.Q(state="running"),
            ),
            models.Index(fields=["instance", "name", "result"], name="task_history_filter"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.id}"

    def save(self, *args, **kwargs) -> None:
        if not self.place:
            self.place = str(workspace_path(self.instance_id, self.id))
        super().save(*args, **kwargs)

    @property
    def journal_path(self) -> Path:
        return Path(self.place) / "task.journal"

    @property
    def console_path(self) -> Path:
        return Path(self.place) / "console.sock"


class TaskLock(models.Model):
    """A resource a task holds while it runs, declared at submission.

    An exclusive lock conflicts with every other lock on the resource, a
    shared one only with exclusive ones. A task runs once no task submitted
    before it still holds or waits for a conflicting lock: FIFO per resource,
    parallel across resources.
    """

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="locks")
    resource = models.CharField(max_length=512)
    exclusive = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "resource"], name="task_lock_unique")
        ]
        indexes = [models.Index(fields=["resource"], name="task_lock_resource")]

    def __str__(self) -> str:
        return f"{'exclusive' if self.exclusive else 'shared'} {self.resource}"


def instance_workspaces_root(instance_id: str) -> Path:
    """The directory holding the workspaces of an instance's tasks."""
    return Path(settings.FATBUILDR_DATA_DIR) / "workspaces" / instance_id


def workspace_path(instance_id: str, task_id: uuid.UUID) -> Path:
    """Workspace of a task under the data root: workspaces/<instance>/<task>."""
    return instance_workspaces_root(instance_id) / str(task_id)

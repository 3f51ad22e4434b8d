"""Task JSON as upstream clients parse it (compat §2.5).

`fatbuildrctl` rebuilds a task from the field set registered for its `name`,
reads every field with `json[field]` and asserts none is null: the mapping
below is that contract, and `task_to_wire` never emits a null.
"""

from typing import Any

from tasks.models import Task, TaskName

BASE_FIELDS = ("id", "user", "name", "submission", "place", "state", "result", "io")

TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    TaskName.ARTIFACT_BUILD: (
        "format",
        "distribution",
        "architectures",
        "archives",
        "derivative",
        "artifact",
        "author",
        "email",
        "message",
    ),
    TaskName.ARTIFACT_DELETION: ("format", "distribution", "derivative", "artifact"),
    TaskName.KEYRING_CREATION: (),
    TaskName.KEYRING_RENEWAL: ("duration",),
    TaskName.HISTORY_PURGE: (),
    TaskName.IMAGE_CREATION: ("format", "force"),
    TaskName.IMAGE_UPDATE: ("format",),
    TaskName.IMAGE_SHELL: ("format", "term", "command"),
    TaskName.IMAGE_BUILD_ENV_CREATION: ("format", "environment", "architecture"),
    TaskName.IMAGE_BUILD_ENV_UPDATE: ("format", "environment", "architecture"),
    TaskName.IMAGE_BUILD_ENV_SHELL: ("format", "environment", "architecture", "term", "command"),
}


def task_to_wire(task: Task) -> dict[str, Any]:
    """The JSON object of a task, with the fields of its type."""
    data: dict[str, Any] = {
        "id": str(task.id),
        "user": task.user,
        "name": task.name,
        "submission": int(task.submission.timestamp()),
        "place": task.place,
        "state": task.state,
        "result": task.result,
        "io": {
            "console": str(task.console_path),
            "interactive": False,
            "journal": {"path": str(task.journal_path)},
        },
    }
    for field in TYPE_FIELDS.get(task.name, ()):
        data[field] = _type_field(task, field)
    return data


def _type_field(task: Task, field: str) -> Any:
    if field == "artifact" and task.name == TaskName.ARTIFACT_DELETION:
        return {
            "name": task.artifact,
            "architecture": task.artifact_architecture,
            "version": task.artifact_version,
            "size": task.artifact_size,
        }
    if field == "archives":
        return [{"id": str(item["id"]), "path": str(item["path"])} for item in task.archives]
    return getattr(task, field)

from django.apps import AppConfig


class TasksConfig(AppConfig):
    """Tasks: the queue of state-changing work and its history."""

    name = "tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Task handlers register themselves with the engine when imported.
        import tasks.handlers  # noqa: F401

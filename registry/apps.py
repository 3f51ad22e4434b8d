from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """Instances, pipelines and the registry index."""

    name = "registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Task handlers register themselves with the engine when imported.
        import registry.handlers  # noqa: F401

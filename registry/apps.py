from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """The registries of the instances: their index, keyrings, publishing and files."""

    name = "registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Task handlers register themselves with the engine when imported; signal receivers
        # connect themselves the same way.
        import registry.handlers
        import registry.receivers  # noqa: F401

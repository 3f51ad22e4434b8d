from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """Instances, pipelines and the registry index."""

    name = "registry"
    default_auto_field = "django.db.models.BigAutoField"

from django.apps import AppConfig


class InstancesConfig(AppConfig):
    """Instances and their pipelines: what every other app is scoped by."""

    name = "instances"
    default_auto_field = "django.db.models.BigAutoField"

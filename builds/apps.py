from django.apps import AppConfig


class BuildsConfig(AppConfig):
    """Artifact builds: submission, definitions, build environments and sandboxed builds."""

    name = "builds"

    def ready(self) -> None:
        # Task handlers register themselves with the engine when imported.
        import builds.handlers  # noqa: F401

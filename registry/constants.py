"""Names shared by pipelines, registries and tasks."""

from django.db import models


class ArtifactFormat(models.TextChoices):
    """Artifact formats Fatbuildr knows (upstream `[images] formats`)."""

    DEB = "deb", "deb"
    RPM = "rpm", "rpm"
    OSI = "osi", "osi"


# The implicit root derivative of every instance.
MAIN_DERIVATIVE = "main"

# Architecture names of source and architecture-independent artifacts.
SOURCE_ARCHITECTURE = "src"
NOARCH_ARCHITECTURE = "noarch"

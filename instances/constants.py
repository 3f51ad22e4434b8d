"""Names of the pipelines, shared by every app that builds or publishes for them."""

from django.db import models


class ArtifactFormat(models.TextChoices):
    """Artifact formats Fatbuildr knows (upstream `[images] formats`)."""

    DEB = "deb", "deb"
    RPM = "rpm", "rpm"
    OSI = "osi", "osi"


# The implicit root derivative of every instance.
MAIN_DERIVATIVE = "main"

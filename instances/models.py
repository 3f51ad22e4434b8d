"""Instances and their build pipelines: what every other app is scoped by.

The tables kept the names they had in the `registry` app (Meta.db_table), so
the move to this app changed no data (see migrations/0001_initial.py).
"""

import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models

from instances.constants import MAIN_DERIVATIVE, ArtifactFormat

# Instance ids and pipeline names end up in URLs and on-disk paths: keep them tame.
name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._+-]*$",
    "Use letters, digits and . _ + - only, starting with a letter or digit.",
)


def new_token_key() -> str:
    """A fresh JWT signing key, in the upstream shape (64 hex characters used as text)."""
    return secrets.token_hex(32)


class Instance(models.Model):
    """A Fatbuildr instance: its own pipelines, signing key, keyring, registries and tasks.

    Loaded from a Fatbuildr instance YAML file; the id is the file stem.
    """

    id = models.CharField(primary_key=True, max_length=64, validators=[name_validator])
    name = models.CharField(max_length=255, help_text="Full name of the instance.")
    gpg_name = models.CharField("GPG name", max_length=255)
    gpg_email = models.EmailField("GPG email")
    architectures = ArrayField(
        models.CharField(max_length=32, validators=[name_validator]),
        default=list,
        blank=True,
        help_text="Pipeline architectures besides the host one, in order.",
    )
    formats = ArrayField(
        models.CharField(max_length=8, choices=ArtifactFormat.choices),
        default=list,
        blank=True,
        help_text="Artifact formats of the pipelines, in the order of the instance file.",
    )
    token_key = models.CharField(
        max_length=255,
        default=new_token_key,
        help_text="Secret used as is to sign and verify API tokens (HMAC).",
    )
    source_file = models.CharField(max_length=1024, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "registry_instance"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id

    @property
    def userid(self) -> str:
        """GPG user id of the instance keyring, "Name <email>"."""
        return f"{self.gpg_name} <{self.gpg_email}>"

    def pipeline_architectures(self) -> list[str]:
        """Host architecture first, then the declared ones without duplicates."""
        ordered = [settings.FATBUILDR_HOST_ARCHITECTURE, *self.architectures]
        return list(dict.fromkeys(ordered))


class PipelineDistribution(models.Model):
    """A distribution an instance builds for, with its build environment and version tag."""

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="distributions")
    format = models.CharField(max_length=8, choices=ArtifactFormat.choices)
    name = models.CharField(max_length=64, validators=[name_validator])
    environment = models.CharField(
        max_length=128, blank=True, help_text="Build environment; empty for osi."
    )
    tag = models.CharField(max_length=64, blank=True, help_text="Version dist tag; empty for osi.")
    mirror = models.CharField(max_length=1024, blank=True)
    components = models.CharField(max_length=255, blank=True)
    modules = ArrayField(models.CharField(max_length=128), default=list, blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "registry_pipelinedistribution"
        ordering = ["instance_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "name"], name="pipeline_distribution_unique_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.instance_id}: {self.format}/{self.name}"


class PipelineDerivative(models.Model):
    """A derivative: a complementary repository layered over its parent, down to main.

    `formats` empty means "every format of the parent" (the documented semantics,
    not the upstream code that supported nothing in that case).
    """

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="derivatives")
    name = models.CharField(max_length=64, validators=[name_validator])
    formats = ArrayField(
        models.CharField(max_length=8, choices=ArtifactFormat.choices),
        default=list,
        blank=True,
        help_text="Formats restricted to; empty means all the formats of the parent.",
    )
    extends = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        help_text="Parent derivative; empty only for main.",
    )
    position = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "registry_pipelinederivative"
        ordering = ["instance_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "name"], name="pipeline_derivative_unique_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.instance_id}: {self.name}"

    @property
    def is_main(self) -> bool:
        return self.name == MAIN_DERIVATIVE

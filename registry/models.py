"""Instances, their build pipelines, and the index of what their registries hold."""

import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Case, IntegerField, Value, When

from registry.constants import MAIN_DERIVATIVE, SOURCE_ARCHITECTURE, ArtifactFormat

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


class RegistryFormat(models.Model):
    """A format registry (deb, rpm, osi) that exists for an instance."""

    instance = models.ForeignKey(
        Instance, on_delete=models.CASCADE, related_name="registry_formats"
    )
    name = models.CharField(max_length=8, choices=ArtifactFormat.choices)

    class Meta:
        ordering = ["instance_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["instance", "name"], name="registry_format_unique")
        ]

    def __str__(self) -> str:
        return f"{self.instance_id}/{self.name}"


class RegistryDistribution(models.Model):
    """A distribution present in a format registry."""

    format = models.ForeignKey(
        RegistryFormat, on_delete=models.CASCADE, related_name="distributions"
    )
    name = models.CharField(max_length=64)

    class Meta:
        ordering = ["format_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["format", "name"], name="registry_distribution_unique")
        ]

    def __str__(self) -> str:
        return f"{self.format}/{self.name}"


class RegistryDerivative(models.Model):
    """A derivative (apt component, rpm sub-repository) present for a distribution."""

    distribution = models.ForeignKey(
        RegistryDistribution, on_delete=models.CASCADE, related_name="derivatives"
    )
    name = models.CharField(max_length=64)

    class Meta:
        ordering = ["distribution_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["distribution", "name"], name="registry_derivative_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.distribution}/{self.name}"


class RegistryRevision(models.Model):
    """The last committed change of a registry distribution.

    A change writes a marker file holding its token before touching the files,
    and commits its token here with the index rows. A marker whose token is not
    the committed one belongs to a change that died in between: its index must
    be rebuilt from disk.
    """

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="+")
    format = models.CharField(max_length=8, choices=ArtifactFormat.choices)
    distribution = models.CharField(max_length=64)
    token = models.UUIDField()
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "format", "distribution"], name="registry_revision_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.instance_id}/{self.format}/{self.distribution}: {self.token}"


def sources_last() -> Case:
    """Sort key of registry listings: binaries (0) before sources (1).

    Shared by the listing queries and the `artifact_listing` index, whose
    expression must be the same for PostgreSQL to read the listing order from it.
    """
    return Case(
        When(architecture=SOURCE_ARCHITECTURE, then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )


class Artifact(models.Model):
    """A package published in a registry derivative: a source (architecture "src") or a binary.

    Registries keep one version of a package per distribution and derivative,
    so (derivative, name, architecture) is unique. A binary links to the
    source it was built from.
    """

    derivative = models.ForeignKey(
        RegistryDerivative, on_delete=models.CASCADE, related_name="artifacts"
    )
    name = models.CharField(max_length=255)
    architecture = models.CharField(max_length=32)
    version = models.CharField(max_length=255)
    size = models.BigIntegerField(default=0)
    # The source package name a binary says it comes from: links it to a source
    # published before or after it.
    source_name = models.CharField(max_length=255, blank=True, default="")
    source = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="binaries",
        limit_choices_to={"architecture": SOURCE_ARCHITECTURE},
    )

    class Meta:
        ordering = ["derivative_id", "name", "architecture"]
        constraints = [
            models.UniqueConstraint(
                fields=["derivative", "name", "architecture"], name="artifact_unique_per_arch"
            )
        ]
        indexes = [
            # search.json: case-sensitive substring match on names (LIKE '%term%').
            GinIndex(fields=["name"], name="artifact_name_trgm", opclasses=["gin_trgm_ops"]),
            # Publishing links the binaries of a source by name.
            models.Index(fields=["derivative", "source_name"], name="artifact_source_name"),
            # Derivative listing: the rows in listing order with every listed column, so
            # PostgreSQL reads them from the index instead of sorting the whole derivative.
            models.Index(
                "derivative",
                sources_last(),
                "name",
                "architecture",
                include=["size", "version"],
                name="artifact_listing",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}_{self.version}_{self.architecture}"

    @property
    def is_source(self) -> bool:
        return self.architecture == SOURCE_ARCHITECTURE


class ChangelogEntry(models.Model):
    """One entry of an artifact's changelog; position 0 is the newest."""

    artifact = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="changelog")
    position = models.PositiveIntegerField()
    version = models.CharField(max_length=255)
    author = models.CharField(max_length=512)
    date = models.BigIntegerField(help_text="Seconds since the epoch.")
    changes = ArrayField(models.TextField(), default=list, blank=True)

    class Meta:
        ordering = ["artifact_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["artifact", "position"], name="changelog_position")
        ]
        verbose_name_plural = "changelog entries"

    def __str__(self) -> str:
        return f"{self.artifact} {self.version}"


class ContentEntry(models.Model):
    """One path shipped by a binary artifact."""

    class EntryType(models.TextChoices):
        FILE = "f", "file"
        DIRECTORY = "d", "directory"
        LINK = "l", "symbolic link"
        OTHER = "n/a", "other"

    artifact = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="content")
    path = models.CharField(max_length=4096)
    type = models.CharField(max_length=3, choices=EntryType.choices)
    size = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["artifact_id", "id"]
        indexes = [models.Index(fields=["artifact", "id"], name="content_by_artifact")]
        verbose_name_plural = "content entries"

    def __str__(self) -> str:
        return self.path


class Keyring(models.Model):
    """The public side of an instance GPG keyring, copied from gpg whenever it changes.

    The web hosts serve keyring.asc from this row without spawning gpg. The
    secret keys and their passphrase stay in the keyring home on the data root:
    they never reach the database.
    """

    instance = models.OneToOneField(
        Instance, on_delete=models.CASCADE, primary_key=True, related_name="keyring"
    )
    fingerprint = models.CharField(max_length=64, help_text="Master key fingerprint.")
    subkey_fingerprint = models.CharField(
        max_length=64, help_text="Fingerprint of the subkey that signs the registries."
    )
    algorithm = models.CharField(max_length=32, help_text="Master key algorithm, e.g. rsa4096.")
    public_key = models.TextField(help_text="ASCII-armored public key, with its subkey.")
    created = models.DateTimeField(help_text="Creation of the master key.")
    expires = models.DateTimeField(
        null=True, blank=True, help_text="Expiry of the master key; empty: never."
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["instance_id"]

    def __str__(self) -> str:
        return f"{self.instance_id}: {self.fingerprint}"

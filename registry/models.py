"""The index of what the registries of the instances hold, and their keyrings."""

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Case, IntegerField, Value, When

from instances.models import Instance
from registry.constants import SOURCE_ARCHITECTURE, ArtifactFormat


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

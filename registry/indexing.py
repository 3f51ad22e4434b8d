"""Writes to the registry index: the PostgreSQL mirror of what the registries hold.

Called inside the publish critical section only (registry.publishing), so the
rows change in the same transaction, under the same lock, as the files. The
number of queries depends on the packages published, never on the size of the
registry.
"""

from collections.abc import Iterable

from django.db.models import OuterRef, Q, QuerySet, Subquery

from instances.models import Instance
from registry.models import (
    Artifact,
    ChangelogEntry,
    ContentEntry,
    RegistryDerivative,
    RegistryDistribution,
    RegistryFormat,
)
from registry.packages import PackageInfo

ArtifactKey = tuple[str, str]  # (name, architecture)


def derivative_row(
    instance: Instance, fmt: str, distribution: str, derivative: str
) -> RegistryDerivative:
    """The index row of a registry derivative, created with its parents when missing."""
    format_row, _ = RegistryFormat.objects.get_or_create(instance=instance, name=fmt)
    distribution_row, _ = RegistryDistribution.objects.get_or_create(
        format=format_row, name=distribution
    )
    row, _ = RegistryDerivative.objects.get_or_create(
        distribution=distribution_row, name=derivative
    )
    return row


def find_derivative(
    instance: Instance, fmt: str, distribution: str, derivative: str
) -> RegistryDerivative | None:
    return RegistryDerivative.objects.filter(
        distribution__format__instance=instance,
        distribution__format__name=fmt,
        distribution__name=distribution,
        name=derivative,
    ).first()


def unique_packages(packages: Iterable[PackageInfo]) -> list[PackageInfo]:
    """One package per (name, architecture): a noarch rpm copied into every repository
    is one artifact."""
    return list({(p.name, p.architecture): p for p in packages}.values())


def record_packages(derivative: RegistryDerivative, packages: Iterable[PackageInfo]) -> None:
    """Upsert the artifacts of *packages* with their changelog, content and source links."""
    packages = unique_packages(packages)
    if not packages:
        return
    rows = Artifact.objects.bulk_create(
        [
            Artifact(
                derivative=derivative,
                name=package.name,
                architecture=package.architecture,
                version=package.version,
                size=package.size,
                source_name="" if package.is_source else package.source_name,
            )
            for package in packages
        ],
        update_conflicts=True,
        unique_fields=["derivative", "name", "architecture"],
        update_fields=["version", "size", "source_name"],
    )
    ids = [row.pk for row in rows]
    ChangelogEntry.objects.filter(artifact_id__in=ids).delete()
    ContentEntry.objects.filter(artifact_id__in=ids).delete()
    ChangelogEntry.objects.bulk_create(
        [
            ChangelogEntry(
                artifact_id=row.pk,
                position=position,
                version=item.version,
                author=item.author,
                date=item.date,
                changes=list(item.changes),
            )
            for row, package in zip(rows, packages, strict=True)
            for position, item in enumerate(package.changelog)
        ],
        batch_size=1000,
    )
    ContentEntry.objects.bulk_create(
        [
            ContentEntry(artifact_id=row.pk, path=item.path, type=item.type, size=item.size)
            for row, package in zip(rows, packages, strict=True)
            for item in package.content
        ],
        batch_size=2000,
    )
    # Binaries published here find their source, and binaries published before
    # their source (imports) find it now: one UPDATE for all of them.
    source_names = {p.name for p in packages if p.is_source}
    binaries = Artifact.objects.filter(derivative=derivative).exclude(architecture="src")
    _link_to_sources(
        derivative,
        binaries.filter(Q(pk__in=[row.pk for row in rows]) | Q(source_name__in=source_names)),
    )


def _link_to_sources(derivative: RegistryDerivative, binaries: QuerySet[Artifact]) -> None:
    source = Artifact.objects.filter(
        derivative=derivative, architecture="src", name=OuterRef("source_name")
    ).values("pk")[:1]
    binaries.update(source_id=Subquery(source))


def forget_artifacts(derivative: RegistryDerivative, keys: Iterable[ArtifactKey]) -> None:
    """Remove artifacts from the index, then the levels left empty."""
    keys = list(keys)
    for name, architecture in keys:
        Artifact.objects.filter(
            derivative=derivative, name=name, architecture=architecture
        ).delete()
    prune_empty(derivative)


def prune_empty(derivative: RegistryDerivative) -> None:
    """A derivative, distribution or format exists in the index while it holds artifacts."""
    if Artifact.objects.filter(derivative=derivative).exists():
        return
    distribution = derivative.distribution
    derivative.delete()
    if not distribution.derivatives.exists():
        format_row = distribution.format
        distribution.delete()
        if not format_row.distributions.exists():
            format_row.delete()


def clear_distribution(instance: Instance, fmt: str, distribution: str) -> None:
    """Forget everything indexed for a distribution (before a reindex)."""
    RegistryDistribution.objects.filter(
        format__instance=instance, format__name=fmt, name=distribution
    ).delete()
    RegistryFormat.objects.filter(instance=instance, name=fmt, distributions=None).delete()


def artifacts_of_source(
    derivative: RegistryDerivative, source_name: str, *, other_than: str | None = None
) -> list[ArtifactKey]:
    """The source artifact and every binary built from it (with *other_than*: only the
    binaries of another version)."""
    binaries = Artifact.objects.filter(derivative=derivative, source_name=source_name).exclude(
        architecture="src"
    )
    if other_than is not None:
        return list(binaries.exclude(version=other_than).values_list("name", "architecture"))
    keys = list(binaries.values_list("name", "architecture"))
    if Artifact.objects.filter(
        derivative=derivative, name=source_name, architecture="src"
    ).exists():
        keys.append((source_name, "src"))
    return keys

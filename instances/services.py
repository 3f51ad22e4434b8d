"""Writes to instances and pipelines."""

from pathlib import Path
from typing import Literal

from django.db import transaction
from django.utils import timezone

from instances.constants import MAIN_DERIVATIVE
from instances.instance_files import InstanceData, parse_instance_file
from instances.models import Instance, PipelineDerivative, PipelineDistribution

LoadOutcome = Literal["created", "updated", "unchanged"]


def load_instance_file(*, path: Path) -> tuple[Instance, LoadOutcome]:
    """Create or update the instance described by a Fatbuildr instance file.

    Idempotent: loading the same file twice changes nothing. The instance
    token key is created once and never replaced by a reload.
    """
    return apply_instance_data(data=parse_instance_file(path))


@transaction.atomic
def apply_instance_data(*, data: InstanceData) -> tuple[Instance, LoadOutcome]:
    """Make the database match *data*, under a row lock so concurrent loads serialize."""
    instance = Instance.objects.select_for_update().filter(pk=data.id).first()
    created = instance is None
    if instance is None:
        instance = Instance(id=data.id)
    changed = created
    for attribute in ("name", "gpg_name", "gpg_email", "architectures", "formats", "source_file"):
        value = getattr(data, attribute)
        if getattr(instance, attribute) != value:
            setattr(instance, attribute, value)
            changed = True
    if changed:
        instance.full_clean()
        instance.save()

    changed |= _sync_distributions(instance, data)
    changed |= _sync_derivatives(instance, data)
    if changed and not created:
        Instance.objects.filter(pk=instance.pk).update(updated_at=timezone.now())
    return instance, "created" if created else ("updated" if changed else "unchanged")


def _sync_distributions(instance: Instance, data: InstanceData) -> bool:
    existing = {d.name: d for d in PipelineDistribution.objects.filter(instance=instance)}
    changed = False
    for position, spec in enumerate(data.distributions):
        wanted = {
            "format": spec.format,
            "environment": spec.environment or "",
            "tag": spec.tag or "",
            "mirror": spec.mirror,
            "components": spec.components,
            "modules": spec.modules,
            "position": position,
        }
        row = existing.pop(spec.name, None)
        if row is None:
            PipelineDistribution.objects.create(instance=instance, name=spec.name, **wanted)
            changed = True
        elif any(getattr(row, key) != value for key, value in wanted.items()):
            for key, value in wanted.items():
                setattr(row, key, value)
            row.save()
            changed = True
    if existing:
        PipelineDistribution.objects.filter(pk__in=[row.pk for row in existing.values()]).delete()
        changed = True
    return changed


def _sync_derivatives(instance: Instance, data: InstanceData) -> bool:
    existing = {d.name: d for d in PipelineDerivative.objects.filter(instance=instance)}
    changed = False
    main = existing.pop(MAIN_DERIVATIVE, None)
    if main is None:
        main = PipelineDerivative.objects.create(
            instance=instance, name=MAIN_DERIVATIVE, position=0
        )
        changed = True
    rows = {MAIN_DERIVATIVE: main}
    # First pass creates every row, second links parents: a child may precede its parent.
    for position, spec in enumerate(data.derivatives, start=1):
        row = existing.pop(spec.name, None)
        if row is None:
            row = PipelineDerivative.objects.create(
                instance=instance, name=spec.name, formats=list(spec.formats), position=position
            )
            changed = True
        elif row.formats != list(spec.formats) or row.position != position:
            row.formats = list(spec.formats)
            row.position = position
            row.save(update_fields=["formats", "position"])
            changed = True
        rows[spec.name] = row
    for spec in data.derivatives:
        row = rows[spec.name]
        parent = rows[spec.extends or MAIN_DERIVATIVE]
        if row.extends_id != parent.pk:
            row.extends = parent
            row.save(update_fields=["extends"])
            changed = True
    if existing:
        stale = PipelineDerivative.objects.filter(pk__in=[row.pk for row in existing.values()])
        stale.update(extends=None)
        stale.delete()
        changed = True
    return changed

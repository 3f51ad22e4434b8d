"""Reads: instances and their pipelines."""

from django.db.models import QuerySet

from instances.models import Instance, PipelineDerivative, PipelineDistribution
from instances.pipelines import DerivativeSpec, DistributionSpec, Pipelines


def get_instance(instance_id: str) -> Instance | None:
    """The instance with this id, or None."""
    return Instance.objects.filter(pk=instance_id).first()


def list_instances() -> QuerySet[Instance]:
    """Every instance, by id."""
    return Instance.objects.order_by("id")


def instance_to_wire(instance: Instance) -> dict[str, str]:
    """The Instance object of the API."""
    return {"id": instance.id, "name": instance.name, "userid": instance.userid}


def get_pipelines(instance: Instance) -> Pipelines:
    """The pipelines of an instance (two queries)."""
    distributions = [
        DistributionSpec(
            name=d.name, format=d.format, environment=d.environment or None, tag=d.tag or None
        )
        for d in PipelineDistribution.objects.filter(instance=instance).order_by("position")
    ]
    derivatives = [
        DerivativeSpec(name=name, formats=tuple(formats), extends=parent)
        for name, formats, parent in PipelineDerivative.objects.filter(instance=instance)
        .order_by("position")
        .values_list("name", "formats", "extends__name")
    ]
    return Pipelines(
        formats=list(instance.formats), distributions=distributions, derivatives=derivatives
    )

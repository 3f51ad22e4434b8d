"""factory_boy factories for every model the API reads, and task rows placed in time."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import factory
from factory.django import DjangoModelFactory

from instances import models as instance_models
from registry import models as registry_models
from tasks.models import Task, TaskName, TaskResult, TaskState

# The present of tests that place tasks in time: make_task(hours_ago=...) counts from it.
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


class InstanceFactory(DjangoModelFactory):
    class Meta:
        model = instance_models.Instance
        django_get_or_create = ("id",)

    id = factory.Sequence(lambda n: f"instance{n}")
    name = factory.LazyAttribute(lambda o: f"{o.id.title()} Fatbuildr Instance")
    gpg_name = "Maintainers"
    gpg_email = "maintainers@example.org"
    architectures = factory.LazyFunction(lambda: ["x86_64"])
    formats = factory.LazyFunction(lambda: ["deb", "rpm"])


class PipelineDistributionFactory(DjangoModelFactory):
    class Meta:
        model = instance_models.PipelineDistribution

    instance = factory.SubFactory(InstanceFactory)
    format = "deb"
    name = factory.Sequence(lambda n: f"dist{n}")
    environment = factory.LazyAttribute(lambda o: o.name)
    tag = factory.Sequence(lambda n: f"tag{n}")
    position = factory.Sequence(lambda n: n)


class PipelineDerivativeFactory(DjangoModelFactory):
    class Meta:
        model = instance_models.PipelineDerivative

    instance = factory.SubFactory(InstanceFactory)
    name = factory.Sequence(lambda n: f"derivative{n}")
    formats = factory.LazyFunction(list)
    extends = None
    position = factory.Sequence(lambda n: n + 1)


class RegistryFormatFactory(DjangoModelFactory):
    class Meta:
        model = registry_models.RegistryFormat
        django_get_or_create = ("instance", "name")

    instance = factory.SubFactory(InstanceFactory)
    name = "deb"


class RegistryDistributionFactory(DjangoModelFactory):
    class Meta:
        model = registry_models.RegistryDistribution
        django_get_or_create = ("format", "name")

    format = factory.SubFactory(RegistryFormatFactory)
    name = "bookworm"


class RegistryDerivativeFactory(DjangoModelFactory):
    class Meta:
        model = registry_models.RegistryDerivative
        django_get_or_create = ("distribution", "name")

    distribution = factory.SubFactory(RegistryDistributionFactory)
    name = "main"


class ArtifactFactory(DjangoModelFactory):
    class Meta:
        model = registry_models.Artifact

    derivative = factory.SubFactory(RegistryDerivativeFactory)
    name = factory.Sequence(lambda n: f"package{n}")
    architecture = "x86_64"
    version = "1.0-1.deb12"
    size = 1024
    source = None


class ChangelogEntryFactory(DjangoModelFactory):
    class Meta:
        model = registry_models.ChangelogEntry

    artifact = factory.SubFactory(ArtifactFactory)
    position = factory.Sequence(lambda n: n)
    version = "1.0-1.deb12"
    author = "John Doe <john@doe.org>"
    date = 1655838256
    changes = factory.LazyFunction(lambda: ["Fatbuildr test build"])


class ContentEntryFactory(DjangoModelFactory):
    class Meta:
        model = registry_models.ContentEntry

    artifact = factory.SubFactory(ArtifactFactory)
    path = factory.Sequence(lambda n: f"/usr/share/file{n}")
    type = "f"
    size = 100


class TaskFactory(DjangoModelFactory):
    class Meta:
        model = Task

    instance = factory.SubFactory(InstanceFactory)
    name = TaskName.ARTIFACT_BUILD
    user = "john"
    format = "deb"
    distribution = "bookworm"
    derivative = "main"
    artifact = "fatbuildr"
    architectures = factory.LazyFunction(lambda: ["x86_64"])
    archives = factory.LazyFunction(list)
    author = "John Doe"
    email = "john.doe@example.org"
    message = "Test of new feature"


def make_task(
    instance: registry_models.Instance,
    *,
    hours_ago: float,
    state: str = TaskState.FINISHED,
    result: str = TaskResult.SUCCESS,
    workspace: bool = False,
    size: int = 0,
    **fields,
) -> Task:
    """A task row submitted *hours_ago* before NOW (a task not finished has no result yet);
    with *workspace*, its folder exists with a journal of *size* bytes."""
    if state != TaskState.FINISHED:
        result = TaskResult.UNKNOWN
    created = TaskFactory(instance=instance, state=state, result=result, **fields)
    Task.objects.filter(pk=created.pk).update(submission=NOW - timedelta(hours=hours_ago))
    created.refresh_from_db()
    if workspace:
        place = Path(created.place)
        (place / "build").mkdir(parents=True)
        (place / "task.journal").write_bytes(b"j" * size)
    return created


def source_and_binary(
    instance: registry_models.Instance, *, name: str = "fatbuildr", version: str = "2.1.0-1"
) -> tuple[registry_models.Artifact, registry_models.Artifact]:
    """A source artifact and its x86_64 binary, both *version*, in the deb registry
    bookworm/main of *instance*: data for every registry route."""
    derivative = RegistryDerivativeFactory(
        distribution__format__instance=instance,
        distribution__format__name="deb",
        distribution__name="bookworm",
        name="main",
    )
    source = ArtifactFactory(derivative=derivative, name=name, architecture="src", version=version)
    binary = ArtifactFactory(
        derivative=derivative, name=name, architecture="x86_64", version=version, source=source
    )
    return source, binary

"""The number of SQL queries of registry, search and task endpoints does not grow with the data.

Each test builds two instances from the shipped instance file, one with a small
and one with a large registry index (or task table), requests the same endpoint
on both, and asserts that the exact query counts are equal and within a fixed
budget. Requests are anonymous, under the vendor policy (anonymous may view).
"""

import shutil
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from instances.models import Instance
from instances.services import load_instance_file
from registry.models import (
    Artifact,
    ChangelogEntry,
    ContentEntry,
    RegistryDerivative,
    RegistryDistribution,
    RegistryFormat,
)
from tasks.models import Task, TaskName, TaskResult, TaskState, workspace_path
from tests.conftest import REPO_ROOT

SMALL = 5
LARGE = 200


@dataclass
class Dataset:
    """What was created for one instance, so tests can check the answers are really that big."""

    instance: Instance
    size: int
    big_source: str = "libbig"
    big_binary: str = "libbig-bin"
    running_task: uuid.UUID | None = None
    finished_task: uuid.UUID | None = None


def _load_instance(tmp_path, instance_id: str) -> Instance:
    path = tmp_path / f"{instance_id}.yml"
    shutil.copyfile(REPO_ROOT / "instance-files" / "default.yml", path)
    instance, outcome = load_instance_file(path=path)
    assert outcome == "created"
    return instance


def _build_registry(instance: Instance, size: int) -> Dataset:
    """A registry index whose every dimension grows with *size*.

    deb: bookworm (main, foox and size/5 extra derivatives) plus size/5 extra
    distributions; rpm: el8/main. main holds *size* sources, each with one
    binary, plus `libbig` (size binaries, size changelog entries) whose binary
    `libbig-bin` ships size content entries and has size changelog entries.
    """
    extra = max(1, size // 5)
    deb = RegistryFormat.objects.create(instance=instance, name="deb")
    rpm = RegistryFormat.objects.create(instance=instance, name="rpm")
    bookworm = RegistryDistribution.objects.create(format=deb, name="bookworm")
    RegistryDistribution.objects.bulk_create(
        RegistryDistribution(format=deb, name=f"extra{i}") for i in range(extra)
    )
    el8 = RegistryDistribution.objects.create(format=rpm, name="el8")
    main = RegistryDerivative.objects.create(distribution=bookworm, name="main")
    foox = RegistryDerivative.objects.create(distribution=bookworm, name="foox")
    extra_derivatives = RegistryDerivative.objects.bulk_create(
        RegistryDerivative(distribution=bookworm, name=f"extra{i}") for i in range(extra)
    )
    rpm_main = RegistryDerivative.objects.create(distribution=el8, name="main")

    sources = Artifact.objects.bulk_create(
        Artifact(derivative=main, name=f"pkg{i}", architecture="src", version="1.0-1", size=0)
        for i in range(size)
    )
    Artifact.objects.bulk_create(
        Artifact(
            derivative=main,
            name=f"pkg{i}",
            architecture="x86_64",
            version="1.0-1",
            size=1000 + i,
            source=source,
        )
        for i, source in enumerate(sources)
    )
    big_source = Artifact.objects.create(
        derivative=main, name="libbig", architecture="src", version="2.0-1", size=0
    )
    big_binaries = Artifact.objects.bulk_create(
        [
            Artifact(
                derivative=main,
                name="libbig-bin",
                architecture="x86_64",
                version="2.0-1",
                size=4096,
                source=big_source,
            ),
            *(
                Artifact(
                    derivative=main,
                    name=f"libbig-{i}",
                    architecture="noarch" if i % 2 else "x86_64",
                    version="2.0-1",
                    size=i,
                    source=big_source,
                )
                for i in range(size - 1)
            ),
        ]
    )
    big_binary = big_binaries[0]
    for artifact in (big_source, big_binary):
        ChangelogEntry.objects.bulk_create(
            ChangelogEntry(
                artifact=artifact,
                position=position,
                version=f"2.0-{size - position}",
                author="John Doe <john@doe.org>",
                date=1655838256 - position * 86400,
                changes=[f"change {position}", "another change"],
            )
            for position in range(size)
        )
    ContentEntry.objects.bulk_create(
        ContentEntry(artifact=big_binary, path=f"/usr/lib/libbig/file{i}", type="f", size=i)
        for i in range(size)
    )
    # Search hits spread over every derivative and both formats.
    Artifact.objects.bulk_create(
        Artifact(derivative=foox, name=f"pkg-foox{i}", architecture="amd64", version="1", size=1)
        for i in range(size)
    )
    Artifact.objects.bulk_create(
        Artifact(derivative=derivative, name="pkg-extra", architecture="src", version="1", size=0)
        for derivative in extra_derivatives
    )
    Artifact.objects.bulk_create(
        Artifact(derivative=rpm_main, name=f"pkg-rpm{i}", architecture="x86_64", version="1")
        for i in range(size)
    )
    return Dataset(instance=instance, size=size)


def _build_tasks(instance: Instance, size: int) -> Dataset:
    """*size* pending, *size* running and *size* finished tasks of every kind."""
    now = timezone.now()
    names = list(TaskName)
    tasks = []
    for i in range(3 * size):
        task_id = uuid.uuid4()
        state = (TaskState.PENDING, TaskState.RUNNING, TaskState.FINISHED)[i % 3]
        tasks.append(
            Task(
                id=task_id,
                instance=instance,
                name=names[i % len(names)],
                user="john",
                state=state,
                result=TaskResult.SUCCESS if state == TaskState.FINISHED else TaskResult.UNKNOWN,
                started_at=None if state == TaskState.PENDING else now + timedelta(seconds=i),
                place=str(workspace_path(instance.id, task_id)),
                format="deb",
                distribution="bookworm",
                derivative="main",
                artifact=f"pkg{i}",
                architectures=["x86_64"],
                archives=[{"id": "pkg", "path": f"/tmp/pkg{i}.tar.xz"}],
                author="John Doe",
                email="john.doe@example.org",
                message="rebuild",
                duration="2y",
                environment="bookworm",
                architecture="x86_64",
            )
        )
    Task.objects.bulk_create(tasks)
    dataset = Dataset(instance=instance, size=size)
    dataset.running_task = tasks[1].id
    dataset.finished_task = tasks[2].id
    return dataset


@pytest.fixture
def registries(db, multi_mode, tmp_path) -> tuple[Dataset, Dataset]:
    return (
        _build_registry(_load_instance(tmp_path, "small"), SMALL),
        _build_registry(_load_instance(tmp_path, "large"), LARGE),
    )


@pytest.fixture
def task_tables(db, multi_mode, tmp_path) -> tuple[Dataset, Dataset]:
    return (
        _build_tasks(_load_instance(tmp_path, "small"), SMALL),
        _build_tasks(_load_instance(tmp_path, "large"), LARGE),
    )


def _count_queries(client, url: str):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.content[:300])
    return len(captured), response.json()


def _assert_constant(client, datasets, url_for, check, budget, django_assert_max_num_queries):
    """Same exact count for both sizes, within *budget*; *check* proves the answer is full."""
    small, large = datasets
    # Warm up per-process caches (policy file, URL resolvers) outside the measurements.
    client.get(url_for(small))
    counts = {}
    for dataset in (small, large):
        counts[dataset.size], body = _count_queries(client, url_for(dataset))
        check(body, dataset)
    assert counts[SMALL] == counts[LARGE], f"query count grows with the data: {counts}"
    with django_assert_max_num_queries(budget):
        response = client.get(url_for(large))
    assert response.status_code == 200
    return counts[LARGE]


# (id, url, budget, check(body, dataset))
REGISTRY_ENDPOINTS = [
    (
        "registry.json",
        lambda d: f"/{d.instance.id}/registry.json",
        2,
        lambda body, d: body == ["deb", "rpm"],
    ),
    (
        "registry/deb.json",
        lambda d: f"/{d.instance.id}/registry/deb.json",
        2,
        lambda body, d: len(body) == 1 + max(1, d.size // 5) and "bookworm" in body,
    ),
    (
        "registry/deb/bookworm.json",
        lambda d: f"/{d.instance.id}/registry/deb/bookworm.json",
        3,
        lambda body, d: body[:2] == ["main", "foox"] and len(body) == 2 + max(1, d.size // 5),
    ),
    (
        "registry/deb/bookworm/main.json",
        lambda d: f"/{d.instance.id}/registry/deb/bookworm/main.json",
        3,
        # size sources + size binaries + libbig + libbig-bin + size-1 libbig-N
        lambda body, d: len(body) == 3 * d.size + 1
        and body[-1]["architecture"] == "src"
        and set(body[0]) == {"architecture", "name", "size", "version"},
    ),
    (
        "source description",
        lambda d: f"/{d.instance.id}/registry/deb/bookworm/main/src/libbig.json",
        5,
        lambda body, d: set(body) == {"artifact", "binaries", "changelog"}
        and len(body["binaries"]) == d.size
        and len(body["changelog"]) == d.size,
    ),
    (
        "binary description",
        lambda d: f"/{d.instance.id}/registry/deb/bookworm/main/x86_64/libbig-bin.json",
        5,
        lambda body, d: set(body) == {"artifact", "source", "changelog", "content"}
        and body["source"]["name"] == "libbig"
        and len(body["content"]) == d.size
        and len(body["changelog"]) == d.size,
    ),
    (
        "search.json",
        lambda d: f"/{d.instance.id}/search.json?artifact=pkg",
        2,
        lambda body, d: set(body) == {"deb", "rpm"}
        and len(body["deb"]["bookworm"]) == 2 + max(1, d.size // 5)
        and len(body["deb"]["bookworm"]["main"]) == 2 * d.size
        and len(body["rpm"]["el8"]["main"]) == d.size,
    ),
]


@pytest.mark.parametrize(
    ("url_for", "budget", "check"),
    [pytest.param(*rest, id=name) for name, *rest in REGISTRY_ENDPOINTS],
)
def test_registry_endpoint_queries_are_constant(
    registries, anonymous_client, django_assert_max_num_queries, url_for, budget, check
):
    _assert_constant(
        anonymous_client, registries, url_for, check, budget, django_assert_max_num_queries
    )


TASK_ENDPOINTS = [
    (
        "running.json",
        lambda d: f"/{d.instance.id}/running.json",
        2,
        # The oldest running task is the first one created.
        lambda body, d: body is not None and body["id"] == str(d.running_task),
    ),
    (
        "queue.json",
        lambda d: f"/{d.instance.id}/queue.json",
        2,
        lambda body, d: len(body) == d.size and {t["state"] for t in body} == {"pending"},
    ),
    (
        "tasks/{id}.json",
        lambda d: f"/{d.instance.id}/tasks/{d.finished_task}.json",
        2,
        lambda body, d: body["id"] == str(d.finished_task) and body["state"] == "finished",
    ),
]


@pytest.mark.parametrize(
    ("url_for", "budget", "check"),
    [pytest.param(*rest, id=name) for name, *rest in TASK_ENDPOINTS],
)
def test_task_endpoint_queries_are_constant(
    task_tables, anonymous_client, django_assert_max_num_queries, url_for, budget, check
):
    _assert_constant(
        anonymous_client, task_tables, url_for, check, budget, django_assert_max_num_queries
    )


def test_an_n_plus_one_would_be_caught(registries, django_assert_max_num_queries):
    """The harness itself: a per-artifact query shows up as different counts."""
    small, large = registries
    counts = []
    for dataset in (small, large):
        with CaptureQueriesContext(connection) as captured:
            for artifact in Artifact.objects.filter(
                derivative__distribution__format__instance=dataset.instance, architecture="x86_64"
            ):
                _ = artifact.source  # one query per binary without select_related
        counts.append(len(captured))
    assert counts[0] < counts[1]
    with pytest.raises(pytest.fail.Exception), django_assert_max_num_queries(counts[0]):
        list(Artifact.objects.filter(derivative__distribution__format__instance=large.instance))
        for artifact in Artifact.objects.filter(
            derivative__distribution__format__instance=large.instance, architecture="x86_64"
        ):
            _ = artifact.source

"""Every example response of the REST API reference, reproduced from factory data.

Each test builds the database state the example describes, requests the
documented URL (multi-instance mode, instance "default") and compares the
parsed JSON with the documented body. Where the documented body is knowingly
wrong for real clients (task JSON, compat §2.5), the deviation is applied to the
documented body explicitly, so the rest of the example is still checked as is.

The examples of the reference are snapshots of different registry states (the
same package appears with different versions and sizes from one example to the
next), so each test publishes the registry content of its own example.
"""

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from instances.models import Instance
from registry.models import RegistryDerivative
from tasks.models import Task, TaskName, TaskResult, TaskState
from tests.factories import (
    ArtifactFactory,
    ChangelogEntryFactory,
    ContentEntryFactory,
    InstanceFactory,
    PipelineDerivativeFactory,
    PipelineDistributionFactory,
    RegistryDerivativeFactory,
    RegistryDistributionFactory,
    RegistryFormatFactory,
    TaskFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("multi_mode")]


# --- Fixtures ------------------------------------------------------------------------------


@pytest.fixture
def example_instance() -> Instance:
    """The "default" instance of the examples."""
    return InstanceFactory(
        id="default",
        name="Default Fatbuildr Instance",
        gpg_name="Maintainers",
        gpg_email="maintainers@example.org",
        architectures=["x86_64", "arm64"],
        formats=["deb", "osi", "rpm"],
    )


@pytest.fixture
def pipelines(example_instance: Instance) -> Instance:
    """The pipelines of the formats.json example: deb bookworm and sid, osi, rpm el8, foox."""
    for fmt, name, environment in [
        ("deb", "bookworm", "bookworm"),
        ("deb", "sid", "sid"),
        ("osi", "containers", ""),  # osi distributions have no build environment
        ("rpm", "el8", "rocky-8"),
    ]:
        PipelineDistributionFactory(
            instance=example_instance, format=fmt, name=name, environment=environment
        )
    PipelineDerivativeFactory(instance=example_instance, name="foox", formats=["deb", "rpm"])
    return example_instance


def _derivative(instance: Instance, fmt: str, distribution: str, name: str) -> RegistryDerivative:
    registry_format = RegistryFormatFactory(instance=instance, name=fmt)
    registry_distribution = RegistryDistributionFactory(format=registry_format, name=distribution)
    return RegistryDerivativeFactory(distribution=registry_distribution, name=name)


def _publish(derivative: RegistryDerivative, artifacts: list[dict], **extra: Any) -> dict:
    """Create Artifact rows from Artifact objects; returns them by (name, architecture)."""
    return {
        (a["name"], a["architecture"]): ArtifactFactory(derivative=derivative, **a, **extra)
        for a in artifacts
    }


def _get(client, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()


# --- Instances -----------------------------------------------------------------------------


def test_instances_example(anonymous_client, example_instance):
    InstanceFactory(id="prod", name="Production Fatbuildr Instance")
    # The documented body ends its array with a trailing comma (not valid JSON): written
    # here as the Python literal it means.
    expected = [
        {
            "id": "default",
            "name": "Default Fatbuildr Instance",
            "userid": "Maintainers <maintainers@example.org>",
        },
        {
            "id": "prod",
            "name": "Production Fatbuildr Instance",
            "userid": "Maintainers <maintainers@example.org>",
        },
    ]
    assert _get(anonymous_client, "/instances.json") == expected


def test_instance_example(anonymous_client, example_instance):
    InstanceFactory(id="prod", name="Production Fatbuildr Instance")
    assert _get(anonymous_client, "/default/instance.json") == {
        "id": "default",
        "name": "Default Fatbuildr Instance",
        "userid": "Maintainers <maintainers@example.org>",
    }


# --- Pipelines -----------------------------------------------------------------------------


def test_pipelines_architectures_example(anonymous_client, example_instance, settings):
    settings.FATBUILDR_HOST_ARCHITECTURE = "x86_64"
    assert _get(anonymous_client, "/default/pipelines/architectures.json") == ["x86_64", "arm64"]


def test_pipelines_architectures_host_first_without_duplicates(
    anonymous_client, example_instance, settings
):
    # compat §1.5: the host architecture always comes first, then the instance ones.
    settings.FATBUILDR_HOST_ARCHITECTURE = "x86_64"
    Instance.objects.filter(pk=example_instance.pk).update(architectures=["arm64", "x86_64"])
    assert _get(anonymous_client, "/default/pipelines/architectures.json") == ["x86_64", "arm64"]


RPM_EL8 = {"derivatives": ["main", "foox"], "distribution": "el8", "environment": "rocky-8"}


def test_pipelines_formats_example(anonymous_client, pipelines):
    expected = {
        "deb": [
            {
                "derivatives": ["main", "foox"],
                "distribution": "bookworm",
                "environment": "bookworm",
            },
            {"derivatives": ["main", "foox"], "distribution": "sid", "environment": "sid"},
        ],
        "osi": [{"derivatives": ["main"], "distribution": "containers", "environment": None}],
        "rpm": [RPM_EL8],
    }
    assert _get(anonymous_client, "/default/pipelines/formats.json") == expected


def test_pipelines_formats_format_filter_example(anonymous_client, pipelines):
    assert _get(anonymous_client, "/default/pipelines/formats.json?format=rpm") == {
        "rpm": [RPM_EL8]
    }


def test_pipelines_formats_distribution_filter_example(anonymous_client, pipelines):
    assert _get(anonymous_client, "/default/pipelines/formats.json?distribution=el8") == {
        "rpm": [RPM_EL8]
    }


def test_pipelines_formats_environment_filter(anonymous_client, pipelines):
    url = "/default/pipelines/formats.json"
    assert _get(anonymous_client, f"{url}?environment=rocky-8") == {"rpm": [RPM_EL8]}
    assert _get(anonymous_client, f"{url}?environment=sid") == {
        "deb": [{"derivatives": ["main", "foox"], "distribution": "sid", "environment": "sid"}]
    }


def test_pipelines_formats_derivative_filter(anonymous_client, pipelines):
    url = "/default/pipelines/formats.json"
    # foox supports deb and rpm only: osi disappears.
    assert set(_get(anonymous_client, f"{url}?derivative=foox")) == {"deb", "rpm"}
    assert set(_get(anonymous_client, f"{url}?derivative=main")) == {"deb", "osi", "rpm"}


def test_pipelines_formats_unknown_derivative_is_404(anonymous_client, pipelines):
    body = _get(anonymous_client, "/default/pipelines/formats.json?derivative=unknown", 404)
    assert body == {"error": "Derivative unknown is not supported"}


@pytest.mark.parametrize(
    "query",
    [
        "format=rpm&distribution=bookworm",
        "distribution=unknown",
        "format=foo",
        "environment=unknown",
        "derivative=foox&distribution=containers",
    ],
)
def test_pipelines_formats_matching_nothing_is_empty_object(anonymous_client, pipelines, query):
    # compat §1.5: no match at all is {} with 200; the client relies on it for "unknown".
    assert _get(anonymous_client, f"/default/pipelines/formats.json?{query}") == {}


# --- Registries ----------------------------------------------------------------------------


@pytest.fixture
def example_registry(example_instance: Instance) -> dict[str, RegistryDerivative]:
    """The registry layout of the examples: deb bullseye (foox, main), rpm el8 (main)."""
    # foox created before main: the API must still list main first.
    return {
        "deb/bullseye/foox": _derivative(example_instance, "deb", "bullseye", "foox"),
        "deb/bullseye/main": _derivative(example_instance, "deb", "bullseye", "main"),
        "rpm/el8/main": _derivative(example_instance, "rpm", "el8", "main"),
    }


def test_registry_formats_example(anonymous_client, example_registry):
    # The documented ["rpm","deb"] is an unsorted directory listing upstream (compat §1.5):
    # its order carries no meaning, and we answer sorted by name. Compare as sorted lists.
    assert sorted(_get(anonymous_client, "/default/registry.json")) == sorted(["rpm", "deb"])


def test_registry_format_distributions_example(anonymous_client, example_registry):
    assert _get(anonymous_client, "/default/registry/rpm.json") == ["el8"]


def test_registry_distribution_derivatives_example(anonymous_client, example_registry):
    assert _get(anonymous_client, "/default/registry/deb/bullseye.json") == ["main", "foox"]


def test_registry_derivative_artifacts_example(anonymous_client, example_registry):
    expected = [
        {"architecture": "noarch", "name": "fatbuildr", "size": 580300, "version": "0.1-1.deb11"},
        {
            "architecture": "noarch",
            "name": "fatbuildr-common",
            "size": 8824,
            "version": "0.1-1.deb11",
        },
        {
            "architecture": "x86_64",
            "name": "fatbuildr-wrappers",
            "size": 36364,
            "version": "0.1-1.deb11",
        },
        {
            "architecture": "x86_64",
            "name": "fatbuildr-wrappers-dbgsym",
            "size": 6320,
            "version": "0.1-1.deb11",
        },
        {"architecture": "src", "name": "fatbuildr", "size": 0, "version": "0.1-1.deb11"},
    ]
    # Published in reverse order, so the order of the answer is the API's own.
    _publish(example_registry["deb/bullseye/main"], list(reversed(expected)))
    # Another derivative's artifacts stay out.
    _publish(
        example_registry["deb/bullseye/foox"],
        [{"architecture": "noarch", "name": "foox", "size": 1, "version": "1-1"}],
    )
    assert _get(anonymous_client, "/default/registry/deb/bullseye/main.json") == expected


CHANGELOG = [
    {
        "author": "John Doe <john@doe.org>",
        "changes": ["Another Fatbuildr test build"],
        "date": 1655841969,
        "version": "0.1-2.deb11",
    },
    {
        "author": "John Doe <john@doe.org>",
        "changes": ["Fatbuildr test build"],
        "date": 1655838256,
        "version": "0.1-1.deb11",
    },
]

BINARIES = [
    {"architecture": "noarch", "name": "fatbuildr", "size": 587200, "version": "0.1-2.deb11"},
    {"architecture": "noarch", "name": "fatbuildr-common", "size": 10792, "version": "0.1-2.deb11"},
    {
        "architecture": "x86_64",
        "name": "fatbuildr-wrappers",
        "size": 13012,
        "version": "0.1-2.deb11",
    },
    {
        "architecture": "x86_64",
        "name": "fatbuildr-wrappers-dbgsym",
        "size": 5988,
        "version": "0.1-2.deb11",
    },
]

SOURCE = {"architecture": "src", "name": "fatbuildr", "size": 0, "version": "0.1-2.deb11"}

CONTENT = [
    {"path": "/usr", "size": 0, "type": "d"},
    {"path": "/usr/libexec", "size": 0, "type": "d"},
    {"path": "/usr/libexec/fatbuildr", "size": 0, "type": "d"},
    {"path": "/usr/libexec/fatbuildr/u-mkosi", "size": 14504, "type": "f"},
    {"path": "/usr/libexec/fatbuildr/u-nspawn", "size": 14504, "type": "f"},
    {"path": "/usr/share", "size": 0, "type": "d"},
    {"path": "/usr/share/doc", "size": 0, "type": "d"},
    {"path": "/usr/share/doc/fatbuildr-wrappers", "size": 0, "type": "d"},
    {"path": "/usr/share/doc/fatbuildr-wrappers/changelog.Debian.gz", "size": 271, "type": "f"},
    {"path": "/usr/share/doc/fatbuildr-wrappers/changelog.gz", "size": 6897, "type": "f"},
    {"path": "/usr/share/doc/fatbuildr-wrappers/copyright", "size": 53, "type": "f"},
]


@pytest.fixture
def published_fatbuildr(example_registry) -> dict:
    """fatbuildr 0.1-2.deb11 in deb bullseye main: the source, its binaries, changelogs and
    the content of fatbuildr-wrappers; plus an unrelated package beside them."""
    main = example_registry["deb/bullseye/main"]
    source = ArtifactFactory(derivative=main, **SOURCE)
    artifacts = _publish(main, list(reversed(BINARIES)), source=source)
    artifacts[("fatbuildr", "src")] = source
    hello = ArtifactFactory(
        derivative=main, name="hello", architecture="src", version="2.10-1", size=0
    )
    ArtifactFactory(
        derivative=main, name="hello", architecture="x86_64", version="2.10-1", source=hello
    )
    for artifact in (source, artifacts[("fatbuildr-wrappers", "x86_64")]):
        for position, entry in enumerate(CHANGELOG):
            ChangelogEntryFactory(artifact=artifact, position=position, **entry)
    ChangelogEntryFactory(artifact=hello, position=0, version="2.10-1")
    wrappers = artifacts[("fatbuildr-wrappers", "x86_64")]
    for entry in CONTENT:
        ContentEntryFactory(artifact=wrappers, **entry)
        ContentEntryFactory(artifact=artifacts[("fatbuildr-common", "noarch")])
    return artifacts


def test_source_artifact_description_example(anonymous_client, published_fatbuildr):
    expected = {"artifact": "fatbuildr", "binaries": BINARIES, "changelog": CHANGELOG}
    body = _get(anonymous_client, "/default/registry/deb/bullseye/main/src/fatbuildr.json")
    assert body == expected
    # compat §1.5: a source description has neither `source` nor `content`.
    assert "source" not in body
    assert "content" not in body


def test_binary_artifact_description_example(anonymous_client, published_fatbuildr):
    expected = {
        "artifact": "fatbuildr-wrappers",
        "changelog": CHANGELOG,
        "source": SOURCE,
        "content": CONTENT,
    }
    url = "/default/registry/deb/bullseye/main/x86_64/fatbuildr-wrappers.json"
    body = _get(anonymous_client, url)
    assert body == expected
    # compat §1.5: a binary description has no `binaries`.
    assert "binaries" not in body


def test_search_example(anonymous_client, example_registry):
    deb = [
        {"architecture": "noarch", "name": "fatbuildr", "size": 587200, "version": "0.1-1.deb11"},
        {
            "architecture": "noarch",
            "name": "fatbuildr-common",
            "size": 10792,
            "version": "0.1-1.deb11",
        },
        {
            "architecture": "x86_64",
            "name": "fatbuildr-wrappers",
            "size": 13012,
            "version": "0.1-1.deb11",
        },
        {
            "architecture": "x86_64",
            "name": "fatbuildr-wrappers-dbgsym",
            "size": 5988,
            "version": "0.1-1.deb11",
        },
        {"architecture": "src", "name": "fatbuildr", "size": 0, "version": "0.1-1.deb11"},
    ]
    rpm = [
        {"architecture": "noarch", "name": "fatbuildr", "size": 464556, "version": "0.1-1.el8"},
        {
            "architecture": "noarch",
            "name": "fatbuildr-common",
            "size": 8560,
            "version": "0.1-1.el8",
        },
        {
            "architecture": "x86_64",
            "name": "fatbuildr-wrappers",
            "size": 12748,
            "version": "0.1-1.el8",
        },
        {
            "architecture": "x86_64",
            "name": "fatbuildr-wrappers-dbgsym",
            "size": 9748,
            "version": "0.1-1.el8",
        },
        {"architecture": "src", "name": "fatbuildr", "size": 2166701, "version": "0.1-1.el8"},
    ]
    _publish(example_registry["deb/bullseye/main"], list(reversed(deb)))
    _publish(example_registry["rpm/el8/main"], list(reversed(rpm)))
    # Not matching: another name, a different case (the match is case-sensitive), and a
    # "fatbuildr" package of another instance.
    _publish(
        example_registry["deb/bullseye/main"],
        [
            {"architecture": "src", "name": "hello", "size": 0, "version": "2.10-1"},
            {"architecture": "noarch", "name": "Fatbuildr-doc", "size": 5, "version": "1"},
        ],
    )
    prod = InstanceFactory(id="prod")
    _publish(_derivative(prod, "deb", "bookworm", "main"), [deb[0]])

    expected = {"deb": {"bullseye": {"main": deb}}, "rpm": {"el8": {"main": rpm}}}
    assert _get(anonymous_client, "/default/search.json?artifact=fatbuildr") == expected


def test_search_without_hit_is_empty_object(anonymous_client, example_registry):
    _publish(
        example_registry["deb/bullseye/main"],
        [{"architecture": "src", "name": "hello", "size": 0, "version": "2.10-1"}],
    )
    assert _get(anonymous_client, "/default/search.json?artifact=fatbuildr") == {}


@pytest.mark.parametrize("query", ["", "?artifact=", "?other=fatbuildr"])
def test_search_without_artifact_is_400_error_object(anonymous_client, example_registry, query):
    # Upstream answers an HTML 400; compat §13 asks for the Error object on JSON routes.
    body = _get(anonymous_client, f"/default/search.json{query}", 400)
    assert list(body) == ["error"]
    assert isinstance(body["error"], str)
    assert body["error"]


# --- Registry error paths (compat §1.4) ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("registry/foo.json", "Format foo not supported by registries"),
        ("registry/foo/bullseye.json", "Format foo not supported by registries"),
        ("registry/foo/bullseye/main.json", "Format foo not supported by registries"),
        ("registry/foo/bullseye/main/src/fatbuildr.json", "Format foo not supported by registries"),
        ("registry/deb/stretch.json", "Distribution stretch not found in deb registry"),
        ("registry/deb/el8.json", "Distribution el8 not found in deb registry"),
        ("registry/rpm/bullseye.json", "Distribution bullseye not found in rpm registry"),
        ("registry/deb/stretch/main.json", "Distribution stretch not found in deb registry"),
        (
            "registry/deb/stretch/main/src/fatbuildr.json",
            "Distribution stretch not found in deb registry",
        ),
        (
            "registry/deb/bullseye/bar.json",
            "Derivative bar not found in deb registry for distribution bullseye",
        ),
        (
            "registry/rpm/el8/foox.json",
            "Derivative foox not found in rpm registry for distribution el8",
        ),
        (
            "registry/deb/bullseye/bar/src/fatbuildr.json",
            "Derivative bar not found in deb registry for distribution bullseye",
        ),
    ],
)
def test_registry_lookup_errors(anonymous_client, published_fatbuildr, path, message):
    assert _get(anonymous_client, f"/default/{path}", 404) == {"error": message}


@pytest.mark.parametrize(
    "path",
    [
        "main/x86_64/nope.json",
        "main/src/fatbuildr-wrappers.json",  # a binary asked as a source
        "main/arm64/fatbuildr-wrappers.json",  # not built for this architecture
        "foox/src/fatbuildr.json",  # published in main only
        # What fatbuildrctl's broken `registry delete` URL asks for (compat §2.8).
        "main/%7Bartifact.architecture%7D/%7Bartifact.name%7D.json",
    ],
)
def test_unknown_artifact_is_404_error_object(anonymous_client, published_fatbuildr, path):
    body = _get(anonymous_client, f"/default/registry/deb/bullseye/{path}", 404)
    assert list(body) == ["error"]
    assert isinstance(body["error"], str)
    assert body["error"]


# --- Tasks ---------------------------------------------------------------------------------

WS = "/var/lib/fatbuildr/workspaces/default"

# The documented bodies, verbatim but for null written None and the workspace root as WS.
RUNNING_EXAMPLE = {
    "architectures": ["x86_64"],
    "archives": [
        {"id": "fatbuildr", "path": "/var/cache/fatbuildr/default/fatbuildr/v1.1.0.tar.gz"},
        {
            "id": "bootstrap",
            "path": "/var/cache/fatbuildr/default/fatbuildr/bootstrap-5.2.3-dist.zip",
        },
    ],
    "artifact": "fatbuildr",
    "derivative": "main",
    "distribution": "bullseye",
    "email": "john.doe@example.org",
    "format": "deb",
    "id": "c8c9935e-44c9-48de-a318-b6060c08b8c8",
    "io": {
        "console": f"{WS}/c8c9935e-44c9-48de-a318-b6060c08b8c8/console.sock",
        "interactive": None,
        "journal": {"path": f"{WS}/c8c9935e-44c9-48de-a318-b6060c08b8c8/task.journal"},
    },
    "message": "Test of new feature",
    "name": "artifact build",
    "place": f"{WS}/c8c9935e-44c9-48de-a318-b6060c08b8c8",
    "state": "running",
    "submission": 1656074753,
    "user": "John Doe",
}

QUEUE_EXAMPLE = [
    {
        "architectures": ["x86_64"],
        "archives": [],
        "artifact": "fatbuildr",
        "derivative": "main",
        "distribution": "bullseye",
        "email": "john.doe@example.org",
        "format": "deb",
        "id": "604a1348-dd3a-4082-b78d-78563c728bef",
        "io": {
            "console": f"{WS}/604a1348-dd3a-4082-b78d-78563c728bef/console.sock",
            "interactive": None,
            "journal": {"path": f"{WS}/604a1348-dd3a-4082-b78d-78563c728bef/task.journal"},
        },
        "message": "Test of new feature on Debian bullseye",
        "name": "artifact build",
        "place": f"{WS}/604a1348-dd3a-4082-b78d-78563c728bef",
        "state": "pending",
        "submission": 1656075042,
        "user": "John Doe",
    },
    {
        "architectures": ["x86_64"],
        "archives": [],
        "artifact": "fatbuildr",
        "derivative": "main",
        "distribution": "bookworm",
        "email": "john.doe@example.org",
        "format": "deb",
        "id": "ace984e3-4d5b-4aa1-a2ba-5997ea6ae7e6",
        "io": {
            "console": f"{WS}/ace984e3-4d5b-4aa1-a2ba-5997ea6ae7e6/console.sock",
            "interactive": None,
            "journal": {"path": f"{WS}/ace984e3-4d5b-4aa1-a2ba-5997ea6ae7e6/task.journal"},
        },
        "message": "Test of new feature on Debian bookworm",
        "name": "artifact build",
        "place": f"{WS}/ace984e3-4d5b-4aa1-a2ba-5997ea6ae7e6",
        "state": "pending",
        "submission": 1656075042,
        "user": "John Doe",
    },
]

# The tasks/{id}.json example is the running one, archived.
TASK_EXAMPLE = {**RUNNING_EXAMPLE, "state": "finished"}


def with_documented_deviations(example: dict, *, result: str, author: str) -> dict:
    """The documented task body as real clients need it (compat §2.5).

    The reference omits `result` (a base field of every task) and the build
    `author`, and shows `"interactive": null`: fatbuildrctl reads every field of
    the task type and asserts none is null, so our task JSON carries `result`,
    `author` and a boolean `interactive` (false: HTTP tasks are never interactive).
    """
    expected = copy.deepcopy(example)
    expected["result"] = result
    expected["author"] = author
    expected["io"]["interactive"] = False
    return expected


def _task_from_example(instance: Instance, example: dict, **fields: Any) -> Task:
    """A Task row with the documented id, fields and submission time."""
    task = TaskFactory(
        instance=instance,
        id=example["id"],
        name=example["name"],
        user=example["user"],
        author=example["user"],
        state=example["state"],
        place=f"{WS}/{example['id']}",
        format=example["format"],
        distribution=example["distribution"],
        derivative=example["derivative"],
        artifact=example["artifact"],
        architectures=example["architectures"],
        archives=example["archives"],
        email=example["email"],
        message=example["message"],
        **fields,
    )
    # `submission` is auto_now_add: set the documented time afterwards.
    Task.objects.filter(pk=task.pk).update(
        submission=datetime.fromtimestamp(example["submission"], tz=UTC)
    )
    return task


def test_running_example(anonymous_client, example_instance):
    _task_from_example(example_instance, RUNNING_EXAMPLE)
    # Neither pending nor finished tasks are "running".
    _task_from_example(example_instance, QUEUE_EXAMPLE[0])
    TaskFactory(instance=example_instance, state=TaskState.FINISHED, result=TaskResult.SUCCESS)
    expected = with_documented_deviations(RUNNING_EXAMPLE, result="unknown", author="John Doe")
    assert _get(anonymous_client, "/default/running.json") == expected


def test_running_is_null_when_idle(anonymous_client, example_instance):
    _task_from_example(example_instance, QUEUE_EXAMPLE[0])
    TaskFactory(instance=example_instance, state=TaskState.FINISHED, result=TaskResult.SUCCESS)
    # A running task of another instance does not count.
    TaskFactory(instance=InstanceFactory(id="prod"), state=TaskState.RUNNING)
    response = anonymous_client.get("/default/running.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.content == b"null\n"


def test_queue_example(anonymous_client, example_instance):
    # Both share one submission time, as in the example: the queue follows submission order.
    for example in QUEUE_EXAMPLE:
        _task_from_example(example_instance, example)
    _task_from_example(example_instance, RUNNING_EXAMPLE)  # running tasks are not queued
    TaskFactory(instance=example_instance, state=TaskState.FINISHED, result=TaskResult.FAILED)
    expected = [
        with_documented_deviations(example, result="unknown", author="John Doe")
        for example in QUEUE_EXAMPLE
    ]
    assert _get(anonymous_client, "/default/queue.json") == expected


def test_queue_is_fifo(anonymous_client, example_instance):
    first, second = QUEUE_EXAMPLE
    _task_from_example(example_instance, second)
    _task_from_example(example_instance, {**first, "submission": second["submission"] + 10})
    ids = [task["id"] for task in _get(anonymous_client, "/default/queue.json")]
    assert ids == [second["id"], first["id"]]


def test_task_example(anonymous_client, example_instance):
    _task_from_example(example_instance, TASK_EXAMPLE, result=TaskResult.SUCCESS)
    expected = with_documented_deviations(TASK_EXAMPLE, result="success", author="John Doe")
    url = "/default/tasks/c8c9935e-44c9-48de-a318-b6060c08b8c8.json"
    assert _get(anonymous_client, url) == expected


@pytest.mark.parametrize(
    "task_id",
    [
        "c8c9935e-44c9-48de-a318-b6060c08b8c8",
        "not-a-uuid",
        # Known, but on another instance.
        "604a1348-dd3a-4082-b78d-78563c728bef",
    ],
)
def test_unknown_task_is_404(anonymous_client, example_instance, task_id):
    _task_from_example(InstanceFactory(id="prod"), QUEUE_EXAMPLE[0])
    body = _get(anonymous_client, f"/default/tasks/{task_id}.json", 404)
    assert body == {"error": f"Unable to find task {task_id} on server"}


@pytest.mark.parametrize(
    "state", [TaskState.PENDING, TaskState.RUNNING, TaskState.FINISHED], ids=str
)
def test_task_served_in_every_state(anonymous_client, example_instance, state):
    # compat §1.5: the lookup covers pending, running and archived tasks.
    task = TaskFactory(instance=example_instance, state=state, name=TaskName.ARTIFACT_BUILD)
    body = _get(anonymous_client, f"/default/tasks/{task.id}.json")
    assert (body["id"], body["state"]) == (str(task.id), state)


# --- Keyring -------------------------------------------------------------------------------


def test_keyring_not_available(anonymous_client, example_instance):
    response = anonymous_client.get("/default/keyring.asc")
    assert response.status_code == 404
    assert response.json() == {"error": "No keyring available on this instance"}

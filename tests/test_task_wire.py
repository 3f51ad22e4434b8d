"""Task JSON as fatbuildrctl rebuilds it: every task the API emits must survive the client.

`parse_task_like_fatbuildrctl` re-implements the strict rules of compat §2.5
independently of `tasks.wire` (its field table is copied from the spec, not
imported), so a field dropped or nulled on our side makes these tests fail.
"""

import copy
import uuid
from typing import Any

import pytest

from instances.models import Instance
from tasks.models import TaskName, TaskResult, TaskState
from tests.factories import InstanceFactory, TaskFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("multi_mode")]


# --- The client-side parser (compat §2.5) --------------------------------------------------

BASE_FIELDS = ("id", "user", "name", "submission", "place", "state", "result", "io")

# compat §2.5 table: the type-specific fields of the 11 upstream task names.
UPSTREAM_TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "artifact build": (
        "format",
        "distribution",
        "architectures",
        "archives",
        "derivative",
        "artifact",
        "author",
        "email",
        "message",
    ),
    "artifact deletion": ("format", "distribution", "derivative", "artifact"),
    "keyring creation": (),
    "keyring renewal": ("duration",),
    "history purge": (),
    "image creation": ("format", "force"),
    "image update": ("format",),
    "image shell": ("format", "term", "command"),
    "image build environment creation": ("format", "environment", "architecture"),
    "image build environment update": ("format", "environment", "architecture"),
    "image build environment shell": ("format", "environment", "architecture", "term", "command"),
}


class ClientCrash(Exception):
    """fatbuildrctl would crash (KeyError, AssertionError, TypeError...) on this task JSON."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ClientCrash(message)


def _reject_nulls(value: Any, where: str) -> None:
    """`ExportableField.native()` asserts every value is not None, nested ones included."""
    _require(value is not None, f"{where} is null")
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_nulls(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_nulls(item, f"{where}[{index}]")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def parse_task_like_fatbuildrctl(data: Any) -> dict[str, Any]:
    """Check *data* under the rules of compat §2.5; raise ClientCrash where the client would.

    Returns the fields the client reads (extra top-level keys are ignored by it).
    """
    _require(isinstance(data, dict), "task is not an object")
    name = data.get("name")
    _require(isinstance(name, str) and name in UPSTREAM_TYPE_FIELDS, f"unknown task name {name!r}")
    fields = BASE_FIELDS + UPSTREAM_TYPE_FIELDS[name]
    for field in fields:
        _require(field in data, f"missing field {field}")
    # Stricter than "the fields read": no null anywhere in what we send.
    _reject_nulls(data, "task")

    # Base fields.
    _require(isinstance(data["id"], str), "id is not a string")
    try:
        uuid.UUID(data["id"])
    except ValueError as error:
        raise ClientCrash(f"id {data['id']!r} is not a uuid") from error
    for field in ("user", "state", "result", "place"):
        _require(isinstance(data[field], str), f"{field} is not a string")
    # datetime.fromtimestamp(value): epoch seconds as a JSON number.
    _require(_is_int(data["submission"]), "submission is not an integer")
    io = data["io"]
    _require(isinstance(io, dict), "io is not an object")
    for key in ("console", "interactive", "journal"):
        _require(key in io, f"missing field io.{key}")
    _require(isinstance(io["console"], str), "io.console is not a string")
    _require(isinstance(io["interactive"], bool), "io.interactive is not a boolean")
    _require(isinstance(io["journal"], dict), "io.journal is not an object")
    _require("path" in io["journal"], "missing field io.journal.path")
    _require(isinstance(io["journal"]["path"], str), "io.journal.path is not a string")

    # Type-specific fields.
    for field in UPSTREAM_TYPE_FIELDS[name]:
        value = data[field]
        if field == "archives":
            _require(isinstance(value, list), "archives is not a list")
            for item in value:
                # ArtifactSourceArchive(**item): exactly id and path.
                _require(
                    isinstance(item, dict) and set(item) == {"id", "path"},
                    f"archives item {item!r} does not have exactly the keys id and path",
                )
                _require(
                    isinstance(item["id"], str) and isinstance(item["path"], str),
                    "archives item values are not strings",
                )
        elif field in ("architectures", "command"):
            _require(_is_str_list(value), f"{field} is not a list of strings")
        elif field == "force":
            _require(isinstance(value, bool), "force is not a boolean")
        elif field == "artifact" and name == "artifact deletion":
            _require(isinstance(value, dict), "deletion artifact is not an object")
            for key in ("name", "architecture", "version", "size"):
                _require(key in value, f"missing field artifact.{key}")
            for key in ("name", "architecture", "version"):
                _require(isinstance(value[key], str), f"artifact.{key} is not a string")
            _require(_is_int(value["size"]), "artifact.size is not an integer")
        else:
            _require(isinstance(value, str), f"{field} is not a string")
    return {field: data[field] for field in fields}


# --- The parser itself ---------------------------------------------------------------------

# compat §2.5: "Example of a complete task JSON the client accepts [observed]".
ACCEPTED_BUILD = {
    "architectures": ["x86_64"],
    "archives": [{"id": "hello", "path": "/var/cache/fatbuildr/default/hello/hello-2.10.tar.gz"}],
    "artifact": "hello",
    "author": "John Doe",
    "derivative": "main",
    "distribution": "bookworm",
    "email": "john@doe.org",
    "format": "deb",
    "id": "c8c9935e-44c9-48de-a318-b6060c08b8c8",
    "io": {
        "console": "/var/lib/fatbuildr/workspaces/default/c8c9935e/console.sock",
        "interactive": False,
        "journal": {"path": "/var/lib/fatbuildr/workspaces/default/c8c9935e/task.journal"},
    },
    "message": "Test build",
    "name": "artifact build",
    "place": "/var/lib/fatbuildr/workspaces/default/c8c9935e",
    "result": "unknown",
    "state": "running",
    "submission": 1656074753,
    "user": "john",
}

ACCEPTED_DELETION = {
    **{key: ACCEPTED_BUILD[key] for key in BASE_FIELDS},
    "name": "artifact deletion",
    "format": "deb",
    "distribution": "bookworm",
    "derivative": "main",
    "artifact": {"name": "hello", "architecture": "src", "version": "2.10-1", "size": 0},
}


def _mutated(base: dict, path: tuple, value: Any = ..., *, delete: bool = False) -> dict:
    data = copy.deepcopy(base)
    target = data
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


def test_parser_accepts_the_documented_client_example():
    assert parse_task_like_fatbuildrctl(ACCEPTED_BUILD)["name"] == "artifact build"
    assert parse_task_like_fatbuildrctl(ACCEPTED_DELETION)["artifact"]["size"] == 0


def test_parser_ignores_extra_top_level_keys():
    parsed = parse_task_like_fatbuildrctl({**ACCEPTED_BUILD, "started": 1656074760})
    assert "started" not in parsed
    assert parsed == parse_task_like_fatbuildrctl(ACCEPTED_BUILD)


@pytest.mark.parametrize(
    ("base", "path", "value"),
    [
        (ACCEPTED_BUILD, ("user",), None),
        (ACCEPTED_BUILD, ("message",), None),
        (ACCEPTED_BUILD, ("io", "console"), None),
        (ACCEPTED_BUILD, ("io", "interactive"), None),
        (ACCEPTED_BUILD, ("io", "journal", "path"), None),
        (ACCEPTED_BUILD, ("archives",), [{"id": "hello", "path": None}]),
        (ACCEPTED_DELETION, ("artifact", "size"), None),
        (ACCEPTED_BUILD, ("submission",), "1656074753"),
        (ACCEPTED_BUILD, ("submission",), "2022-06-24T12:45:53"),
        (ACCEPTED_BUILD, ("submission",), True),
        (ACCEPTED_BUILD, ("place",), 42),
        (ACCEPTED_BUILD, ("io", "interactive"), 0),
        (ACCEPTED_BUILD, ("archives",), [{"id": "hello", "path": "/x", "sha256": "00"}]),
        (ACCEPTED_BUILD, ("archives",), [{"id": "hello"}]),
        (ACCEPTED_BUILD, ("architectures",), "x86_64"),
        (ACCEPTED_BUILD, ("name",), "build"),
        (ACCEPTED_BUILD, ("id",), "42"),
        (ACCEPTED_DELETION, ("artifact",), "hello"),
        (ACCEPTED_DELETION, ("artifact", "size"), "0"),
    ],
)
def test_parser_rejects_bad_values(base, path, value):
    with pytest.raises(ClientCrash):
        parse_task_like_fatbuildrctl(_mutated(base, path, value))


@pytest.mark.parametrize(
    ("base", "path"),
    [
        (ACCEPTED_BUILD, ("result",)),
        (ACCEPTED_BUILD, ("author",)),
        (ACCEPTED_BUILD, ("submission",)),
        (ACCEPTED_BUILD, ("io", "journal")),
        (ACCEPTED_DELETION, ("derivative",)),
        (ACCEPTED_DELETION, ("artifact", "version")),
    ],
)
def test_parser_rejects_missing_fields(base, path):
    with pytest.raises(ClientCrash):
        parse_task_like_fatbuildrctl(_mutated(base, path, delete=True))


def test_parser_rejects_the_reference_task_example():
    # The REST reference example (no result, no author, "interactive": null) would crash
    # the client: this is why our task JSON deviates from it.
    documented = {key: value for key, value in ACCEPTED_BUILD.items() if key != "result"}
    del documented["author"]
    documented["io"] = {**documented["io"], "interactive": None}
    with pytest.raises(ClientCrash):
        parse_task_like_fatbuildrctl(documented)


def test_upstream_names_are_our_task_names():
    assert set(UPSTREAM_TYPE_FIELDS) == set(TaskName.values)


# --- What the API emits --------------------------------------------------------------------


@pytest.fixture
def default_row() -> Instance:
    """A bare Instance row called "default" (no pipelines, unlike default_instance)."""
    return InstanceFactory(id="default")


STATES = [
    (TaskState.PENDING, TaskResult.UNKNOWN),
    (TaskState.RUNNING, TaskResult.UNKNOWN),
    (TaskState.FINISHED, TaskResult.SUCCESS),
    (TaskState.FINISHED, TaskResult.FAILED),
    (TaskState.FINISHED, TaskResult.CANCELED),
]


def _json(client, url: str) -> Any:
    response = client.get(url)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize(("state", "result"), STATES, ids=lambda v: str(v))
@pytest.mark.parametrize("name", TaskName.values)
def test_emitted_tasks_pass_the_client_parser(anonymous_client, default_row, name, state, result):
    # Factory defaults only (for deletions, the artifact size stays at its default).
    task = TaskFactory(instance=default_row, name=name, state=state, result=result)
    emitted = [_json(anonymous_client, f"/default/tasks/{task.id}.json")]
    running = _json(anonymous_client, "/default/running.json")
    queue = _json(anonymous_client, "/default/queue.json")
    if state == TaskState.RUNNING:
        emitted.append(running)
    else:
        assert running is None
    if state == TaskState.PENDING:
        assert len(queue) == 1
        emitted += queue
    else:
        assert queue == []
    for data in emitted:
        parsed = parse_task_like_fatbuildrctl(data)
        assert parsed["id"] == str(task.id)
        assert (parsed["name"], parsed["state"], parsed["result"]) == (name, state, result)


@pytest.mark.parametrize("name", TaskName.values)
def test_emitted_tasks_pass_the_parser_with_build_values(anonymous_client, default_row, name):
    # Non-default values where a type has structured fields: archives, command, size.
    task = TaskFactory(
        instance=default_row,
        name=name,
        state=TaskState.RUNNING,
        archives=[
            {"id": "fatbuildr", "path": "/var/cache/fatbuildr/default/fatbuildr/v1.1.0.tar.gz"}
        ],
        architectures=["x86_64", "arm64"],
        command=["/bin/bash", "-c", "true"],
        term="xterm",
        artifact_architecture="src",
        artifact_version="0.1-1.deb11",
        artifact_size=2166701,
        force=True,
        environment="bookworm",
        architecture="x86_64",
        duration="2y",
    )
    data = _json(anonymous_client, "/default/running.json")
    parsed = parse_task_like_fatbuildrctl(data)
    assert parsed["id"] == str(task.id)
    if name == TaskName.ARTIFACT_DELETION:
        assert parsed["artifact"] == {
            "name": "fatbuildr",
            "architecture": "src",
            "version": "0.1-1.deb11",
            "size": 2166701,
        }

"""Loading Fatbuildr instance files (compat §10): instances.services.load_instance_file and the
`instances` management command; the shipped default instance.
"""

import io
from dataclasses import replace

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from instances.instance_files import parse_instance_file
from instances.models import Instance, PipelineDerivative, PipelineDistribution
from instances.selectors import get_pipelines
from instances.services import load_instance_file
from tasks.models import Task, TaskName
from tests.instance_yaml import (
    DEFAULT_FILE,
    DEFAULT_YAML,
    VALID_YAML,
    formats_json,
    snapshot,
    write,
)

# --- the shipped default instance -------------------------------------------------------------


def test_shipped_default_file_is_the_documented_one(tmp_path):
    """DEFAULT_YAML, used to edit "the default file" below, says what the shipped file says."""
    shipped = parse_instance_file(DEFAULT_FILE)
    copy = parse_instance_file(write(tmp_path, "default", DEFAULT_YAML))
    assert replace(shipped, source_file="") == replace(copy, source_file="")


def test_default_file_loads(db, anonymous_client, multi_mode):
    instance, outcome = load_instance_file(path=DEFAULT_FILE)
    assert outcome == "created"
    assert instance.id == "default"
    assert instance.name == "Default Fatbuildr Instance"
    assert instance.userid == "Maintainers <maintainers@example.org>"
    assert instance.formats == ["deb", "rpm"]
    assert instance.source_file == str(DEFAULT_FILE.resolve())

    pipelines = get_pipelines(instance)
    assert [(d.format, d.name, d.environment, d.tag) for d in pipelines.distributions] == [
        ("deb", "bookworm", "bookworm", "deb12"),
        ("rpm", "el8", "rocky-8", "el8"),
    ]
    assert pipelines.derivative_names() == ["main", "foox"]

    assert formats_json(anonymous_client, "default") == {
        "deb": [
            {"distribution": "bookworm", "environment": "bookworm", "derivatives": ["main", "foox"]}
        ],
        "rpm": [{"distribution": "el8", "environment": "rocky-8", "derivatives": ["main", "foox"]}],
    }
    assert anonymous_client.get("/instances.json").json() == [
        {
            "id": "default",
            "name": "Default Fatbuildr Instance",
            "userid": "Maintainers <maintainers@example.org>",
        }
    ]
    architectures = anonymous_client.get("/default/pipelines/architectures.json").json()
    assert architectures[0] == settings.FATBUILDR_HOST_ARCHITECTURE
    assert architectures == list(dict.fromkeys([settings.FATBUILDR_HOST_ARCHITECTURE, "x86_64"]))


def test_loading_twice_is_unchanged_and_writes_nothing(db):
    instance, outcome = load_instance_file(path=DEFAULT_FILE)
    assert outcome == "created"
    before = snapshot("default")
    with CaptureQueriesContext(connection) as captured:
        again, outcome = load_instance_file(path=DEFAULT_FILE)
    assert outcome == "unchanged"
    writes = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    assert writes == []
    after = snapshot("default")
    assert after == before
    assert after["instance"][0]["updated_at"] == before["instance"][0]["updated_at"]
    assert again.token_key == instance.token_key


def test_editing_the_file_updates_the_instance(db, tmp_path, anonymous_client, multi_mode):
    path = write(tmp_path, "default", DEFAULT_YAML)
    instance, outcome = load_instance_file(path=path)
    assert outcome == "created"
    token_key = instance.token_key
    before = snapshot("default")["instance"][0]

    edited = (
        DEFAULT_YAML.replace("maintainers@example.org", "builders@example.org")
        .replace(
            "      tag: deb12\n",
            "      tag: deb12\n    - name: trixie\n      env: trixie\n      tag: deb13\n",
        )
        .split("derivatives:")[0]
    )
    path.write_text(edited, encoding="utf-8")
    instance, outcome = load_instance_file(path=path)
    assert outcome == "updated"

    after = snapshot("default")["instance"][0]
    assert after["updated_at"] > before["updated_at"]
    assert after["token_key"] == token_key
    assert list(
        PipelineDerivative.objects.filter(instance=instance).values_list("name", flat=True)
    ) == ["main"]

    response = anonymous_client.get("/default/instance.json")
    assert response.json()["userid"] == "Maintainers <builders@example.org>"
    assert formats_json(anonymous_client, "default") == {
        "deb": [
            {"distribution": "bookworm", "environment": "bookworm", "derivatives": ["main"]},
            {"distribution": "trixie", "environment": "trixie", "derivatives": ["main"]},
        ],
        "rpm": [{"distribution": "el8", "environment": "rocky-8", "derivatives": ["main"]}],
    }
    response = anonymous_client.get("/default/pipelines/formats.json", {"derivative": "foox"})
    assert response.status_code == 404
    assert response.json() == {"error": "Derivative foox is not supported"}

    # Back to the original file: foox comes back, trixie goes, the key still stays.
    path.write_text(DEFAULT_YAML, encoding="utf-8")
    instance, outcome = load_instance_file(path=path)
    assert outcome == "updated"
    assert Instance.objects.get(pk="default").token_key == token_key
    assert list(
        PipelineDistribution.objects.filter(instance=instance).values_list("name", flat=True)
    ) == ["bookworm", "el8"]
    assert formats_json(anonymous_client, "default", derivative="foox") == {
        "deb": [
            {"distribution": "bookworm", "environment": "bookworm", "derivatives": ["main", "foox"]}
        ],
        "rpm": [{"distribution": "el8", "environment": "rocky-8", "derivatives": ["main", "foox"]}],
    }


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("name: Default Fatbuildr Instance", "name: Renamed"),
        ("  name: Maintainers", "  name: Builders"),
        ("  - x86_64", "  - aarch64"),
        ("      tag: deb12", "      tag: debian12"),
        ("      env: rocky-8", "      env: rocky-8.9"),
        ("    formats: [deb, rpm]", "    formats: [rpm]"),
        ("    formats: [deb, rpm]", "    extends: main"),  # no formats: all of main's
    ],
)
def test_any_edit_is_an_update(db, tmp_path, old, new):
    path = write(tmp_path, "default", DEFAULT_YAML)
    load_instance_file(path=path)
    before = snapshot("default")
    assert old in DEFAULT_YAML
    path.write_text(DEFAULT_YAML.replace(old, new), encoding="utf-8")
    _, outcome = load_instance_file(path=path)
    assert outcome == "updated"
    after = snapshot("default")
    assert after != before
    assert after["instance"][0]["token_key"] == before["instance"][0]["token_key"]
    _, outcome = load_instance_file(path=path)
    assert outcome == "unchanged"


def test_reordering_distributions_and_derivatives_is_an_update(db, tmp_path, anonymous_client):
    path = write(
        tmp_path,
        "order",
        """\
        name: Order
        gpg: {name: M, email: m@example.org}
        formats:
          deb:
            - {name: bookworm, env: bookworm, tag: deb12}
            - {name: trixie, env: trixie, tag: deb13}
        derivatives:
          alpha: {}
          beta: {}
        """,
    )
    load_instance_file(path=path)
    text = path.read_text()
    path.write_text(
        text.replace("bookworm", "TMP")
        .replace("trixie", "bookworm")
        .replace("TMP", "trixie")
        .replace("deb12", "TMP")
        .replace("deb13", "deb12")
        .replace("TMP", "deb13")
        .replace("alpha", "TMP")
        .replace("beta", "alpha")
        .replace("TMP", "beta")
    )
    _, outcome = load_instance_file(path=path)
    assert outcome == "updated"
    listing = formats_json(anonymous_client, "order")
    assert [item["distribution"] for item in listing["deb"]] == ["trixie", "bookworm"]
    assert listing["deb"][0]["derivatives"] == ["main", "beta", "alpha"]


def test_token_key_is_kept_across_reloads(db, tmp_path):
    path = write(tmp_path, "keep", VALID_YAML)
    instance, _ = load_instance_file(path=path)
    key = instance.token_key
    assert len(key) == 64
    for text in (VALID_YAML.replace("Test instance", "Other"), VALID_YAML):
        path.write_text(text)
        load_instance_file(path=path)
        assert Instance.objects.get(pk="keep").token_key == key
    # Another instance gets its own key.
    other, _ = load_instance_file(path=write(tmp_path, "other", VALID_YAML))
    assert other.token_key != key


def test_instances_are_independent(db, tmp_path, anonymous_client):
    load_instance_file(path=write(tmp_path, "one", VALID_YAML))
    load_instance_file(path=write(tmp_path, "two", VALID_YAML.split("derivatives:")[0]))
    assert formats_json(anonymous_client, "one")["deb"][0]["derivatives"] == ["main", "foox"]
    assert formats_json(anonymous_client, "two")["deb"][0]["derivatives"] == ["main"]
    ids = [i["id"] for i in anonymous_client.get("/instances.json").json()]
    assert ids == ["one", "two"]


# --- management command -----------------------------------------------------------------------


def test_command_prints_each_outcome(db, tmp_path):
    path = write(tmp_path, "cmd", VALID_YAML)
    out = io.StringIO()
    call_command("instances", "load", str(path), stdout=out)
    keyring = Task.objects.get(instance_id="cmd", name=TaskName.KEYRING_CREATION)
    assert out.getvalue() == (
        f"instance cmd: created from {path}\n"
        f"instance cmd: keyring creation queued (task {keyring.pk})\n"
    )
    out = io.StringIO()
    call_command("instances", "load", str(path), stdout=out)
    assert out.getvalue() == f"instance cmd: unchanged from {path}\n"
    path.write_text(VALID_YAML.replace("Test instance", "Renamed"))
    out = io.StringIO()
    call_command("instances", "load", str(path), stdout=out)
    assert out.getvalue() == f"instance cmd: updated from {path}\n"

    out = io.StringIO()
    call_command("instances", "list", stdout=out)
    assert out.getvalue() == "cmd\tRenamed\tMaintainers <maintainers@example.org>\n"


def test_command_with_an_invalid_file_fails_naming_file_and_key(db, tmp_path):
    good = write(tmp_path, "good", VALID_YAML)
    bad = write(tmp_path, "bad", VALID_YAML.replace("email: maintainers@example.org", "mail: x"))
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="1 instance file"):
        call_command("instances", "load", str(bad), str(good), stdout=out, stderr=err)
    assert f"{bad}: gpg.email: is required" in err.getvalue()
    # The valid file given alongside is still loaded.
    assert out.getvalue().startswith(f"instance good: created from {good}\n")
    assert list(Instance.objects.values_list("id", flat=True)) == ["good"]


def test_command_with_a_missing_file_fails(db, tmp_path):
    missing = tmp_path / "absent.yml"
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("instances", "load", str(missing), stderr=err)
    assert f"{missing}: cannot be read" in err.getvalue()
    assert not Instance.objects.exists()

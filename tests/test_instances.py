"""Loading Fatbuildr instance files (compat §10) and the pipelines they describe.

We follow the documented semantics: a derivative without `formats` supports
every format of its parent, `formats` intersects with the parent's formats
recursively, and `main` is implicit.
"""

import io
import shutil
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from instances.instance_files import InstanceFileError, parse_instance_file
from instances.models import Instance, PipelineDerivative, PipelineDistribution
from instances.selectors import get_pipelines
from instances.services import load_instance_file
from tasks.models import Task, TaskName
from tests.conftest import REPO_ROOT

DEFAULT_FILE = REPO_ROOT / "instance-files" / "default.yml"

DEFAULT_YAML = """\
name: Default Fatbuildr Instance
gpg:
  name: Maintainers
  email: maintainers@example.org
architectures:
  - x86_64
formats:
  deb:
    - name: bookworm
      env: bookworm
      tag: deb12
  rpm:
    - name: el8
      env: rocky-8
      tag: el8
derivatives:
  foox:
    formats: [deb, rpm]
"""

# A valid file the error cases below break one key at a time.
VALID_YAML = """\
name: Test instance
gpg:
  name: Maintainers
  email: maintainers@example.org
formats:
  deb:
    - name: bookworm
      env: bookworm
      tag: deb12
  rpm:
    - name: el8
      env: rocky-8
      tag: el8
  osi:
    - name: containers
derivatives:
  foox:
    formats: [deb]
"""


def write(directory: Path, stem: str, text: str) -> Path:
    path = directory / f"{stem}.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def snapshot(instance_id: str) -> dict:
    """Every stored value of an instance and its pipelines, primary keys included."""
    return {
        "instance": list(Instance.objects.filter(pk=instance_id).values()),
        "distributions": list(
            PipelineDistribution.objects.filter(instance_id=instance_id).order_by("pk").values()
        ),
        "derivatives": list(
            PipelineDerivative.objects.filter(instance_id=instance_id).order_by("pk").values()
        ),
    }


def formats_json(client, instance_id: str, **params) -> dict:
    response = client.get(f"/{instance_id}/pipelines/formats.json", params)
    assert response.status_code == 200, response.content
    return response.json()


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


# --- invalid files ----------------------------------------------------------------------------

INVALID_FILES = {
    # id: (file stem, content, expected key, expected message part)
    "yaml-syntax": ("bad", "name: [unclosed\ngpg: {name: M\n", "", "invalid YAML"),
    "not-a-mapping": ("bad", "- name: x\n- gpg: y\n", "", "must be a YAML mapping"),
    "empty-file": ("bad", "", "", "must be a YAML mapping"),
    "unknown-top-level-key": ("bad", VALID_YAML + "colour: blue\n", "colour", "unknown key"),
    "missing-name": ("bad", VALID_YAML.replace("name: Test instance\n", ""), "name", "required"),
    "empty-name": (
        "bad",
        VALID_YAML.replace("name: Test instance", "name: ''"),
        "name",
        "required",
    ),
    "missing-gpg": (
        "bad",
        VALID_YAML.replace("gpg:\n  name: Maintainers\n  email: maintainers@example.org\n", ""),
        "gpg",
        "mapping",
    ),
    "missing-gpg-email": (
        "bad",
        VALID_YAML.replace("  email: maintainers@example.org\n", ""),
        "gpg.email",
        "required",
    ),
    "missing-gpg-name": (
        "bad",
        VALID_YAML.replace("  name: Maintainers\n", ""),
        "gpg.name",
        "required",
    ),
    "invalid-email": (
        "bad",
        VALID_YAML.replace("maintainers@example.org", "maintainers.example.org"),
        "gpg.email",
        "not an email address",
    ),
    "invalid-email-domain": (
        "bad",
        VALID_YAML.replace("maintainers@example.org", "maintainers@example"),
        "gpg.email",
        "not an email address",
    ),
    "architectures-not-a-list": (
        "bad",
        VALID_YAML + "architectures: x86_64\n",
        "architectures",
        "must be a list",
    ),
    "missing-formats": ("bad", VALID_YAML.split("formats:")[0], "formats", "must be a mapping"),
    "unknown-format": (
        "bad",
        VALID_YAML.replace("  osi:\n", "  foo:\n"),
        "formats.foo",
        "unknown format 'foo'",
    ),
    "distributions-not-a-list": (
        "bad",
        VALID_YAML.replace("  osi:\n    - name: containers\n", "  osi: containers\n"),
        "formats.osi",
        "must be a list",
    ),
    "deb-missing-env": (
        "bad",
        VALID_YAML.replace("      env: bookworm\n", ""),
        "formats.deb[0].env",
        "is required",
    ),
    "deb-missing-tag": (
        "bad",
        VALID_YAML.replace("      tag: deb12\n", ""),
        "formats.deb[0].tag",
        "is required",
    ),
    "rpm-missing-env": (
        "bad",
        VALID_YAML.replace("      env: rocky-8\n", ""),
        "formats.rpm[0].env",
        "is required",
    ),
    "rpm-missing-tag": (
        "bad",
        VALID_YAML.replace("      tag: el8\n", ""),
        "formats.rpm[0].tag",
        "is required",
    ),
    "distribution-missing-name": (
        "bad",
        VALID_YAML.replace("    - name: el8\n      env", "    - env"),
        "formats.rpm[0].name",
        "is required",
    ),
    "unknown-distribution-key": (
        "bad",
        VALID_YAML.replace("      tag: el8\n", "      tag: el8\n      colour: red\n"),
        "formats.rpm[0].colour",
        "unknown key",
    ),
    "osi-with-env": (
        "bad",
        VALID_YAML.replace("    - name: containers\n", "    - name: containers\n      env: x\n"),
        "formats.osi[0].env",
        "unknown key",
    ),
    "duplicate-distribution": (
        "bad",
        VALID_YAML.replace("    - name: el8\n", "    - name: bookworm\n"),
        "formats.rpm[0].name",
        "'bookworm' already defined in formats.deb[0]",
    ),
    "distribution-name-too-long": (
        "bad",
        VALID_YAML.replace("    - name: el8\n", f"    - name: {'e' * 65}\n"),
        "formats.rpm[0].name",
        "invalid distribution name",
    ),
    "derivative-extends-unknown": (
        "bad",
        VALID_YAML + "  bar:\n    extends: baz\n",
        "derivatives.bar.extends",
        "unknown derivative 'baz'",
    ),
    "extends-cycle": (
        "bad",
        VALID_YAML + "  a:\n    extends: b\n  b:\n    extends: a\n",
        "derivatives.a.extends",
        "cycle",
    ),
    "extends-itself": (
        "bad",
        VALID_YAML + "  a:\n    extends: a\n",
        "derivatives.a.extends",
        "cycle",
    ),
    "derivative-format-not-in-instance": (
        "bad",
        VALID_YAML.replace("  osi:\n    - name: containers\n", "").replace(
            "formats: [deb]", "formats: [deb, osi]"
        ),
        "derivatives.foox.formats",
        "format 'osi' is not a format of this instance",
    ),
    "derivative-formats-not-a-list": (
        "bad",
        VALID_YAML.replace("formats: [deb]", "formats: deb"),
        "derivatives.foox.formats",
        "must be a list",
    ),
    "unknown-derivative-key": (
        "bad",
        VALID_YAML + "    colour: red\n",
        "derivatives.foox.colour",
        "unknown key",
    ),
    "redefine-main": (
        "bad",
        VALID_YAML + "  main:\n    formats: [deb]\n",
        "derivatives.main",
        "main is implicit",
    ),
    "gpg-name-too-long": (
        "bad",
        VALID_YAML.replace("  name: Maintainers", f"  name: {'M' * 256}"),
        "gpg.name",
        "longer than 255",
    ),
    "env-too-long": (
        "bad",
        VALID_YAML.replace("      env: rocky-8", f"      env: {'r' * 129}"),
        "formats.rpm[0].env",
        "longer than 128",
    ),
    "mirror-too-long": (
        "bad",
        VALID_YAML.replace("      tag: deb12\n", f"      tag: deb12\n      mirror: {'m' * 1025}\n"),
        "formats.deb[0].mirror",
        "longer than 1024",
    ),
    "architecture-too-long": (
        "bad",
        VALID_YAML + f"architectures: [{'a' * 33}]\n",
        "architectures[0]",
        "invalid architecture name",
    ),
    "derivative-name-too-long": (
        "bad",
        VALID_YAML + f"  {'d' * 65}:\n",
        f"derivatives.{'d' * 65}",
        "invalid derivative name",
    ),
    "bad-instance-id": ("my instance", VALID_YAML, "", "instance id 'my instance'"),
    "instance-id-too-long": ("i" * 65, VALID_YAML, "", "instance id"),
}


@pytest.mark.parametrize(
    ("stem", "content", "key", "message"),
    [pytest.param(*case, id=name) for name, case in INVALID_FILES.items()],
)
def test_invalid_file_is_rejected_naming_file_and_key(db, tmp_path, stem, content, key, message):
    path = tmp_path / f"{stem}.yml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InstanceFileError) as caught:
        load_instance_file(path=path)
    text = str(caught.value)
    prefix = f"{path}: {key}: " if key else f"{path}: "
    assert text.startswith(prefix), text
    assert message in text
    assert not Instance.objects.exists()

    # The command reports the same message on stderr and fails.
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("instances", "load", str(path), stdout=io.StringIO(), stderr=err)
    assert text in err.getvalue()


def test_invalid_yaml_error_tells_the_line(tmp_path):
    path = write(tmp_path, "bad", "name: ok\ngpg:\n  name: [unclosed\n")
    with pytest.raises(InstanceFileError, match="line 3"):
        parse_instance_file(path)


def test_invalid_file_leaves_a_loaded_instance_untouched(db, tmp_path):
    path = write(tmp_path, "keep", VALID_YAML)
    load_instance_file(path=path)
    before = snapshot("keep")
    path.write_text(VALID_YAML + "  bar:\n    extends: nowhere\n")
    with pytest.raises(InstanceFileError):
        load_instance_file(path=path)
    assert snapshot("keep") == before


# --- derivative semantics ---------------------------------------------------------------------

SEMANTICS_YAML = """\
name: Semantics
gpg: {name: M, email: m@example.org}
architectures: [x86_64, aarch64, x86_64]
formats:
  deb:
    - {name: bookworm, env: bookworm, tag: deb12}
    - {name: trixie, env: trixie, tag: deb13}
  rpm:
    - {name: el8, env: rocky-8, tag: el8}
  osi:
    - {name: containers}
derivatives:
  # listed before its parent on purpose
  late:
    extends: debrpm
    formats: [rpm, osi]
  everything:
  debrpm:
    formats: [deb, rpm]
  inherits:
    extends: debrpm
  debonly:
    extends: late
    formats: [deb]
  osionly:
    formats: [osi]
"""


@pytest.fixture
def semantics(db, tmp_path, multi_mode):
    instance, _ = load_instance_file(path=write(tmp_path, "sem", SEMANTICS_YAML))
    return instance


def test_derivative_formats_follow_the_documented_semantics(semantics):
    pipelines = get_pipelines(semantics)
    assert pipelines.derivative_formats("main") == ["deb", "rpm", "osi"]
    # No `formats`: every format of the parent (main), not nothing as upstream code did.
    assert pipelines.derivative_formats("everything") == ["deb", "rpm", "osi"]
    # No `formats`: every format of the parent (debrpm).
    assert pipelines.derivative_formats("inherits") == ["deb", "rpm"]
    # `formats` intersects with the parent's formats, recursively.
    assert pipelines.derivative_formats("debrpm") == ["deb", "rpm"]
    assert pipelines.derivative_formats("late") == ["rpm"]
    assert pipelines.derivative_formats("debonly") == []
    assert pipelines.derivative_formats("osionly") == ["osi"]
    assert pipelines.recursive_derivatives("debonly") == ["debonly", "late", "debrpm", "main"]
    assert pipelines.recursive_derivatives("everything") == ["everything", "main"]
    assert pipelines.recursive_derivatives("main") == ["main"]


def test_formats_json_lists_dist_derivatives_in_file_order(semantics, anonymous_client):
    deb = ["main", "everything", "debrpm", "inherits"]
    rpm = ["main", "late", "everything", "debrpm", "inherits"]
    osi = ["main", "everything", "osionly"]
    assert formats_json(anonymous_client, "sem") == {
        "deb": [
            {"distribution": "bookworm", "environment": "bookworm", "derivatives": deb},
            {"distribution": "trixie", "environment": "trixie", "derivatives": deb},
        ],
        "rpm": [{"distribution": "el8", "environment": "rocky-8", "derivatives": rpm}],
        "osi": [{"distribution": "containers", "environment": None, "derivatives": osi}],
    }


@pytest.mark.parametrize(
    ("derivative", "formats"),
    [
        ("main", ["deb", "rpm", "osi"]),
        ("everything", ["deb", "rpm", "osi"]),
        ("inherits", ["deb", "rpm"]),
        ("late", ["rpm"]),
        ("osionly", ["osi"]),
        ("debonly", []),
    ],
)
def test_formats_json_for_a_derivative_lists_only_its_formats(
    semantics, anonymous_client, derivative, formats
):
    listing = formats_json(anonymous_client, "sem", derivative=derivative)
    # JSON object keys are sorted, as upstream jsonify does.
    assert list(listing) == sorted(formats)
    for fmt in formats:
        assert all(derivative in item["derivatives"] for item in listing[fmt])


def test_formats_json_filters(semantics, anonymous_client):
    assert formats_json(anonymous_client, "sem", environment="trixie") == {
        "deb": [
            {
                "distribution": "trixie",
                "environment": "trixie",
                "derivatives": ["main", "everything", "debrpm", "inherits"],
            }
        ]
    }
    assert formats_json(anonymous_client, "sem", distribution="containers", derivative="late") == {}
    assert list(formats_json(anonymous_client, "sem", format="osi")) == ["osi"]
    assert formats_json(anonymous_client, "sem", format="deb", distribution="el8") == {}
    response = anonymous_client.get("/sem/pipelines/formats.json", {"derivative": "nope"})
    assert response.status_code == 404
    assert response.json() == {"error": "Derivative nope is not supported"}


def test_architectures_put_the_host_first_without_duplicates(semantics, anonymous_client):
    response = anonymous_client.get("/sem/pipelines/architectures.json")
    host = settings.FATBUILDR_HOST_ARCHITECTURE
    assert response.json() == list(dict.fromkeys([host, "x86_64", "aarch64"]))


@pytest.mark.parametrize(
    "tail", ["", "derivatives:\n", "derivatives: {}\n"], ids=["absent", "null", "empty"]
)
def test_instance_without_derivatives_has_only_main(
    db, tmp_path, multi_mode, anonymous_client, tail
):
    text = VALID_YAML.split("derivatives:")[0] + tail
    instance, outcome = load_instance_file(path=write(tmp_path, "plain", text))
    assert outcome == "created"
    assert get_pipelines(instance).derivative_names() == ["main"]
    listing = formats_json(anonymous_client, "plain")
    derivatives = {
        item["distribution"]: item["derivatives"] for v in listing.values() for item in v
    }
    assert derivatives == {
        "bookworm": ["main"],
        "el8": ["main"],
        "containers": ["main"],
    }
    assert formats_json(anonymous_client, "plain", derivative="main") == listing
    response = anonymous_client.get("/plain/pipelines/formats.json", {"derivative": "foox"})
    assert response.status_code == 404
    assert response.json() == {"error": "Derivative foox is not supported"}


def test_derivative_with_null_body_supports_everything(db, tmp_path, anonymous_client):
    text = VALID_YAML.replace("  foox:\n    formats: [deb]\n", "  foox:\n")
    load_instance_file(path=write(tmp_path, "nullbody", text))
    listing = formats_json(anonymous_client, "nullbody", derivative="foox")
    assert sorted(listing) == ["deb", "osi", "rpm"]
    assert all(item["derivatives"] == ["main", "foox"] for v in listing.values() for item in v)


def test_shipped_file_copy_keeps_its_stem_as_id(db, tmp_path):
    copy = tmp_path / "prod.yml"
    shutil.copyfile(DEFAULT_FILE, copy)
    instance, _ = load_instance_file(path=copy)
    assert instance.id == "prod"
    assert instance.name == "Default Fatbuildr Instance"


# --- mono-instance mode -----------------------------------------------------------------------


def test_mono_mode_serves_the_default_instance_without_prefix(mono_mode, anonymous_client):
    response = anonymous_client.get("/pipelines/formats.json")
    assert response.status_code == 200
    assert response.json() == {
        "deb": [
            {"distribution": "bookworm", "environment": "bookworm", "derivatives": ["main", "foox"]}
        ],
        "rpm": [{"distribution": "el8", "environment": "rocky-8", "derivatives": ["main", "foox"]}],
    }
    assert anonymous_client.get("/instance.json").json()["id"] == "default"
    # The prefixed path is not a route in mono mode.
    assert anonymous_client.get("/default/pipelines/formats.json").status_code == 404


def test_mono_mode_has_no_instance_list(mono_mode, anonymous_client):
    response = anonymous_client.get("/instances.json")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str) and body["error"]

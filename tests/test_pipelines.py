"""The pipelines an instance file describes, and their API (formats.json, architectures.json)
in both URL modes.

We follow the documented semantics: a derivative without `formats` supports
every format of its parent, `formats` intersects with the parent's formats
recursively, and `main` is implicit.
"""

import shutil

import pytest
from django.conf import settings

from instances.selectors import get_pipelines
from instances.services import load_instance_file
from tests.helpers import assert_error
from tests.instance_yaml import DEFAULT_FILE, VALID_YAML, formats_json, write

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
    assert_error(response, 404)
    assert response.json()["error"]

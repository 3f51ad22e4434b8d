"""instances.instance_files: invalid instance files are refused naming the file and the key,
and leave a loaded instance untouched.
"""

import io

import pytest
from django.core.management import CommandError, call_command

from instances.instance_files import InstanceFileError, parse_instance_file
from instances.models import Instance
from instances.services import load_instance_file
from tests.instance_yaml import VALID_YAML, snapshot, write

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

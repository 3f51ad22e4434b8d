"""Instance files of the instance tests: the shipped default, a valid one to edit, and helpers
to write them and read back what loading stored."""

import textwrap
from pathlib import Path

from instances.models import Instance, PipelineDerivative, PipelineDistribution
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

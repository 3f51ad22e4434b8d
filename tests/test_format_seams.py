"""One seam per format: builds and registries know a format only through its module, so a new
format is one builder module and one repository module (issue 12)."""

import ast
from pathlib import Path

from builds.formats import BUILDERS
from registry.repositories import REPOSITORIES
from tests.conftest import REPO_ROOT

APPS = ("accounts", "builds", "fatbuildr_site", "instances", "registry", "tasks", "web")
# Where a format may be named in a comparison: the format modules themselves.
FORMAT_MODULES = (Path("builds/formats"), Path("registry/repositories"))
FORMAT_NAMES = {"deb", "rpm", "osi", "DEB", "RPM", "OSI"}


def names_a_format(node: ast.expr) -> bool:
    """`"deb"`, or `ArtifactFormat.DEB` (any attribute named like a format constant)."""
    if isinstance(node, ast.Constant):
        return node.value in FORMAT_NAMES
    return isinstance(node, ast.Attribute) and node.attr in FORMAT_NAMES


def format_comparisons(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
            names_a_format(operand) for operand in [node.left, *node.comparators]
        ):
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_the_built_formats_are_the_published_formats():
    assert set(BUILDERS) == set(REPOSITORIES) == {"deb", "rpm"}


def test_no_module_outside_the_format_modules_compares_formats():
    offenders = []
    for app in APPS:
        for path in sorted((REPO_ROOT / app).rglob("*.py")):
            relative = path.relative_to(REPO_ROOT)
            if "migrations" in relative.parts or any(map(relative.is_relative_to, FORMAT_MODULES)):
                continue
            offenders += format_comparisons(path)
    assert offenders == []


def test_the_check_finds_a_format_branch(tmp_path):
    """The premise of the test above: it does see `if fmt == ArtifactFormat.DEB` and `"rpm"`."""
    module = tmp_path / "module.py"
    module.write_text('if fmt == ArtifactFormat.DEB:\n    pass\nelif "rpm" != fmt:\n    pass\n')
    assert len(format_comparisons(module)) == 2

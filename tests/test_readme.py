"""The README's configuration tables name every environment variable the code reads, and
only those: the settings module (read with ast) and the scripts that start the server."""

import ast
import re

import pytest

from tests.conftest import REPO_ROOT

SETTINGS = REPO_ROOT / "fatbuildr_site" / "settings.py"
# scripts/run sources scripts/setup and starts scripts/serve.
SCRIPTS = [REPO_ROOT / "scripts" / name for name in ("run", "serve", "setup")]
README = REPO_ROOT / "README.md"

VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*")
# Set by the shell itself, not by whoever runs the script.
SHELL_VARIABLES = {"PWD", "HOME", "PATH", "UID", "EUID", "HOSTNAME", "BASH_SOURCE", "IFS"}


def _is_os_environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _environ_helpers(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    """Module functions that read os.environ, directly or through another such function."""
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    helpers: dict[str, ast.FunctionDef] = {}
    while True:
        found = {
            name: function
            for name, function in functions.items()
            if name not in helpers
            and any(
                _is_os_environ(node)
                or (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id in helpers
                )
                for node in ast.walk(function)
            )
        }
        if not found:
            return helpers
        helpers.update(found)


def settings_variables(source: str) -> set[str]:
    """Names read by os.environ.get / os.environ[...] / os.getenv / `NAME in os.environ`,
    or by a helper function of the module that reads os.environ (env_bool, env_list...).
    A name that is not a string literal fails: the table could not be checked."""
    tree = ast.parse(source)
    helpers = _environ_helpers(tree)
    helper_bodies = {id(inner) for function in helpers.values() for inner in ast.walk(function)}
    names: set[str] = set()

    def literal(node: ast.AST, where: ast.AST) -> None:
        if id(where) in helper_bodies:  # The helpers' own `name` parameter.
            return
        assert isinstance(node, ast.Constant) and isinstance(node.value, str), (
            f"settings.py line {where.lineno}: variable name is not a literal"
        )
        names.add(node.value)

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            function = node.func
            if isinstance(function, ast.Attribute) and function.attr in {"get", "setdefault"}:
                if _is_os_environ(function.value):
                    literal(node.args[0], node)
            elif isinstance(function, ast.Attribute) and function.attr == "getenv":
                if isinstance(function.value, ast.Name) and function.value.id == "os":
                    literal(node.args[0], node)
            elif isinstance(function, ast.Name) and function.id in helpers:
                literal(node.args[0], node)
        elif isinstance(node, ast.Subscript) and _is_os_environ(node.value):
            literal(node.slice, node)
        elif isinstance(node, ast.Compare) and any(
            _is_os_environ(comparator) for comparator in node.comparators
        ):
            literal(node.left, node)
    return names


def script_variables(text: str) -> set[str]:
    """Upper-case variables a shell script reads from its environment: those it expands
    with a default (`${NAME:-...}`, `${NAME-...}`, `${NAME:?...}`...), and those it expands
    without ever assigning them."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assigned = set(re.findall(r"(?:^|[\s;(])(?:export\s+|local\s+)?([A-Z][A-Z0-9_]*)=", code))
    with_default = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):?[-?=+]", code))
    expanded = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", code))
    plain = {name for name in expanded if VARIABLE.fullmatch(name)} - assigned - SHELL_VARIABLES
    return with_default | plain


def readme_variables(text: str) -> set[str]:
    """The variables of the first column of every table in the Configuration section; each
    must be a whole name in backquotes."""
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cell = line.split("|")[1].strip()
        if cell == "Variable":
            continue
        found = re.findall(r"`([^`]*)`", cell)
        assert found, f"README configuration row without a variable: {line}"
        for name in found:
            assert VARIABLE.fullmatch(name), f"README: {name!r} is not a whole variable name"
            names.add(name)
    return names


def code_variables() -> set[str]:
    names = settings_variables(SETTINGS.read_text())
    for script in SCRIPTS:
        names |= script_variables(script.read_text())
    return names


def test_every_variable_the_code_reads_is_in_the_readme_table():
    missing = code_variables() - readme_variables(README.read_text())
    assert not missing, f"read by the code, missing from README Configuration: {sorted(missing)}"


def test_every_variable_of_the_readme_table_is_read_by_the_code():
    unknown = readme_variables(README.read_text()) - code_variables()
    assert not unknown, f"in README Configuration, read by no code: {sorted(unknown)}"


def test_the_parsers_see_each_way_of_reading_a_variable():
    source = """
import os
def env_flag(name, default):
    return os.environ.get(name, default)
def env_number(name, default):
    return int(env_flag(name, default))
A = os.environ.get("A_GET", "x")
B = os.environ["B_ITEM"]
C = os.getenv("C_GETENV")
D = env_flag("D_HELPER", False)
F = env_number("F_NESTED_HELPER", 1)
E = "E_IN" in os.environ
"""
    assert settings_variables(source) == {
        "A_GET",
        "B_ITEM",
        "C_GETENV",
        "D_HELPER",
        "E_IN",
        "F_NESTED_HELPER",
    }
    script = """
# ${COMMENTED:-no}
LOCAL=1
export EXPORTED=${EXPORTED:-1}
echo "$LOCAL ${DEFAULTED:-x} ${REQUIRED:?set it} $FROM_ENV $PWD" '${Status}'
"""
    assert script_variables(script) == {"EXPORTED", "DEFAULTED", "REQUIRED", "FROM_ENV"}
    table = """
## Configuration

| Variable | Default | Meaning |
|---|---|---|
| `ONE` / `TWO` | `1` | two names |

## Next
| `NOT_CONFIGURATION` | | |
"""
    assert readme_variables(table) == {"ONE", "TWO"}


def test_the_readme_table_refuses_abbreviated_names():
    table = "\n## Configuration\n\n| Variable |\n|---|\n| `FATBUILDR_X` / `_Y` |\n"
    with pytest.raises(AssertionError, match="'_Y' is not a whole variable name"):
        readme_variables(table)

"""First-party apps depend one way: no app imports an app that imports it back.

The graph is read from the source (every `import` anywhere in a module, nested
ones included), not from Django, so it holds whatever Python happens to load.
`fatbuildr_site` plays two parts: its composition root (settings, URLs, the
Celery app, the WSGI/ASGI entry points) sits above every app and may import
them all; the rest of it (text checks, the YAML loader, the Error object,
bodies) sits below every app and imports none. Migrations are history, not
dependencies, and are left out. The picture is in docs/design.md.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "builds", "instances", "registry", "tasks", "web", "fatbuildr_site")
# The modules of the project package that wire the apps together.
SITE_ROOT = "fatbuildr_site.root"
ROOT_MODULES = {"settings", "urls", "celery", "wsgi", "asgi", "serving", "__init__"}


def node_of(module: str) -> str | None:
    """The graph node of a dotted module name, None outside the first-party apps."""
    parts = module.split(".")
    if parts[0] not in APPS:
        return None
    if parts[0] == "fatbuildr_site" and (len(parts) == 1 or parts[1] in ROOT_MODULES):
        return SITE_ROOT
    return parts[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts)


def is_module(dotted: str) -> bool:
    path = REPO_ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path) -> Iterator[str]:
    """Every module an `import` or `from ... import` of this file names, resolved."""
    package = module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                # `from fatbuildr_site import text` imports the module `fatbuildr_site.text`.
                submodule = f"{module}.{alias.name}"
                yield submodule if is_module(submodule) else module


def app_graph() -> dict[str, set[str]]:
    """node -> the other nodes it imports."""
    graph: dict[str, set[str]] = {}
    for app in APPS:
        for path in sorted((REPO_ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            source = node_of(module_name(path))
            assert source is not None
            targets = graph.setdefault(source, set())
            for module in imported_modules(path):
                target = node_of(module)
                if target is not None and target != source:
                    targets.add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_apps_depend_one_way():
    graph = app_graph()
    edges = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets)
    assert cycles(graph) == [], "apps importing each other:\n" + "\n".join(edges)


def test_the_site_root_is_imported_by_no_app():
    graph = app_graph()
    assert [app for app, targets in graph.items() if SITE_ROOT in targets] == []


def test_cycles_are_found():
    """The check itself: a two-app loop and a longer one are both reported."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []

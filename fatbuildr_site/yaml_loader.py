"""One bounded YAML loader for the YAML this server reads: artifact definitions (untrusted,
sent with every build) and instance files.

PyYAML's composer recurses once per nesting level, so a few kilobytes of `[[[[...` are a
RecursionError, and aliases let a small document expand to billions of nodes for the
code that walks it. `BoundedSafeLoader` is the safe loader with bounds checked while the
document is composed, before anything is built: its size, its nesting depth, the number
of nodes once aliases are expanded, and scalars that PostgreSQL could not store.
"""

from typing import Any

import yaml
from yaml.events import AliasEvent, ScalarEvent
from yaml.nodes import Node

from fatbuildr_site.text import is_storable

# Definitions are a few hundred bytes and instance files a few kilobytes.
MAX_SIZE = 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 100_000


class YAMLLimitError(yaml.MarkedYAMLError):
    """A YAML document exceeds a bound of the loader (a `yaml.YAMLError`)."""

    def __init__(self, problem: str, event: yaml.Event | None = None) -> None:
        # The pure-Python loader's events are marked with `yaml.error.Mark` (the C loader's
        # `_yaml.Mark`, which the stubs also allow, is never used here).
        mark = event.start_mark if event is not None else None
        super().__init__(None, None, problem, mark if isinstance(mark, yaml.Mark) else None)


class BoundedSafeLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` refusing documents nested deeper than `max_depth`, expanding to more
    than `max_nodes` nodes, or holding NUL or a lone surrogate in a scalar."""

    max_depth = MAX_DEPTH
    max_nodes = MAX_NODES

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        # Expanded size of each node composed so far, which an alias to it adds again.
        self._sizes: dict[Node, int] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            size = self._sizes.get(node) if node is not None else None
            if size is None:  # An alias inside its own anchor: infinite once expanded.
                raise YAMLLimitError("recursive alias", event)
            self._count(size, event)
            return node
        if isinstance(event, ScalarEvent) and not is_storable(event.value):
            raise YAMLLimitError("scalar holds a NUL or invalid character", event)
        if self._depth >= self.max_depth:
            raise YAMLLimitError(f"nested deeper than {self.max_depth} levels", event)
        self._depth += 1
        first = self._nodes
        self._count(1, event)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            self._sizes[node] = self._nodes - first
        return node

    def _count(self, nodes: int, event: yaml.Event) -> None:
        self._nodes += nodes
        if self._nodes > self.max_nodes:
            raise YAMLLimitError(f"more than {self.max_nodes} nodes", event)


def load_yaml(
    text: str | bytes,
    *,
    loader: type[BoundedSafeLoader] = BoundedSafeLoader,
    max_size: int = MAX_SIZE,
) -> Any:
    """The single document in *text*, within the loader's bounds and *max_size* bytes (UTF-8).

    Raises `yaml.YAMLError`: `YAMLLimitError` for a bound, another one for invalid YAML.
    """
    # Characters never outnumber bytes: a long text is refused before it is encoded.
    too_large = len(text) > max_size or (
        isinstance(text, str) and len(text.encode("utf-8", "surrogatepass")) > max_size
    )
    if too_large:
        raise YAMLLimitError(f"larger than {max_size} bytes")
    return yaml.load(text, Loader=loader)  # A SafeLoader subclass: no arbitrary objects.

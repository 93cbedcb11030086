"""Bounds on the work any input can cause: YAML documents and the number of cells in a matrix.

A few hundred bytes of YAML can name a billion values through aliases ("billion laughs"), or
itself through a recursive alias; PyYAML builds such a graph quickly, and whatever walks it
afterwards (line indexing, validation) then runs for minutes or recurses forever. The loader
here counts, while composing, how many values the document holds once every alias is expanded,
how deep it nests, and refuses a recursive alias; a scenario or a policy file is a few hundred
values, so the limits only stop documents made to hurt. ``LimitError`` is a ``YAMLError``:
callers that report invalid YAML report these the same way, with the line.

The number of cells a scenario's matrix may expand to is ``MAX_CELLS`` unless the environment
variable ``BENCH_MAX_CELLS`` says otherwise; the scenario checks the product of the axes' value
counts before expanding anything.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

MAX_YAML_CHARS = 1 << 20  # 1 Mi characters: scenarios and policies are a few KB
MAX_YAML_VALUES = 100_000  # values in the document with every alias expanded
MAX_YAML_DEPTH = 64  # nested mappings and lists
MAX_CELLS = 100_000
ENV_MAX_CELLS = "BENCH_MAX_CELLS"


class LimitError(yaml.MarkedYAMLError):
    """A YAML document beyond the limits; ``problem`` says which, ``problem_mark`` where."""

    def __init__(self, problem: str, mark: Any = None):
        super().__init__(problem=problem, problem_mark=mark)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses recursive aliases, deep nesting and documents that expand to
    more than ``MAX_YAML_VALUES`` values. Sizes are counted per node once (aliases reuse the
    node), so counting costs no more than composing."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._open: set[str] = set()  # anchors of the nodes being composed right now
        self._sizes: dict[int, int] = {}  # id(node) -> values it holds, aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise LimitError(
                    f"alias *{event.anchor} refers to a value that contains it (a recursive "
                    "alias); expected aliases of finished values only",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise LimitError(
                f"nested more than {MAX_YAML_DEPTH} levels deep; expected a flatter document",
                event.start_mark,
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(anchor)
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        size = 1 + sum(self._sizes.get(id(child), 1) for child in children)
        if size > MAX_YAML_VALUES:
            raise LimitError(
                f"the document expands to more than {MAX_YAML_VALUES:,} values (aliases "
                "counted each time they are used); expected a smaller document",
                node.start_mark,
            )
        self._sizes[id(node)] = size
        return node


def compose_and_load(text: str) -> tuple[yaml.Node | None, Any]:
    """The node graph (for line numbers) and the data of one YAML document, within the limits.

    Raises ``yaml.YAMLError`` (``LimitError`` for the limits) like ``yaml.safe_load``.
    """
    if len(text) > MAX_YAML_CHARS:
        raise LimitError(
            f"{len(text):,} characters; expected at most {MAX_YAML_CHARS:,} in a YAML file"
        )
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` within the limits: for every YAML that a user or a run folder gives."""
    return compose_and_load(text)[1]


def max_cells() -> int:
    """The most cells a scenario may expand to; ValueError when ``BENCH_MAX_CELLS`` is bad."""
    raw = os.environ.get(ENV_MAX_CELLS, "").strip()
    if not raw:
        return MAX_CELLS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{ENV_MAX_CELLS}={raw!r}: expected a positive whole number of cells")
    return value

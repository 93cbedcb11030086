"""The search space: the scenario's cells, the axes that tell them apart, and their neighbours.

A cell's *neighbours* differ from it in exactly one axis. On an ordered axis (numbers: batch
size, steps per call, slots) the values keep their order, so a search can walk along it; text
axes (precision, input, framework) are unordered. ``exclude:``/``include:`` and conditional axes
can make the grid ragged: a neighbour is only ever a cell the scenario really has.

Constraints on the cell key (``--where device==gpu``, ``batch_size<=256``) are applied here,
before anything is measured; constraints on measured fields wait for the measurements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.read.constraints import Constraint
from bench.read.runset import FIELDS, CellView, Host, read_fields

BATCH = "batch_size"


class SpaceError(ValueError):
    """No cell left to tune over, or a space bench tune cannot search; the message says why."""


@dataclass(frozen=True)
class TuneCell:
    """One point of the space: its id and key, as the scenario planned it."""

    cell_id: str
    key: Mapping[str, Any]

    def value(self, axis: str) -> Any:
        return self.key.get(axis)


def key_view(key: Mapping[str, Any]) -> CellView:
    """A cell known only by its key, for constraints on key fields."""
    record = {"cell_id": "", "key": dict(key), "status": "ok", "metrics": {}}
    host = Host("", "", "", ())
    return CellView(0, "", host, "", key, "ok", "", (), record, read_fields(record, host, ""))


def on_key(constraint: Constraint) -> bool:
    """Whether a constraint reads the cell key only (decidable before measuring)."""
    return (
        constraint.field in FIELDS
        and constraint.field not in ("status", "run", "host")
        and (not constraint.field.startswith("slo"))
    )


def _ordered(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


@dataclass
class Space:
    """The cells to search, indexed for neighbour look-ups."""

    cells: list[TuneCell]
    axes: tuple[str, ...] = ()  # the axes whose values differ, in the scenario's key order
    values: dict[str, list[Any]] = field(default_factory=dict)  # per axis, sorted if ordered
    ordered: dict[str, bool] = field(default_factory=dict)
    by_key: dict[tuple[Any, ...], TuneCell] = field(default_factory=dict)

    def __post_init__(self) -> None:
        keys = [c.key for c in self.cells]
        names = list(dict.fromkeys(a for k in keys for a in k))
        self.axes = tuple(a for a in names if len({str(k.get(a)) for k in keys}) > 1)
        for axis in self.axes:
            seen = list(dict.fromkeys(k.get(axis) for k in keys if k.get(axis) is not None))
            self.ordered[axis] = _ordered(seen)
            self.values[axis] = sorted(seen) if self.ordered[axis] else seen
        self.by_key = {self._ident(c.key): c for c in self.cells}

    def _ident(self, key: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(str(key.get(a)) for a in self.axes)

    def find(self, key: Mapping[str, Any]) -> TuneCell | None:
        return self.by_key.get(self._ident(key))

    def line(self, cell: TuneCell, axis: str) -> list[TuneCell]:
        """The cells that differ from ``cell`` in ``axis`` only (itself included), in the
        axis's value order."""
        found = [self.find({**cell.key, axis: v}) for v in self.values.get(axis, [])]
        return [c for c in found if c is not None]

    def neighbours(self, cell: TuneCell) -> list[TuneCell]:
        return [c for axis in self.axes for c in self.line(cell, axis) if c is not cell]


def build(
    cells: Sequence[TuneCell], constraints: Sequence[Constraint], where: str = "the scenario"
) -> Space:
    """The space of ``cells`` that meet every constraint on the key; SpaceError when none is
    left or the cells span several (model, workload) decisions."""
    keyed = [k for k in constraints if on_key(k)]
    kept = [c for c in cells if all(k.holds(key_view(c.key)) for k in keyed)]
    if not kept:
        said = ", ".join(k.text for k in keyed)
        raise SpaceError(
            f"{where}: no cell of its {len(cells)} meets {said}: nothing to tune"
            if keyed
            else f"{where}: the matrix has no cells: nothing to tune"
        )
    groups = sorted({(str(c.key.get("model")), str(c.key.get("workload"))) for c in kept})
    if len(groups) > 1:
        named = ", ".join(f"{m}/{w}" for m, w in groups)
        raise SpaceError(
            f"{where}: its cells span {len(groups)} decisions ({named}); tune one at a time, "
            "e.g. --where workload==" + groups[0][1]
        )
    return Space(list(kept))

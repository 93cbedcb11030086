"""The runner-to-worker message of one cell: a typed object, sent as one JSON line.

The runner builds it from the validated scenario (``bench.run.runner.cell_message``); the worker
reads it back with ``CellMessage.from_dict`` and hands it to the workload's measuring function.
Everything a cell needs from its scenario travels here, as JSON values: the worker never reads
the scenario file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.axes import CellKey


@dataclass(frozen=True)
class CellMessage:
    cell_id: str
    key: CellKey
    model_args: Mapping[str, Any]
    seed: int
    # The scenario's measure block (run length, serve rules, profile, parity examples).
    measure: Mapping[str, Any]
    optimizer: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    pricing: Mapping[str, Any] = field(default_factory=dict)
    # serve cells: the scenario's slo and its endpoints: entries.
    slo: Mapping[str, Any] | None = None
    endpoints: Mapping[str, Any] = field(default_factory=dict)
    # generate cells: the scenario's generate block (bench.run.generate_block), lengths as JSON.
    generate: Mapping[str, Any] = field(default_factory=dict)
    # Where a cell writes what it keeps beside its record (profiles/, parity/, litert/).
    run_dir: str | None = None
    cluster: Mapping[str, Any] | None = None
    # Modules the worker imports before measuring: the plug-ins the cell uses that bench does
    # not know by itself (its workload's, its endpoint protocol's), which register themselves.
    plugins: tuple[str, ...] = ()

    @property
    def workload(self) -> str:
        return str(self.key["workload"])

    @property
    def processes(self) -> int:
        return int((self.cluster or {}).get("num_processes", 1))

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["key"] = self.key.to_dict()
        return {"type": "cell", **out}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellMessage:
        """The message a runner sent; optional parts may be absent (older runners, tests)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        values["key"] = CellKey.from_dict(data["key"])
        values.setdefault("cell_id", values["key"].cell_id)
        for name in ("optimizer", "data", "pricing", "endpoints", "generate"):
            values[name] = values.get(name) or {}
        values["plugins"] = tuple(values.get("plugins") or ())
        return cls(**values)


def as_message(msg: CellMessage | Mapping[str, Any]) -> CellMessage:
    return msg if isinstance(msg, CellMessage) else CellMessage.from_dict(msg)

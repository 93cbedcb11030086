"""Speed against agreement: what each predict cell's precision, framework or converter bought in
speed, next to how far it moved the predictions (the parity metrics of bench.measure.parity).

A cell's speed-up is its throughput over its **baseline's**: the cell of the same run and host
whose key differs from it only in ``precision: float32`` and ``device: cpu`` (a float16 GPU cell
against float32 on the CPU, a LiteRT int8 cell against LiteRT float32). A cell without such a
baseline in the loaded runs has no speed-up, and says so. The baseline itself is a point at 1x.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.read.runset import CellView
from bench.workloads.registry import checks_parity

BASELINE = {"precision": "float32", "device": "cpu"}
PARITY_FIELDS = ("parity_max_abs", "parity_mean_abs", "top1_agreement")


@dataclass(frozen=True)
class ParityPoint:
    cell: CellView
    baseline: CellView | None
    speedup: float | None  # throughput / the baseline's; None without a baseline


def has_parity(cell: CellView) -> bool:
    return any(cell.number(f) is not None for f in PARITY_FIELDS)


def _ident(cell: CellView, **override: str) -> tuple:
    key = {**cell.key, **override}
    return (cell.run_id, cell.host.label, tuple(sorted((k, str(v)) for k, v in key.items())))


def parity_points(cells: Sequence[CellView]) -> list[ParityPoint]:
    """Every ok predict cell with parity metrics, with its baseline and speed-up."""
    ok = [c for c in cells if c.ok and checks_parity(c.key.get("workload"))]
    by_ident = {_ident(c): c for c in ok}
    out = []
    for cell in ok:
        if not has_parity(cell):
            continue
        base = by_ident.get(_ident(cell, **BASELINE))
        mine, theirs = (
            cell.number("examples_per_s"),
            base.number("examples_per_s") if base else None,
        )
        speedup = mine / theirs if mine is not None and theirs else None
        out.append(ParityPoint(cell, base, speedup))
    return out

"""Measure a train cell: the shared timed-steps measurement of a training step, as it is."""

from __future__ import annotations

from typing import Any

from bench.workloads.cell.context import CellContext
from bench.workloads.cell.message import CellMessage
from bench.workloads.cell.offline import OfflineCell


def measure(backend: Any, msg: CellMessage) -> dict[str, Any]:
    cell = OfflineCell(backend, CellContext.open(msg))
    cell.build()
    found = cell.run()
    cell.profile(found)
    return found

"""A serve cell: the worker's own server (``inprocess``) or a model server over the network
(``endpoint``), by the cell's ``endpoint`` axis."""

from __future__ import annotations

from typing import Any

from bench.workloads.cell.message import CellMessage


def measure(backend: Any, msg: CellMessage) -> dict[str, Any]:
    if msg.key["endpoint"] != "in_process":
        from bench.workloads.serve.cell.endpoint import measure_endpoint_cell

        return measure_endpoint_cell(msg)
    from bench.workloads.serve.cell.inprocess import measure_serve_cell

    return measure_serve_cell(backend, msg)

"""Measure one cell in the worker: the cell's workload, found in the registry, measures it."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from bench.workloads import registry
from bench.workloads.cell.message import CellMessage, as_message


def measure_cell(backend: Any, msg: CellMessage | Mapping[str, Any]) -> dict[str, Any]:
    """The measured parts of the cell's record (status, reason, flags, metrics, samples...)."""
    msg = as_message(msg)
    for module in msg.plugins:  # each registers what it declares
        importlib.import_module(module)
    spec = registry.spec(msg.workload)
    return registry.measure_function(spec)(backend, msg)

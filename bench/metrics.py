"""The shape of one metric in a cell record: a value with its unit and how it was measured.

Every number bench writes goes through these helpers, so a reader always finds the unit and the
method beside it, and a metric that could not be measured says why instead of being left out:

    {"value": 1523.4, "unit": "examples/s", "method": "batch_size / median step time"}
    {"unavailable": "no RAPL counters readable under /sys/class/powercap", "unit": "J"}

Summaries of samples (step times) put their statistics beside ``unit`` and ``method``:
    {"unit": "s", "method": "...", "n": 40, "mean": ..., "median": ..., "p99": ..., ...}
"""

from __future__ import annotations

import math
from typing import Any


def metric(value: float | int, unit: str, method: str, **extra: Any) -> dict[str, Any]:
    return {"value": value, "unit": unit, "method": method, **extra}


def unavailable(reason: str, unit: str) -> dict[str, Any]:
    return {"unavailable": reason, "unit": unit}


def value_of(entry: dict[str, Any] | None, stat: str = "value") -> float | None:
    """The number in a metric entry, or None when missing, unavailable or not finite (a NaN
    written by hand or by an older bench must rank neither first nor last)."""
    if not entry or "unavailable" in entry:
        return None
    found = entry.get(stat)
    if not isinstance(found, int | float) or isinstance(found, bool):
        return None
    return float(found) if math.isfinite(found) else None

"""Numbers that are not numbers: NaN and infinities never reach a run folder, and readers skip them.

Python's ``json`` writes ``NaN`` and ``Infinity`` unless told not to, and every comparison with
NaN is false, so one NaN throughput can rank first or last depending on how a reader sorts. bench
therefore writes strict JSON (``allow_nan=False``), and a record whose measurement came out
non-finite (a broken counter, a zero-length timing) is made ``invalid`` by ``finite_record``
with the fields named, the values stored as null. Files edited by hand or written by older
versions may still hold them (``json`` reads them): readers take numbers through
``finite_samples`` (and ``bench.metrics.value_of``), which treat them as missing.
"""

from __future__ import annotations

import math
from typing import Any

# Parts of a cell record that hold measurements; the key and identity hold none.
MEASURED = ("metrics", "samples", "repeats", "hosts", "input", "parallelism")
SHOWN = 5  # fields named in the reason; the rest are counted


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is finite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def finite_samples(values: Any) -> list[float]:
    """The finite numbers of a list of samples, as floats; anything else counts as missing."""
    if not isinstance(values, list | tuple):
        return []
    return [float(v) for v in values if is_finite_number(v)]


def non_finite_paths(value: Any, path: str = "") -> list[str]:
    """Dotted paths (``metrics.mfu.value``, ``samples.step_time_s[3]``) of NaN/inf floats."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path]
    if isinstance(value, dict):
        return [
            p for k, v in value.items() for p in non_finite_paths(v, f"{path}.{k}" if path else k)
        ]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in non_finite_paths(v, f"{path}[{i}]")]
    return []


def _nulled(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _nulled(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nulled(v) for v in value]
    return value


def finite_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` unchanged when every measured number is finite; otherwise a copy with those
    values set to null, and an ``ok`` cell made ``invalid`` with the fields named (a cell that
    already failed keeps its status and reason, and gets the note in ``flags``)."""
    paths = [p for part in MEASURED for p in non_finite_paths(record.get(part), part)]
    if not paths:
        return record
    fixed = {k: _nulled(v) if k in MEASURED else v for k, v in record.items()}
    more = f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else ""
    why = f"non-finite measurement (NaN or infinity, stored as null): {', '.join(paths[:SHOWN])}"
    why += more
    if fixed.get("status") == "ok":
        fixed["status"], fixed["reason"] = "invalid", why
    else:
        fixed["flags"] = [*(fixed.get("flags") or []), "non_finite"]
    return fixed

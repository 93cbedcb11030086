"""Numbers that are not measurements: NaN, infinities, overflowing and impossible values never
reach a run folder's readers as numbers, and a cell holding one is ``invalid``.

Python's ``json`` writes ``NaN`` and ``Infinity`` unless told not to, and every comparison with
NaN is false, so one NaN throughput can rank first or last depending on how a reader sorts. A
value beyond ``MAX_MEASURED`` (``1.7e308``, an integer of 400 digits) is finite but overflows
the first sum, square or ``float()`` a reader does. A step time that is zero or negative, or
a negative duration, cannot have been measured. bench therefore writes strict JSON
(``allow_nan=False``), and a record holding any of these is made ``invalid`` by
``finite_record`` with the fields named, the values stored as null. Files edited by hand or
written by older versions may still hold them: ``bench.runfolder`` applies the same
``finite_record`` to every record it reads, so every reading command (results, compare,
report, recommend, export, gate, baseline save) sees such a cell as invalid; readers take
samples through ``finite_samples`` (and ``bench.metrics.value_of``), which skip them.
"""

from __future__ import annotations

import math
from typing import Any

from bench.limits import MAX_MEASURED

# Parts of a cell record that hold measurements; the key and identity hold none.
MEASURED = ("metrics", "samples", "repeats", "hosts", "input", "parallelism")
SHOWN = 5  # fields named in the reason; the rest are counted
STEPS = "step_time_s"  # raw per-step times: each must be above zero


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool), finite and within ``MAX_MEASURED`` of zero."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return abs(value) <= MAX_MEASURED  # an int compares exactly: float() of 10**400 raises


def finite_samples(values: Any) -> list[float]:
    """The usable numbers of a list of samples, as floats; anything else counts as missing."""
    if not isinstance(values, list | tuple):
        return []
    return [float(v) for v in values if is_finite_number(v)]


def non_finite_paths(value: Any, path: str = "") -> list[str]:
    """Dotted paths (``metrics.mfu.value``, ``samples.step_time_s[3]``) of numbers that are
    NaN, infinite or beyond ``MAX_MEASURED``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [] if is_finite_number(value) else [path]
    if isinstance(value, dict):
        return [
            p for k, v in value.items() for p in non_finite_paths(v, f"{path}.{k}" if path else k)
        ]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in non_finite_paths(v, f"{path}[{i}]")]
    return []


def impossible_paths(samples: Any) -> list[str]:
    """Paths of samples no timer gives: a step time not above zero, a negative duration
    (every sample list named ``*_s``, and the per-process lists of ``*_s_by_repeat``)."""
    if not isinstance(samples, dict):
        return []
    found = []
    for name, values in samples.items():
        base = name.removesuffix("_by_repeat")
        if not base.endswith("_s") or not isinstance(values, list):
            continue
        lists = values if name.endswith("_by_repeat") else [values]
        for j, inner in enumerate(lists):
            if not isinstance(inner, list):
                continue
            at = f"samples.{name}" + (f"[{j}]" if name.endswith("_by_repeat") else "")
            for i, v in enumerate(inner):
                if not is_finite_number(v):
                    continue  # named by non_finite_paths
                if v < 0 or (base == STEPS and v == 0):
                    found.append(f"{at}[{i}]")
    return found


def _nulled(value: Any, paths: set[str], path: str = "") -> Any:
    if path in paths:
        return None
    if isinstance(value, dict):
        return {k: _nulled(v, paths, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nulled(v, paths, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def finite_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` unchanged when every measured number is usable; otherwise a copy with those
    values set to null, and an ``ok`` cell made ``invalid`` with the fields named (a cell that
    already failed keeps its status and reason, and gets the note in ``flags``)."""
    bad = [p for part in MEASURED for p in non_finite_paths(record.get(part), part)]
    impossible = impossible_paths(record.get("samples"))
    if not bad and not impossible:
        return record
    paths = set(bad) | set(impossible)
    fixed = {k: _nulled(v, paths, k) if k in MEASURED else v for k, v in record.items()}
    why = []
    for kind, found in (
        (f"non-finite measurement (NaN, infinity or beyond {MAX_MEASURED:g})", bad),
        ("impossible measurement (a step time not above 0, or a negative duration)", impossible),
    ):
        if found:
            more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
            why.append(f"{kind}, stored as null: {', '.join(found[:SHOWN])}{more}")
    if fixed.get("status") == "ok":
        fixed["status"], fixed["reason"] = "invalid", "; ".join(why)
    else:
        fixed["flags"] = [*(fixed.get("flags") or []), "non_finite"]
    return fixed

"""The ``input_bound`` rule: is this cell's accelerator (or CPU) waiting for its input?

A ``numpy`` or ``tfdata`` cell is input-bound when its throughput (examples/s) is below that of
the matching ``synthetic`` cell of the same run beyond noise: same key except ``input`` and
``pipeline``, so the only difference is where batches come from, and the 95% bootstrap interval
of its share of the synthetic cell's throughput lies wholly below ``1 / (1 + T)`` for the noise
threshold T of ``bench.measure.noise`` (the spread between repeated processes where
``measure.repeats`` measured one, else 10%: below about 91%). Where either cell kept no step
times, the share itself decides. Cells differ by several percent with their place in the run
and between processes, so a smaller gap is no evidence of waiting. Without an ``ok`` synthetic
cell to compare with, it is input-bound when its steps spent more than 10% of their time
waiting for input.

Decided by the runner, not the worker: the synthetic cell may run after the cell it judges (or
in a resumed run), and only the runner sees both. The runner applies it as each cell finishes
and again to earlier cells when their synthetic reference arrives, so the flag is in the stored
record (``flags`` and ``metrics.input_bound``), where tables and the gate read it. Pure: records
in, records out.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from bench.finite import finite_samples
from bench.measure.noise import beyond, noise_for
from bench.measure.stats import ratio_of_medians_ci
from bench.metrics import value_of

WAIT_FRACTION = 0.10  # without a synthetic cell: above this share of step time waiting
JUDGED_INPUTS = ("numpy", "tfdata")
FLAG = "input_bound"
# Key fields that name where the input comes from; everything else must match the reference.
INPUT_FIELDS = ("input", "pipeline")


def reference_key(key: dict[str, Any]) -> tuple:
    """What a cell and its synthetic reference share: every key field but the input's."""
    return tuple(sorted((k, str(v)) for k, v in key.items() if k not in INPUT_FIELDS))


def find_reference(record: dict[str, Any], records: Iterable[dict[str, Any]]) -> dict | None:
    """The ``ok`` synthetic cell with the same key apart from the input, if any."""
    want = reference_key(record["key"])
    for other in records:
        if (
            other["key"].get("input") == "synthetic"
            and other.get("status") == "ok"
            and reference_key(other["key"]) == want
        ):
            return other
    return None


def judge(record: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``input_bound`` metric for an ``ok`` numpy/tfdata record, or None when not judged."""
    if record.get("status") != "ok" or record["key"].get("input") not in JUDGED_INPUTS:
        return None
    metrics = record.get("metrics", {})
    rate = value_of(metrics.get("examples_per_s"))
    ref_rate = value_of(reference.get("metrics", {}).get("examples_per_s")) if reference else None
    if rate is not None and ref_rate and reference is not None:
        share = rate / ref_rate
        noise = noise_for((record, reference))
        found = {
            "unit": "bool",
            "share_of_synthetic": share,
            "reference_cell": reference["cell_id"],
            "noise_threshold": noise.threshold,
            "noise_source": noise.source,
        }
        below = 1.0 / (1.0 + noise.band)
        interval = _share_interval(share, record, reference)
        if interval is None:
            found["value"] = share < below
            found["method"] = (
                f"examples/s / that of the synthetic cell with the same key < {below:.3g} = "
                f"1 / (1 + T), noise threshold T = {noise.describe()}; no step times for an "
                "interval"
            )
            return found
        found["value"] = beyond(*interval, noise.band) == "below"
        found["share_ci95"] = list(interval)
        found["method"] = (
            f"95% CI of examples/s / that of the synthetic cell with the same key wholly below "
            f"{below:.3g} = 1 / (1 + T), noise threshold T = {noise.describe()}"
        )
        return found
    wait = value_of(metrics.get("input_wait_fraction"))
    if wait is None:
        return None
    return {
        "value": wait > WAIT_FRACTION,
        "unit": "bool",
        "method": f"no ok synthetic cell with the same key in this run: input wait fraction > "
        f"{WAIT_FRACTION:g}",
        "input_wait_fraction": wait,
    }


def _share_interval(
    share: float, record: dict[str, Any], reference: dict[str, Any]
) -> tuple[float, float] | None:
    """The 95% interval of ``share`` from both cells' step times (seeded), or None without
    them. The share is the synthetic cell's median step time over this cell's (same batch)."""
    mine = finite_samples((record.get("samples") or {}).get("step_time_s"))
    ref = finite_samples((reference.get("samples") or {}).get("step_time_s"))
    if not mine or not ref or min(mine) <= 0 or min(ref) <= 0:
        return None
    step, lo, hi = ratio_of_medians_ci(ref, mine)  # this cell's median step / the synthetic's
    # the share is proportional to 1 / that ratio: the interval flips
    return share * step / hi, share * step / lo


def apply(record: dict[str, Any], records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``record`` with its ``input_bound`` flag and metric set from ``records`` (a copy if changed)."""
    verdict = judge(record, find_reference(record, records))
    flags = [f for f in record.get("flags", []) if f != FLAG]
    metrics = {k: v for k, v in record.get("metrics", {}).items() if k != FLAG}
    if verdict is not None:
        metrics[FLAG] = verdict
        if verdict["value"]:
            flags.append(FLAG)
    if flags == record.get("flags", []) and metrics == record.get("metrics", {}):
        return record
    updated = copy.copy(record)
    updated["flags"], updated["metrics"] = flags, metrics
    return updated


def rejudge(reference: dict[str, Any], records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records whose verdict changes now that ``reference`` (a synthetic cell) is known."""
    if reference["key"].get("input") != "synthetic":
        return []
    pool = list(records)
    want = reference_key(reference["key"])
    changed = []
    for record in pool:
        if record["key"].get("input") in JUDGED_INPUTS and reference_key(record["key"]) == want:
            updated = apply(record, [reference, *pool])
            if updated is not record:
                changed.append(updated)
    return changed

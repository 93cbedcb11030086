"""Merge the records of one cell measured in N fresh processes (``measure.repeats``).

Within-process samples say how noisy steps are; only separate processes show the variance a
user meets between two runs (allocation, thread placement, clock state, compile decisions).
The merged record pools every repeat's step times for the headline statistics, re-derives
throughput and the metrics derived from it at the pooled median (``bench.measure.derive``), and keeps each repeat's own figures under
``repeats`` (compile time and memory included, so a gate has samples of them too).
"""

from __future__ import annotations

import copy
import statistics
from typing import Any

from bench.measure.derive import Basis, derive
from bench.measure.stats import summarize
from bench.measure.waits import input_metrics
from bench.metrics import metric, per_process, value_of


def summary_of(record: dict[str, Any]) -> dict[str, Any]:
    """One process's own figures: every metric the registry says is one value per process."""
    metrics = record.get("metrics", {})
    out: dict[str, Any] = {"status": record["status"], "reason": record.get("reason", "")}
    for name in per_process():
        out[name] = value_of(metrics.get(name))
    out["median_step_s"] = value_of(metrics.get("step_time_s"), "median")
    return out


def merge_repeats(records: list[dict[str, Any]], *, n_boot: int = 2000) -> dict[str, Any]:
    """The cell's one record; ``n_boot``: the pooled intervals' bootstrap draws (a caller that
    reads only the pooled statistics, such as ``bench tune``'s race, asks for few)."""
    n = len(records)
    bad = [(i, r) for i, r in enumerate(records, 1) if r["status"] != "ok"]
    if len(bad) == n or not records:
        merged = copy.deepcopy(records[-1])
        merged["reason"] = f"all {n} repeats failed; last: {merged.get('reason', '')}"
        merged["repeats"] = [summary_of(r) for r in records]
        return merged
    ok = [r for r in records if r["status"] == "ok"]
    merged = copy.deepcopy(ok[0])
    merged["repeats"] = [summary_of(r) for r in records]
    if bad:
        # A cell that fails in one process out of N is flaky: it must not read as ok.
        index, first_bad = bad[0]
        merged["status"] = first_bad["status"]
        merged["reason"] = f"repeat {index}/{n}: {first_bad.get('reason', '')}"

    if any("step_time_s" not in (r.get("samples") or {}) for r in ok):
        # Requests under load (serve, generate): each process served a load of its own, with
        # no step times to pool; the first ok process's figures stand, every one's in repeats.
        merged.setdefault("flags", []).append("repeats_not_pooled")
        return merged
    by_repeat = [r["samples"]["step_time_s"] for r in ok]
    pooled = [t for samples in by_repeat for t in samples]
    metrics = merged["metrics"]
    steps = summarize(pooled, n_boot=n_boot)
    method = metrics["step_time_s"]["method"] + f"; pooled over {len(ok)} processes"
    metrics["step_time_s"] = {"unit": "s", "method": method, **steps}
    per_call = merged["key"].get("steps_per_call", 1)
    of_step = f" (call time / steps_per_call={per_call})" if per_call > 1 else ""
    how = f"batch_size / median step time{of_step} pooled over {len(ok)} processes"
    basis = Basis(merged["key"]["batch_size"], steps["median"], how, "the pooled median")
    metrics.update(derive(metrics, basis))
    if "latency_per_batch_s" in metrics:
        metrics["latency_per_batch_s"].update(p50=steps["p50"], p99=steps["p99"])
    medians = [statistics.median(s) for s in by_repeat]
    if len(medians) >= 2:
        cv = statistics.stdev(medians) / statistics.mean(medians)
        metrics["between_process_cv"] = metric(
            cv, "fraction", f"stdev / mean of the median step time of {len(medians)} processes"
        )
    merged["samples"] = {
        "step_time_s": pooled,
        "step_time_s_by_repeat": by_repeat,
        "warmup_s": ok[0]["samples"].get("warmup_s", []),
    }
    if all("input_wait_s" in r["samples"] for r in ok):
        # Input waits pooled the same way, so the wait fraction covers every process.
        waits = [w for r in ok for w in r["samples"]["input_wait_s"]]
        fill = metrics.get("cache_fill_s")
        metrics.update(input_metrics(waits, pooled, value_of(fill) if fill else None))
        metrics["input_wait_s"]["method"] += f"; pooled over {len(ok)} processes"
        merged["samples"]["input_wait_s"] = waits
    return merged

"""Merge the records that each process of a multi-host run made of the same cell.

Every process times the same synchronous data-parallel steps (each holds a gradient
all-reduce), so their step times agree up to the clock of each host; the slowest host bounds
the job. The merged record is process 0's, with:

- ``hosts``: each process's own figures (process id, hostname, status, its median and p99 step
  time, the throughput it saw, compile and first-step time, memory, energy);
- the aggregate: ``examples_per_s`` = global batch / the slowest host's median step time, the
  metrics derived from throughput re-derived at it (``bench.measure.derive``), and ``energy_j`` summed over hosts where every
  host measured it. A cell that failed on any host is not ok, with that host's reason.
"""

from __future__ import annotations

import copy
from typing import Any

from bench.measure.derive import Basis, derive
from bench.metrics import per_process, value_of


def host_summary(record: dict[str, Any]) -> dict[str, Any]:
    metrics = record.get("metrics", {})
    steps = metrics.get("step_time_s")
    out: dict[str, Any] = {
        **record.get("host", {}),
        "status": record["status"],
        "reason": record.get("reason", ""),
        "median_step_s": value_of(steps, "median"),
        "p99_step_s": value_of(steps, "p99"),
    }
    for name in per_process():
        out[name] = value_of(metrics.get(name))
    return out


def merge_hosts(records: list[dict[str, Any]]) -> dict[str, Any]:
    """``records`` in process-id order; the first is process 0's."""
    merged = copy.deepcopy(records[0])
    merged["hosts"] = [host_summary(r) for r in records]
    merged.pop("host", None)
    bad = [r for r in records if r["status"] != "ok"]
    if bad:
        first = bad[0]
        if merged["status"] == "ok" or first is not records[0]:
            pid = first.get("host", {}).get("process_id", "?")
            merged["status"] = first["status"]
            merged["reason"] = f"process {pid}: {first.get('reason', '')}"
        return merged

    medians = [value_of(r["metrics"]["step_time_s"], "median") or 0.0 for r in records]
    slowest = max(medians)
    metrics = merged["metrics"]
    batch = merged["key"]["batch_size"]
    examples = None
    energies = [value_of(r["metrics"].get("energy_j")) for r in records]
    if all(e is not None for e in energies) and "energy_j" in metrics:
        metrics["energy_j"] = {
            **metrics["energy_j"],
            "value": sum(e for e in energies if e is not None),
            "method": metrics["energy_j"].get("method", "") + f"; summed over {len(records)} hosts",
        }
        # Every host timed the same steps of the same global batch: all hosts' joules per example.
        examples = batch * len(merged.get("samples", {}).get("step_time_s", []))
    if slowest > 0:
        how = f"global batch_size / median step time of the slowest of {len(records)} processes"
        basis = Basis(batch, slowest, how, "the slowest process's")
        metrics.update(derive(metrics, basis, examples=examples))
    return merged

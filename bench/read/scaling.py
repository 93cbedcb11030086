"""Data parallelism as plain arithmetic: how a global batch splits over replicas, and how well
throughput scales with them. Pure functions over cell keys and records; no framework here.

Semantics (documented in docs/scaling.md): a cell's ``batch_size`` is the GLOBAL batch of one step,
split evenly over its ``replicas`` (across every process of a multi-host run), so a cell with
``batch_size: 256, replicas: 4`` trains on the same 256 examples per step as one with
``replicas: 1``, each device computing 64 of them. Comparing such cells is strong scaling.

Scaling efficiency of a cell on N > 1 replicas = throughput(N) / (N x throughput(1)), where the
reference throughput(1) is an ``ok`` cell that differs only in replicas:

- ``strong``: the reference has the same global batch (each of the N devices does 1/N of it);
- ``weak``: the reference's batch equals this cell's per-device batch (each device does as much
  work as the single device did), present when the scenario swept such a batch size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bench.metrics import value_of


def resolved_replicas(record: Mapping[str, Any]) -> int:
    """Replicas a record ran on: the resolved count it recorded, else its key (1 for records
    written before the replicas axis existed)."""
    parallel = record.get("parallelism") or {}
    if isinstance(parallel.get("replicas"), int):
        return parallel["replicas"]
    requested = record.get("key", {}).get("replicas", 1)
    return requested if isinstance(requested, int) else 0  # "all" never resolved: unknown


def _ident(key: Mapping[str, Any], *drop: str) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in key.items() if k not in drop))


def scaling_efficiency(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``{cell_id: {"strong": e, "weak": e}}`` for every ok cell on more than one replica that
    has a single-replica reference (either key absent when its reference is missing)."""
    ok = [
        r
        for r in records
        if r.get("status") == "ok" and value_of(r["metrics"].get("examples_per_s"))
    ]
    single: dict[tuple, float] = {}
    for r in ok:
        if resolved_replicas(r) == 1:
            single[_ident(r["key"], "replicas")] = value_of(r["metrics"]["examples_per_s"]) or 0.0
    out: dict[str, dict[str, float]] = {}
    for r in ok:
        n = resolved_replicas(r)
        if n <= 1:
            continue
        rate = value_of(r["metrics"]["examples_per_s"]) or 0.0
        found: dict[str, float] = {}
        strong = single.get(_ident(r["key"], "replicas"))
        if strong:
            found["strong"] = rate / (n * strong)
        batch = r["key"]["batch_size"]
        if batch % n == 0:
            weak_key = {**r["key"], "batch_size": batch // n}
            weak = single.get(_ident(weak_key, "replicas"))
            if weak:
                found["weak"] = rate / (n * weak)
        if found:
            out[r["cell_id"]] = found
    return out


def efficiency_entries(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``scaling_efficiency`` as a metric entry per cell id (``strong``/``weak`` beside unit and
    method), for the reading side's fields: ``{cell_id: {"scaling_efficiency": entry}}``."""
    method = (
        "examples/s on N replicas / (N x examples/s of the same cell on 1 replica in this run); "
        "strong: same global batch, weak: 1 replica on this cell's per-device batch"
    )
    return {
        cell_id: {"scaling_efficiency": {**found, "unit": "fraction", "method": method}}
        for cell_id, found in scaling_efficiency(records).items()
    }

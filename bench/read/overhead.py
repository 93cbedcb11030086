"""A model server's own overhead: what serving a model behind a network endpoint adds to the
latency of serving it in-process, at the same offered rate.

An endpoint cell (``endpoint: NAME``) and an in-process cell of the same run that differ in
nothing else (model, framework, device, precision, arrivals, batching) both measured latency
from the scheduled arrival with the same requests; at one offered rate, the difference of
their latencies at the SLO percentile is the server's overhead: its HTTP or gRPC stack,
serialisation and the network path. Rates: the endpoint cell's reported rate (its max
compliant rate under a search); the in-process latency there is the in-process probe at that
rate, or the straight line between the two probes around it (never extrapolated). Pure
functions over records; no framework here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import pairwise
from typing import Any

from bench.read.slo import reported_probe

SAME_RATE = 0.005  # probes within 0.5% of each other are at the same rate


def _ident(key: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in key.items() if k not in ("endpoint", "target_qps")))


def _at_rate(record: Mapping[str, Any], rate: float) -> tuple[float, str] | None:
    """The in-process latency at the SLO percentile at ``rate``, and how it was read."""
    probes = sorted(
        (
            (p["offered_qps"], p["slo_latency_s"])
            for p in (record.get("serve") or {}).get("probes", [])
            if p.get("offered_qps") and p.get("valid") and p.get("slo_latency_s") is not None
        ),
        key=lambda t: t[0],
    )
    for q, lat in probes:
        if abs(q - rate) <= SAME_RATE * rate:
            return lat, f"its probe at {q:.4g} QPS"
    for (q0, l0), (q1, l1) in pairwise(probes):
        if q0 < rate < q1:
            lat = l0 + (l1 - l0) * (rate - q0) / (q1 - q0)
            return lat, f"interpolated between its probes at {q0:.4g} and {q1:.4g} QPS"
    return None


def server_overhead(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{endpoint cell id: {"server_overhead_s": entry}}`` for each ok endpoint cell with an
    in-process twin in the run whose probes cover its reported rate."""
    records = [r for r in records if r.get("status") == "ok" and r.get("serve")]
    # In-process cells that differ only in the rate asked (a search, a fixed rate) are all
    # twins: any of them may have measured the endpoint's rate.
    twins: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in records:
        if r["key"].get("endpoint", "in_process") == "in_process":
            twins.setdefault(_ident(r["key"]), []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        name = r["key"].get("endpoint", "in_process")
        probe = reported_probe(r)
        if (
            name == "in_process"
            or probe is None
            or not probe.get("offered_qps")  # a single stream: no rate to match
            or probe.get("slo_latency_s") is None
        ):
            continue
        readings = [
            (twin, found)
            for twin in twins.get(_ident(r["key"]), [])
            if (found := _at_rate(twin, probe["offered_qps"])) is not None
        ]
        if not readings:
            continue
        # A probe at the very rate before a line between two probes.
        twin, (inproc, how) = min(readings, key=lambda t: "interpolated" in t[1][1])
        pct = (r["serve"].get("slo") or {}).get("percentile", 99)
        out[r["cell_id"]] = {
            "server_overhead_s": {
                "value": probe["slo_latency_s"] - inproc,
                "unit": "s",
                "method": f"p{pct:g} latency at {probe['offered_qps']:.4g} QPS behind endpoint "
                f"{name} ({probe['slo_latency_s'] * 1e3:.3g} ms) minus in-process cell "
                f"{twin['cell_id']} ({inproc * 1e3:.3g} ms, {how})",
                "endpoint_s": probe["slo_latency_s"],
                "in_process_s": inproc,
                "offered_qps": probe["offered_qps"],
            }
        }
    return out


GEN_OVERHEAD = (("ttft_s", "server_ttft_overhead_s", "TTFT"), ("tpot_s", "server_tpot_overhead_s",
                "TPOT"))  # fmt: skip


def _gen_probe_at(record: Mapping[str, Any], rate: float) -> Mapping[str, Any] | None:
    for p in (record.get("generate") or {}).get("probes", []):
        q = p.get("offered_qps")
        if q and p.get("valid", True) and abs(q - rate) <= SAME_RATE * rate:
            return p
    return None


def generation_overhead(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{endpoint cell id: {"server_ttft_overhead_s": ..., "server_tpot_overhead_s": ...}}``
    for each ok generate endpoint cell with an in-process twin in the run (the same key but
    the endpoint and the rate asked) that probed its reported rate: the difference of the
    medians of TTFT and of TPOT at that rate. Medians, not the slo's percentile: an overhead
    is the typical request's cost of the server's HTTP stack, streaming and the network path,
    and a p99 of a short load is one request. No line between two probes: generation probes
    are few and a rate's TTFT is not linear in it."""
    records = [r for r in records if r.get("status") == "ok" and r.get("generate")]
    twins: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in records:
        if r["key"].get("endpoint", "in_process") == "in_process":
            twins.setdefault(_ident(r["key"]), []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        name = r["key"].get("endpoint", "in_process")
        probe = reported_probe(r) if name != "in_process" else None
        rate = probe.get("offered_qps") if probe else None
        if not rate:
            continue  # offline: the "same rate" is each side's own capacity
        for twin in twins.get(_ident(r["key"]), []):
            other = _gen_probe_at(twin, rate)
            if other is None:
                continue
            entries = {}
            for stat, metric_name, label in GEN_OVERHEAD:
                mine, theirs = (
                    (probe.get(stat) or {}).get("p50"),
                    (other.get(stat) or {}).get("p50"),
                )
                if mine is None or theirs is None:
                    continue
                entries[metric_name] = {
                    "value": mine - theirs,
                    "unit": "s",
                    "method": f"median {label} at {rate:.4g} requests/s behind endpoint {name} "
                    f"({mine * 1e3:.4g} ms) minus in-process cell {twin['cell_id']} "
                    f"({theirs * 1e3:.4g} ms) at the same rate",
                    "endpoint_s": mine,
                    "in_process_s": theirs,
                    "offered_qps": rate,
                }
            if entries:
                out[r["cell_id"]] = entries
                break
    return out

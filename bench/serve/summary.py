"""One rate's numbers from a ``Trace``: latency percentiles and histogram, batches, queueing vs
compute time, late and dropped requests, the generator's lateness, and the SLO verdict.

Percentiles are nearest-rank (MLPerf's rule: the p99 is a latency some request really had), over
the counted requests with every dropped request taken as infinitely late: a server that drops
what it cannot answer must not look faster for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.serve.batching import Trace
from bench.serve.target import Run

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
# Histogram bins: log-spaced from 10 us to 100 s, 10 per decade (latencies span decades).
HIST_EDGES_S = tuple(10.0 ** (k / 10) for k in range(-50, 21))
# The generator is behind when it spread the requests over this much more time than scheduled.
BEHIND_RATIO = 1.05


@dataclass(frozen=True)
class Slo:
    percentile: float
    latency_s: float

    def describe(self) -> str:
        return f"p{self.percentile:g} <= {self.latency_s * 1e3:g} ms"


def stat_name(p: float) -> str:
    """``p99``, ``p99_9``: the key of a percentile in a record."""
    return "p" + f"{p:g}".replace(".", "_")


def nearest_rank(sorted_values: np.ndarray, p: float) -> float:
    n = len(sorted_values)
    return float(sorted_values[min(n - 1, max(0, math.ceil(p / 100.0 * n) - 1))])


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _spread(values: np.ndarray) -> dict[str, Any]:
    if len(values) == 0:
        return {"n": 0}
    s = np.sort(values)
    return {
        "n": len(s),
        "mean": float(s.mean()),
        "p50": nearest_rank(s, 50),
        "p99": nearest_rank(s, 99),
        "max": float(s[-1]),
    }


def summarize_trace(
    trace: Trace, warmup: int, offered_qps: float | None, arrivals: str, slo: Slo
) -> dict[str, Any]:
    """The probe record of one rate (``offered_qps`` None: single stream)."""
    n_all = len(trace.scheduled)
    keep = slice(min(warmup, n_all), n_all)
    scheduled, issued = trace.scheduled[keep], trace.issued[keep]
    started, done = trace.started[keep], trace.done[keep]
    answered = ~np.isnan(done)
    latency = np.where(answered, done - scheduled, np.inf)
    ordered = np.sort(latency)
    n = len(latency)
    span = float(scheduled[-1] - scheduled[0]) if n > 1 else 0.0
    out: dict[str, Any] = {
        "offered_qps": offered_qps,
        "arrivals": arrivals,
        "queries": n,
        "warmup_queries": min(warmup, n_all),
        "seconds": span,
        "answered": int(answered.sum()),
        "dropped": int(n - answered.sum()),
    }
    lat: dict[str, Any] = {"unit": "s", "n": int(answered.sum())}
    if answered.any():
        lat["mean"] = float(latency[answered].mean())
        lat["max"] = float(latency[answered].max())
    for p in PERCENTILES:
        lat[stat_name(p)] = _finite(nearest_rank(ordered, p))
    out["latency_s"] = lat
    counts, _ = np.histogram(
        np.clip(latency[answered], HIST_EDGES_S[0], HIST_EDGES_S[-1]), HIST_EDGES_S
    )
    nz = np.nonzero(counts)[0]
    out["histogram"] = (
        {"edges_s": [HIST_EDGES_S[k] for k in range(nz[0], nz[-1] + 2)],
         "counts": counts[nz[0] : nz[-1] + 1].tolist()}
        if len(nz) else {"edges_s": [], "counts": []}
    )  # fmt: skip
    out["served_qps"] = (
        float(answered.sum() / (np.nanmax(done) - scheduled[0]))
        if answered.any() and np.nanmax(done) > scheduled[0]
        else None
    )
    # Batches: each request carries its batch's size, so a batch of k counts k times; the
    # mean over batches divides by it again.
    sizes, buckets = trace.batch[keep][answered], trace.bucket[keep][answered]
    if len(sizes):
        batches = float(np.sum(1.0 / sizes))
        out["batch_size"] = {
            "mean": float(len(sizes) / batches),
            "max": int(sizes.max()),
            "requests_by_size": {int(k): int(v) for k, v in zip(*np.unique(sizes, return_counts=True), strict=True)},
        }  # fmt: skip
        out["padding_waste"] = float(1.0 - len(sizes) / np.sum(buckets / sizes))
        out["queue_s"] = _spread((started - scheduled)[answered])
        out["compute_s"] = _spread((done - started)[answered])
    out["issue_lateness_s"] = _spread(lateness(trace, keep))
    behind = ""
    if offered_qps is not None and n > 1 and span > 0:
        issued_span = float(issued[-1] - issued[0])
        out["issued_qps"] = (n - 1) / issued_span if issued_span > 0 else None
        if issued_span > span * BEHIND_RATIO:
            behind = (
                f"the load generator could not keep up: it issued {n} requests over "
                f"{issued_span:.3g} s where {span:.3g} s were scheduled "
                f"({(n - 1) / issued_span:.4g} of {offered_qps:.4g} QPS offered)"
            )
    out["over_slo"] = int(np.sum(latency > slo.latency_s))
    at = nearest_rank(ordered, slo.percentile)
    if not behind and at > slo.latency_s:
        # Latency counts from the schedule, so a late generator only makes the server look
        # worse: where the SLO is missed from the schedule but met from the hand-over, the
        # generator decided the verdict, and the rate was not measured.
        from_issue = np.sort(np.where(answered, done - issued, np.inf))
        if nearest_rank(from_issue, slo.percentile) <= slo.latency_s:
            behind = (
                f"the load generator was late (issue lateness p99 "
                f"{out['issue_lateness_s'].get('p99', 0) * 1e3:.3g} ms): the SLO is missed "
                "from the scheduled arrivals but met from the hand-overs"
            )
    out["slo_latency_s"] = _finite(at)
    out["valid"] = not behind
    out["invalid_reason"] = behind
    out["meets_slo"] = bool(not behind and at <= slo.latency_s)
    return out


def lateness(trace: Trace, keep: slice = slice(None)) -> np.ndarray:
    late = trace.issued[keep] - trace.scheduled[keep]
    return late[~np.isnan(late)]


def summarize(
    run: Run, warmup: int, offered_qps: float | None, arrivals: str, slo: Slo
) -> dict[str, Any]:
    """The probe record of one rate on any target: ``summarize_trace``'s numbers, the
    server's batches where the target sees them (None where not: a network client does not),
    and what the client cost (its wait for a free sender and the round trip from sending).
    Failed requests have no answer, so they count as infinitely late; their reasons are
    counted. Every target gives the same keys."""
    trace = run.trace
    n_all = len(trace.scheduled)
    keep = slice(min(warmup, n_all), n_all)
    answered = ~np.isnan(trace.done)
    if not run.batches_seen:
        trace.batch[answered] = trace.bucket[answered] = 1  # placeholders, dropped below
    out = summarize_trace(trace, warmup, offered_qps, arrivals, slo)
    if not run.batches_seen:
        out.update(dict.fromkeys(("batch_size", "padding_waste", "queue_s", "compute_s")))
    for name in ("batch_size", "padding_waste", "queue_s", "compute_s"):
        out.setdefault(name, None)
    sent, issued = run.sent[keep], trace.issued[keep]
    ok = answered[keep]
    out["round_trip_s"] = _spread((trace.done[keep] - sent)[ok])
    was_sent = ~np.isnan(sent)
    out["client_wait_s"] = _spread((sent - issued)[was_sent])
    counted = run.errors[keep]
    failed = [e for e in counted if e is not None]
    reasons: dict[str, int] = {}
    for e in failed:
        reasons[e] = reasons.get(e, 0) + 1
    out["errors"] = len(failed)
    out["error_rate"] = len(failed) / max(1, len(counted))
    out["error_reasons"] = dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:5])
    out["dropped"] = int(out["dropped"] - len(failed))  # unanswered without an error
    out["max_in_flight"] = run.max_in_flight
    out["in_flight_full"] = run.in_flight_full
    if out["valid"] and not out["meets_slo"] and run.in_flight_full:
        # Latency counts from the schedule, so a saturated client only makes the server look
        # worse; where the SLO is met from the sending, over the requests the client managed
        # to send, the client decided the verdict.
        from_sent = np.where(ok, trace.done[keep] - sent, np.inf)[was_sent]
        if len(from_sent) and nearest_rank(np.sort(from_sent), slo.percentile) <= slo.latency_s:
            wait = out["client_wait_s"].get("p99", 0.0) * 1e3
            out["valid"] = False
            out["invalid_reason"] = (
                f"the client was saturated: {run.in_flight_full} requests found all "
                f"{run.max_in_flight} senders busy (max_in_flight; wait p99 {wait:.3g} ms); the "
                "SLO is missed from the scheduled arrivals but met from the sending"
            )
    return out

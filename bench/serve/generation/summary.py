"""One load's numbers from its measured requests: TTFT, TPOT, inter-token and end-to-end
latency percentiles, token rates, goodput, and the verdict against the scenario's limits.

Percentiles are nearest-rank over every request of the load, a failed or unfinished request
counting as infinitely late (``bench.serve.summary``'s rule): an engine that cannot keep up
must not look faster for what it left unanswered. TPOT is per request ((end - first token) /
(tokens - 1)); the inter-token distribution pools every gap of every request.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.serve.generation.record import Generated
from bench.serve.summary import nearest_rank, stat_name

PERCENTILES = (50.0, 90.0, 95.0, 99.0)


@dataclass(frozen=True)
class GenSlo:
    """Limits a request must meet at ``percentile``; None: not stated. At least one is."""

    percentile: float
    ttft_s: float | None = None
    tpot_s: float | None = None
    latency_s: float | None = None  # end to end

    def describe(self) -> str:
        parts = [
            f"{name} <= {limit * 1e3:g} ms"
            for name, limit in (("TTFT", self.ttft_s), ("TPOT", self.tpot_s),
                                ("latency", self.latency_s))
            if limit is not None
        ]  # fmt: skip
        return f"p{self.percentile:g} " + " and ".join(parts)

    def limits(self) -> list[tuple[str, float]]:
        named = (("ttft_s", self.ttft_s), ("tpot_s", self.tpot_s), ("latency_s", self.latency_s))
        return [(name, limit) for name, limit in named if limit is not None]


def percentiles(values: Sequence[float], unit: str = "s") -> dict[str, Any]:
    """Nearest-rank percentiles (inf kept: a failed request is infinitely late), mean and max
    of the finite values; None where a percentile lands on a failed request."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    finite = ordered[np.isfinite(ordered)]
    out: dict[str, Any] = {"unit": unit, "n": len(finite)}
    if len(finite):
        out["mean"] = float(finite.mean())
        out["max"] = float(finite[-1])
    for p in PERCENTILES:
        at = nearest_rank(ordered, p) if len(ordered) else math.nan
        out[stat_name(p)] = at if math.isfinite(at) else None
    return out


def _late(value: float | None) -> float:
    return math.inf if value is None else value


def summarize(
    records: Sequence[Generated],
    slo: GenSlo,
    offered_qps: float | None,
    arrivals: str,
    duration_s: float,
) -> dict[str, Any]:
    """The probe record of one load (the same keys in process and against an endpoint)."""
    n = len(records)
    ok = [r for r in records if r.ok]
    per = {
        "ttft_s": [_late(r.ttft) for r in records],
        "tpot_s": [_late(r.tpot) if r.ok else math.inf for r in records],
        "latency_s": [_late(r.latency) for r in records],
    }
    # A one-token request has no TPOT: it meets any TPOT limit, and is left out of TPOT's
    # percentiles rather than counted as 0 or as late.
    tpot = [t for t, r in zip(per["tpot_s"], records, strict=True) if not (r.ok and r.tpot is None)]
    gaps = [g for r in ok for g in r.inter_token()]
    output = sum(r.generated for r in ok)
    prompt = sum(r.prompt_tokens for r in ok)
    errors: dict[str, int] = {}
    for r in records:
        if not r.ok:
            errors[r.error] = errors.get(r.error, 0) + 1
    out: dict[str, Any] = {
        "offered_qps": offered_qps,
        "arrivals": arrivals,
        "requests": n,
        "answered": len(ok),
        "errors": n - len(ok),
        "error_rate": (n - len(ok)) / max(1, n),
        "error_reasons": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5]),
        "seconds": duration_s,
        "ttft_s": percentiles(per["ttft_s"]),
        "tpot_s": percentiles(tpot),
        "itl_s": percentiles(gaps),
        "latency_s": percentiles(per["latency_s"]),
        "queue_s": percentiles([r.started - r.scheduled for r in records if r.started is not None]),
        "prompt_tokens": prompt,
        "output_tokens": output,
        "output_tokens_per_s": output / duration_s if duration_s > 0 else None,
        "total_tokens_per_s": (output + prompt) / duration_s if duration_s > 0 else None,
        "requests_per_s": len(ok) / duration_s if duration_s > 0 else None,
    }
    good = sum(
        1
        for i, r in enumerate(records)
        if r.ok and all(_value(per, i, r, name) <= limit for name, limit in slo.limits())
    )
    out["goodput"] = {
        "requests_per_s": good / duration_s if duration_s > 0 else None,
        "fraction": good / max(1, n),
        "method": f"requests meeting every limit ({slo.describe().split(' ', 1)[1]}) per second "
        "of the load",
    }
    out.update(verdict(per, tpot, slo))
    return out


def _value(per: dict[str, list[float]], i: int, r: Generated, name: str) -> float:
    if name == "tpot_s" and r.tpot is None:
        return 0.0  # one token: no time per output token to exceed
    return per[name][i]


def verdict(per: dict[str, list[float]], tpot: list[float], slo: GenSlo) -> dict[str, Any]:
    """Whether each stated limit holds at the percentile, and which did not."""
    at: dict[str, float | None] = {}
    missed = []
    for name, limit in slo.limits():
        values = np.sort(np.asarray(tpot if name == "tpot_s" else per[name], dtype=np.float64))
        found = nearest_rank(values, slo.percentile) if len(values) else 0.0
        at[name] = found if math.isfinite(found) else None
        if not found <= limit:
            shown = "failed requests" if not math.isfinite(found) else f"{found * 1e3:.4g} ms"
            missed.append(f"{name[:-2].upper()} p{slo.percentile:g} {shown} > {limit * 1e3:g} ms")
    return {
        "slo_at": at,
        "meets_slo": not missed,
        "slo_miss": "; ".join(missed),
        # The search's generic message names one latency: the first limit's.
        "slo_latency_s": next(iter(at.values()), None),
        "valid": True,
        "invalid_reason": "",
    }


def engine_numbers(
    decode_steps: Sequence[tuple[int, float]], prefills: Sequence[tuple[int, float]]
) -> dict[str, Any]:
    """The engine's own costs: prefill tokens per second, and the decode step's median time
    by the number of rows that were decoding (the rest of the slots idle)."""
    by_active: dict[int, list[float]] = {}
    for active, seconds in decode_steps:
        by_active.setdefault(active, []).append(seconds)
    spent = sum(s for _, s in prefills)
    return {
        "prefill_tokens_per_s": sum(t for t, _ in prefills) / spent if spent > 0 else None,
        "prefills": len(prefills),
        "decode_steps": len(decode_steps),
        "decode_step_s_by_active": {
            str(k): statistics.median(v) for k, v in sorted(by_active.items())
        },
        "decode_step_s": statistics.median(s for _, s in decode_steps) if decode_steps else None,
        "mean_active": (
            sum(a for a, _ in decode_steps) / len(decode_steps) if decode_steps else None
        ),
    }

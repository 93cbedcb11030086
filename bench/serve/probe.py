"""One rate measured end to end on a target (``bench.serve.target``): a schedule, the load,
the summary. Real time, or simulated for a server of known service time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.serve.arrivals import Arrivals, schedule
from bench.serve.batching import Policy, simulate
from bench.serve.loadgen import Load, open_loop, single_stream
from bench.serve.summary import Slo, summarize, summarize_trace
from bench.serve.target import Clock, Run, Target


def measure_rate(
    target: Target,
    arrivals: Arrivals,
    rate: float,
    load: Load,
    slo: Slo,
    seed: int,
    keep: list[Run] | None = None,
    clock: Clock = time.perf_counter,
) -> dict[str, Any]:
    """``rate`` requests/s of open-loop load on the target; the probe record. ``keep``: a list
    that receives the run with every answer (to check them)."""
    count = load.warmup_queries + load.counted(rate)
    run = open_loop(target, arrivals, rate, count, seed, load.drain_s, keep is not None, clock)
    if keep is not None:
        keep.append(run)
    return _check_minimums(summarize(run, load.warmup_queries, rate, arrivals, slo), load)


def measure_single_stream(
    target: Target,
    load: Load,
    slo: Slo,
    keep: list[Run] | None = None,
    clock: Clock = time.perf_counter,
) -> dict[str, Any]:
    run = single_stream(target, load, keep is not None, clock)
    if keep is not None:
        keep.append(run)
    found = summarize(run, load.warmup_queries, None, "single_stream", slo)
    return _check_minimums(found, load)


def simulate_rate(
    service_s: Callable[[int], float],
    policy: Policy,
    arrivals: Arrivals,
    rate: float,
    load: Load,
    slo: Slo,
    seed: int,
) -> dict[str, Any]:
    """The same probe on a virtual clock, for a model of known service time (tests, and what
    queueing theory expects of a measured cell)."""
    count = load.warmup_queries + load.counted(rate)
    trace = simulate(schedule(arrivals, rate, count, seed), policy, service_s)
    return summarize_trace(trace, load.warmup_queries, rate, arrivals, slo)


def _check_minimums(found: dict[str, Any], load: Load) -> dict[str, Any]:
    """A rate capped by ``max_seconds`` below the minimums is no valid measurement."""
    if found["valid"] and found["queries"] < load.min_queries:
        found["valid"], found["meets_slo"] = False, False
        found["invalid_reason"] = (
            f"{found['queries']} requests measured, fewer than measure.serve.min_queries "
            f"({load.min_queries}) within measure.serve.max_seconds ({load.max_seconds:g} s)"
        )
    return found

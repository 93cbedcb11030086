"""One rate measured end to end: a schedule, the load, the summary. Real time or simulated."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.serve.arrivals import Arrivals, schedule
from bench.serve.batching import Policy, simulate
from bench.serve.endpoint import Client
from bench.serve.loadgen import Load, open_loop, single_stream
from bench.serve.remote import RemoteTrace, open_loop_remote, single_stream_remote
from bench.serve.server import Infer
from bench.serve.summary import Slo, summarize_remote, summarize_trace


def measure_rate(
    infer: Infer,
    policy: Policy,
    arrivals: Arrivals,
    rate: float,
    load: Load,
    slo: Slo,
    seed: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """``rate`` requests/s of open-loop load on the server; the probe record."""
    count = load.warmup_queries + load.counted(rate)
    trace = open_loop(infer, policy, arrivals, rate, count, seed, load.drain_s, clock)
    found = summarize_trace(trace, load.warmup_queries, rate, arrivals, slo)
    return _check_minimums(found, load)


def measure_single_stream(
    infer: Infer, load: Load, slo: Slo, clock: Callable[[], float] = time.perf_counter
) -> dict[str, Any]:
    trace = single_stream(infer, load, clock)
    found = summarize_trace(trace, load.warmup_queries, None, "single_stream", slo)
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


def measure_remote_rate(
    client: Client,
    bodies: list[bytes],
    arrivals: Arrivals,
    rate: float,
    load: Load,
    slo: Slo,
    seed: int,
    keep_outputs: list[RemoteTrace] | None = None,
) -> dict[str, Any]:
    """``rate`` requests/s of open-loop load on an endpoint; the probe record. ``keep_outputs``:
    a list that receives the run's trace with every answer (to check them)."""
    count = load.warmup_queries + load.counted(rate)
    run = open_loop_remote(
        client, bodies, arrivals, rate, count, seed, load.drain_s, keep_outputs is not None
    )
    if keep_outputs is not None:
        keep_outputs.append(run)
    found = summarize_remote(
        run.trace, run.errors, run.in_flight_full, client.endpoint.max_in_flight,
        load.warmup_queries, rate, arrivals, slo,
    )  # fmt: skip
    return _check_minimums(found, load)


def measure_remote_single_stream(
    client: Client, bodies: list[bytes], load: Load, slo: Slo
) -> dict[str, Any]:
    run = single_stream_remote(
        client, bodies, load.warmup_queries, load.min_queries, load.min_seconds, load.max_seconds
    )
    found = summarize_remote(
        run.trace, run.errors, 0, 1, load.warmup_queries, None, "single_stream", slo
    )
    return _check_minimums(found, load)

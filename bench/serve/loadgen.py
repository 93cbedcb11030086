"""Load: an open-loop generator that issues requests on schedule, and single-stream load.

Open loop (MLPerf's Server scenario): a dedicated thread hands each request to the server at its
scheduled time whatever the server is doing, and a request's latency runs from its *scheduled*
arrival to its result on the host. A server that stalls therefore shows the stall in every
request that arrived during it; a closed loop, which waits for an answer before sending the
next request, would delay the requests instead and hide all but one (coordinated omission).
How late the generator itself handed requests over is kept too (``issued - scheduled``).

Single stream (MLPerf's SingleStream, the edge and mobile case): one request at a time, the
next sent the moment the previous one is answered; latency runs from its sending.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.serve.arrivals import Arrivals, schedule
from bench.serve.batching import Policy, Trace
from bench.serve.server import Infer, Server

# The thread switch interval while load runs: Python hands the GIL to a waiting thread only
# every 5 ms by default, which would show up as generator lateness and batcher delay whenever
# the other thread runs Python code; 0.2 ms keeps both on time at a small cost in throughput.
SWITCH_INTERVAL_S = 0.0002
START_LEAD_S = 0.01  # the first request is due this long after the generator thread starts


@dataclass(frozen=True)
class Load:
    """How much load one rate gets: MLPerf-style validity (at least ``min_queries`` requests
    AND ``min_seconds`` of schedule, after ``warmup_queries`` that are not counted), at most
    ``max_seconds`` of schedule; unanswered requests are waited for ``drain_s`` at the end."""

    min_queries: int = 500
    min_seconds: float = 2.0
    warmup_queries: int = 50
    max_seconds: float = 60.0
    drain_s: float = 1.0

    def counted(self, rate: float) -> int:
        """Requests measured at ``rate``: both minimums met unless ``max_seconds`` caps them."""
        wanted = max(self.min_queries, math.ceil(rate * self.min_seconds))
        return max(1, min(wanted, math.floor(rate * self.max_seconds)))


def open_loop(
    infer: Infer,
    policy: Policy,
    arrivals: Arrivals,
    rate: float,
    count: int,
    seed: int,
    drain_s: float,
    clock: Callable[[], float] = time.perf_counter,
) -> Trace:
    """``count`` requests at ``rate`` on a seeded schedule, through a ``Server``; returns what
    happened to each. Requests still unanswered ``drain_s`` after the last was due are dropped."""
    offsets = schedule(arrivals, rate, count, seed)
    trace = Trace.empty(offsets)
    server = Server(infer, policy, trace, clock)
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        server.start()
        start = clock() + START_LEAD_S
        trace.scheduled += start
        generator = threading.Thread(
            target=_issue, args=(trace, server, clock), name="bench-loadgen", daemon=True
        )
        generator.start()
        generator.join()
        last_due = trace.scheduled[-1]
        server.all_answered.wait(timeout=max(0.0, last_due + drain_s - clock()))
        server.stop()
    finally:
        sys.setswitchinterval(previous)
    if server.error is not None:
        raise server.error
    return trace


def _issue(trace: Trace, server: Server, clock: Callable[[], float]) -> None:
    """The generator thread: sleep until each request is due, then hand it over at once."""
    for i, due in enumerate(trace.scheduled):
        wait = due - clock()
        if wait > 0:
            time.sleep(wait)
        now = clock()
        trace.issued[i] = now
        server.submit(i, now)


def single_stream(
    infer: Infer, load: Load, clock: Callable[[], float] = time.perf_counter
) -> Trace:
    """Single stream until both minimums are met (after the warm-up), at most ``max_seconds``."""
    sent: list[float] = []
    done: list[float] = []
    one = np.zeros(1, dtype=np.int64)
    i = 0
    while True:
        one[0] = i
        t0 = clock()
        infer(one, 1)
        t1 = clock()
        sent.append(t0)
        done.append(t1)
        i += 1
        counted = i - load.warmup_queries
        elapsed = t1 - (sent[load.warmup_queries] if counted > 0 else t1)
        enough = counted >= load.min_queries and elapsed >= load.min_seconds
        if enough or elapsed >= load.max_seconds:  # too few then: _check_minimums says so
            break
    trace = Trace.empty(np.asarray(sent))
    trace.issued[:] = trace.started[:] = trace.scheduled
    trace.done[:] = done
    trace.batch[:] = 1
    trace.bucket[:] = 1
    return trace

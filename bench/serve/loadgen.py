"""Load on a target (``bench.serve.target``: the worker's own server or a network endpoint):
an open-loop generator that issues requests on schedule, and single-stream load.

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
from dataclasses import dataclass

import numpy as np

from bench.serve.arrivals import Arrivals, schedule
from bench.serve.batching import Trace
from bench.serve.target import Clock, RequestError, Run, Session, Target

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
    target: Target,
    arrivals: Arrivals,
    rate: float,
    count: int,
    seed: int,
    drain_s: float,
    keep_outputs: bool = False,
    clock: Clock = time.perf_counter,
) -> Run:
    """``count`` requests at ``rate`` on a seeded schedule; what happened to each. Requests
    still unanswered ``drain_s`` after the last was due are dropped."""
    trace = Trace.empty(schedule(arrivals, rate, count, seed))
    session = target.session(trace, clock, keep_outputs)
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        session.start()
        trace.scheduled += clock() + START_LEAD_S
        generator = threading.Thread(
            target=_issue, args=(trace, session, clock), name="bench-loadgen", daemon=True
        )
        generator.start()
        generator.join()
        session.wait(trace.scheduled[-1] + drain_s - clock())
    finally:
        sys.setswitchinterval(previous)
    return session.finish()


def _issue(trace: Trace, session: Session, clock: Clock) -> None:
    """The generator thread: sleep until each request is due, then hand it over at once."""
    for i, due in enumerate(trace.scheduled):
        wait = due - clock()
        if wait > 0:
            time.sleep(wait)
        now = clock()
        trace.issued[i] = now
        session.submit(i, now)


def single_stream(
    target: Target, load: Load, keep_outputs: bool = False, clock: Clock = time.perf_counter
) -> Run:
    """One request at a time, the next sent when the previous is answered (or failed), until
    both minimums are met after the warm-up, for at most ``max_seconds``."""
    call = target.caller()
    sent: list[float] = []
    done: list[float] = []
    errors: list[str | None] = []
    outputs: list[np.ndarray | None] = []
    i = 0
    try:
        while True:
            t0 = clock()
            try:
                out: np.ndarray | None = call(i)
                t1, error = clock(), None
            except RequestError as exc:
                out, t1, error = None, float("nan"), str(exc)
            sent.append(t0)
            done.append(t1)
            errors.append(error)
            if keep_outputs:
                outputs.append(out)
            i += 1
            now = clock()
            counted = i - load.warmup_queries
            elapsed = now - (sent[load.warmup_queries] if counted > 0 else now)
            enough = counted >= load.min_queries and elapsed >= load.min_seconds
            if enough or elapsed >= load.max_seconds:  # too few then: the probe says so
                break
    finally:
        call.close()
    trace = Trace.empty(np.asarray(sent))
    trace.issued[:] = trace.started[:] = trace.scheduled
    trace.done[:] = done
    answered = ~np.isnan(trace.done)
    trace.batch[answered] = trace.bucket[answered] = 1  # one request is its own batch
    return Run(trace, trace.scheduled.copy(), errors, outputs, batches_seen=target.batches_seen)

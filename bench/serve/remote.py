"""Open-loop load on a model server over the network, with the in-process generator's rules.

The same schedule (``bench.serve.arrivals``) and the same latency definition: from a request's
*scheduled* arrival to its answer on this host, so neither a stalled server nor a slow client
can hide a delay (no coordinated omission). A generator thread hands each request over at its
due time to a pool of ``max_in_flight`` sender threads, each holding its own connection; a
request that finds every sender busy waits for one, and that wait counts in its latency.

What the client itself cost is kept apart, so it is never mistaken for the server's latency:
``issued - scheduled`` is the generator's lateness, ``started - issued`` the wait for a free
sender (the client was saturated), ``done - started`` the round trip. A request that failed
(HTTP error, refused, timed out, malformed body) has no ``done``: it counts as infinitely late
and its reason is kept.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bench.serve.arrivals import Arrivals, schedule
from bench.serve.batching import Trace
from bench.serve.endpoint import Client, EndpointError, Sender
from bench.serve.loadgen import START_LEAD_S, SWITCH_INTERVAL_S

# A request waited for a free sender when its hand-over and its sending are this far apart.
SATURATED_WAIT_S = 0.001


@dataclass
class RemoteTrace:
    trace: Trace  # started = when a sender began sending it
    errors: list[str | None]  # per request: why it failed, or None
    outputs: list[np.ndarray | None] = field(default_factory=list)  # kept when asked
    in_flight_full: int = 0  # requests that found all max_in_flight senders busy


def open_loop_remote(
    client: Client,
    bodies: list[bytes],
    arrivals: Arrivals,
    rate: float,
    count: int,
    seed: int,
    drain_s: float,
    keep_outputs: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> RemoteTrace:
    """``count`` requests at ``rate`` (request i sends ``bodies[i % len(bodies)]``)."""
    offsets = schedule(arrivals, rate, count, seed)
    return _run(client, bodies, offsets, drain_s, keep_outputs, clock)


def single_stream_remote(
    client: Client,
    bodies: list[bytes],
    warmup: int,
    min_queries: int,
    min_seconds: float,
    max_seconds: float,
    keep_outputs: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> RemoteTrace:
    """One request at a time, the next sent when the previous is answered (or failed)."""
    send = client.sender()
    sent: list[float] = []
    done: list[float] = []
    errors: list[str | None] = []
    outputs: list[np.ndarray | None] = []
    i = 0
    while True:
        t0 = clock()
        try:
            out = answer(send, bodies[i % len(bodies)])
            t1, error = clock(), None
        except EndpointError as exc:
            out, t1, error = None, float("nan"), str(exc)
        sent.append(t0)
        done.append(t1)
        errors.append(error)
        if keep_outputs:
            outputs.append(out)
        i += 1
        now = clock()
        counted = i - warmup
        elapsed = now - (sent[warmup] if counted > 0 else now)
        if (counted >= min_queries and elapsed >= min_seconds) or elapsed >= max_seconds:
            break
    send.close()
    trace = Trace.empty(np.asarray(sent))
    trace.issued[:] = trace.started[:] = trace.scheduled
    trace.done[:] = done
    return RemoteTrace(trace, errors, outputs)


def answer(send: Sender, body: bytes) -> np.ndarray:
    """One request's predictions, or EndpointError with the reason for whatever went wrong,
    so that every phase of a cell (alone, one at a time, capacity, under load) records a
    failed request alike, never as a crash of the cell."""
    try:
        out = send(body)
    except EndpointError:
        raise
    except Exception as exc:  # an answer no decoder check foresaw is still this request's
        raise EndpointError(f"malformed response: {type(exc).__name__}: {exc}"[:200]) from exc
    one_row(out)
    return out


def one_row(out: np.ndarray) -> None:
    """Every request carries one example: an answer of any other number of rows is not its."""
    if out.ndim == 0 or out.shape[0] != 1:
        raise EndpointError(
            f"malformed response: predictions of shape {list(out.shape)[:8]} for one example"
        )


def _run(
    client: Client,
    bodies: list[bytes],
    offsets: np.ndarray,
    drain_s: float,
    keep_outputs: bool,
    clock: Callable[[], float],
) -> RemoteTrace:
    n = len(offsets)
    trace = Trace.empty(offsets)
    errors: list[str | None] = [None] * n
    outputs: list[np.ndarray | None] = [None] * n if keep_outputs else []
    pending: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    limit = client.endpoint.max_in_flight
    finished = [0] * limit  # per sender, so no two threads write one counter
    all_done = threading.Event()
    full = [0]

    # Connections are opened before the first request is due, as a warm client pool holds
    # them: connecting (and the server accepting) is not a cost of the requests measured.
    opened = threading.Barrier(limit + 1)

    def sender_loop(slot: int) -> None:
        send = client.sender()
        send.open()
        opened.wait()
        while (i := pending.get()) is not None:
            trace.started[i] = clock()
            try:
                out = answer(send, bodies[i % len(bodies)])
                trace.done[i] = clock()
                if keep_outputs:
                    outputs[i] = out
            except EndpointError as exc:
                errors[i] = str(exc)
            finished[slot] += 1
            if sum(finished) >= n:
                all_done.set()
        send.close()  # connections do not outlive the rate they were opened for

    def generate() -> None:
        for i, due in enumerate(trace.scheduled):
            wait = due - clock()
            if wait > 0:
                time.sleep(wait)
            if i - sum(finished) >= limit:
                full[0] += 1
            trace.issued[i] = clock()
            pending.put(i)

    senders = [
        threading.Thread(target=sender_loop, args=(k,), name=f"bench-send-{k}", daemon=True)
        for k in range(limit)
    ]
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        for t in senders:
            t.start()
        opened.wait()
        trace.scheduled += clock() + START_LEAD_S
        generator = threading.Thread(target=generate, name="bench-loadgen", daemon=True)
        generator.start()
        generator.join()
        all_done.wait(timeout=max(0.0, trace.scheduled[-1] + drain_s - clock()))
    finally:
        sys.setswitchinterval(previous)
        for _ in senders:
            pending.put(None)
    # Senders still inside a request finish it in the background (daemon threads, bounded by
    # the endpoint's timeout): what had not finished by now is unanswered (dropped), and the
    # record is a copy, so nothing they write later changes it.
    cutoff = clock()
    done = np.where(trace.done <= cutoff, trace.done, np.nan)
    kept = Trace(
        trace.scheduled.copy(), trace.issued.copy(), trace.started.copy(), done,
        trace.batch.copy(), trace.bucket.copy(),
    )  # fmt: skip
    return RemoteTrace(kept, list(errors), list(outputs), full[0])

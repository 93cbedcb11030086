"""A model server over the network as a ``Target`` (``bench.serve.target``).

Request ``i`` sends ``bodies[i % len(bodies)]``, pre-encoded for the endpoint's protocol. Under
open-loop load the generator hands each request over at its due time to a pool of
``max_in_flight`` sender threads, each holding its own connection; a request that finds every
sender busy waits for one, and that wait counts in its latency (no coordinated omission).

What the client itself cost is kept apart, so it is never mistaken for the server's latency:
``sent - issued`` is the wait for a free sender (the client was saturated), ``done - sent`` the
round trip. A request that failed (HTTP error, refused, timed out, malformed body) has no
``done``: it counts as infinitely late and its reason is kept. The server's batches are not
visible from here.
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from bench.serve.batching import Trace
from bench.serve.endpoint import Client, EndpointError, Sender
from bench.serve.target import Clock, RequestError, Run, one_row


class EndpointTarget:
    kind = "endpoint"
    batches_seen = False

    def __init__(self, client: Client, bodies: list[bytes]):
        self.client, self.bodies = client, bodies

    def describe(self) -> str:
        return self.client.endpoint.describe()

    def session(self, trace: Trace, clock: Clock, keep_outputs: bool = False) -> _Pool:
        return _Pool(self, trace, clock, keep_outputs)

    def caller(self) -> _Caller:
        return _Caller(self)


class _Caller:
    def __init__(self, target: EndpointTarget):
        self.bodies = target.bodies
        self.send = target.client.sender()

    def __call__(self, index: int) -> np.ndarray:
        return answer(self.send, self.bodies[index % len(self.bodies)])

    def close(self) -> None:
        self.send.close()


class _Pool:
    """``max_in_flight`` sender threads, each with its own connection, fed by one queue."""

    def __init__(self, target: EndpointTarget, trace: Trace, clock: Clock, keep: bool):
        self.target, self.trace, self.clock, self.keep = target, trace, clock, keep
        n = len(trace.scheduled)
        self.limit = target.client.endpoint.max_in_flight
        self.sent = np.full(n, np.nan)
        self.errors: list[str | None] = [None] * n
        self.outputs: list[np.ndarray | None] = [None] * n if keep else []
        self.pending: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self.finished = [0] * self.limit  # per sender, so no two threads write one counter
        self.all_done = threading.Event()
        self.full = 0
        # Connections are opened before the first request is due, as a warm client pool holds
        # them: connecting (and the server accepting) is not a cost of the requests measured.
        self.opened = threading.Barrier(self.limit + 1)
        self.senders = [
            threading.Thread(target=self._loop, args=(k,), name=f"bench-send-{k}", daemon=True)
            for k in range(self.limit)
        ]

    def start(self) -> None:
        for t in self.senders:
            t.start()
        self.opened.wait()

    def submit(self, index: int, at: float) -> None:
        if index - sum(self.finished) >= self.limit:
            self.full += 1
        self.pending.put(index)

    def wait(self, timeout: float) -> None:
        self.all_done.wait(timeout=max(0.0, timeout))

    def finish(self) -> Run:
        for _ in self.senders:
            self.pending.put(None)
        # Senders still inside a request finish it in the background (daemon threads, bounded
        # by the endpoint's timeout): what had not finished by now is unanswered (dropped), and
        # the run is a copy, so nothing they write later changes it.
        cutoff = self.clock()
        t = self.trace
        done = np.where(t.done <= cutoff, t.done, np.nan)
        kept = Trace(
            t.scheduled.copy(), t.issued.copy(), t.started.copy(), done, t.batch.copy(),
            t.bucket.copy(),
        )  # fmt: skip
        return Run(
            kept, self.sent.copy(), list(self.errors), list(self.outputs), self.full, self.limit
        )

    def _loop(self, slot: int) -> None:
        send = self.target.client.sender()
        send.open()
        self.opened.wait()
        bodies, n = self.target.bodies, len(self.trace.scheduled)
        while (i := self.pending.get()) is not None:
            self.sent[i] = self.trace.started[i] = self.clock()
            try:
                out = answer(send, bodies[i % len(bodies)])
                self.trace.done[i] = self.clock()
                if self.keep:
                    self.outputs[i] = out
            except RequestError as exc:
                self.errors[i] = str(exc)
            self.finished[slot] += 1
            if sum(self.finished) >= n:
                self.all_done.set()
        send.close()  # connections do not outlive the rate they were opened for


def answer(send: Sender, body: bytes) -> np.ndarray:
    """One request's predictions, or a ``RequestError`` with the reason for whatever went
    wrong, so that every phase of a cell (alone, one at a time, capacity, under load) records a
    failed request alike, never as a crash of the cell."""
    try:
        out = send(body)
    except RequestError:
        raise
    except Exception as exc:  # an answer no decoder check foresaw is still this request's
        raise EndpointError(f"malformed response: {type(exc).__name__}: {exc}"[:200]) from exc
    return one_row(out)

"""Where a serve cell's requests go: one interface, two implementations.

The worker's own server (``bench.serve.local.InProcess``: a dynamic batcher in front of
compiled forward passes) and a model server over the network
(``bench.serve.remote.EndpointTarget``: a pool of sender connections) are both a ``Target``. The open-loop generator and the
single stream (``bench.serve.loadgen``), the per-rate measurement (``bench.serve.probe``), the
summary and its validity rules (``bench.serve.summary``), the SLO search and the cell's record
(``bench.workloads.serve.cell.common``) are written once, against this interface.

A target sends request ``i`` (its body is the target's own: a row of the cell's pool), gets its
answer or its error, and says what the client itself cost: when each request was really sent
(``sent``: the hand-over in process, a free sender's start over the network) and how often the
client had no free sender.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from bench.serve.batching import Trace

Clock = Callable[[], float]


class RequestError(Exception):
    """One request failed; ``str()`` is the reason recorded (and counted) on the cell."""


@dataclass
class Run:
    """What happened to each request of one load (index = arrival order)."""

    trace: Trace
    sent: np.ndarray  # when the client really sent it (NaN: never sent)
    errors: list[str | None]  # why it failed, or None
    outputs: list[np.ndarray | None] = field(default_factory=list)  # kept when asked
    # Requests that found every sender busy, and how many senders there were (None: no sender
    # pool, the generator hands requests straight to the server).
    in_flight_full: int = 0
    max_in_flight: int | None = None
    # Whether the server's batches (sizes, buckets, batch start) are in the trace.
    batches_seen: bool = False


class Session(Protocol):
    """One open-loop load on a target: ``start`` before the first request is due (connections
    opened, the batcher running), ``submit`` each at its hand-over time, ``wait`` for the
    answers, ``finish`` with what happened."""

    def start(self) -> None: ...

    def submit(self, index: int, at: float) -> None: ...

    def wait(self, timeout: float) -> None: ...

    def finish(self) -> Run: ...


class Caller(Protocol):
    """One request at a time: the answer (checked as the target checks answers under load),
    or ``RequestError``."""

    def __call__(self, index: int) -> np.ndarray: ...

    def close(self) -> None: ...


class Target(Protocol):
    kind: str  # "in_process" or "endpoint": the record's target kind
    batches_seen: bool  # whether its answers say which batch served them

    def describe(self) -> str: ...

    def session(self, trace: Trace, clock: Clock, keep_outputs: bool) -> Session: ...

    def caller(self) -> Caller: ...


def one_row(out: np.ndarray) -> np.ndarray:
    """Every request carries one example: an answer of any other number of rows is not its."""
    if out.ndim == 0 or out.shape[0] != 1:
        raise RequestError(
            f"malformed response: predictions of shape {list(out.shape)[:8]} for one example"
        )
    return out

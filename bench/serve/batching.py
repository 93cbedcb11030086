"""The dynamic-batching rule, stated once: when a batch closes, and which compiled bucket it
runs in. The in-process server (``bench.serve.server``), ``bench serve``'s batcher
(``bench.serve.request_batcher``) and the simulation here all close batches by ``BatchQueue``;
they differ only in the unit a batch is counted in (requests, or rows where a request may carry
several) and in the clock (real, or virtual).

A request that reaches an idle server (no batch running, none waiting) runs at once, alone:
a batch of one that nothing else would join in time is not kept waiting for company. Requests
that arrive while a batch runs wait for it and form the next batch, which closes when
``max_batch_size`` units wait or when its oldest request has waited ``batch_timeout_s``,
whichever comes first, and never before the running batch ends (Triton's
``max_queue_delay``, counted from the request's arrival). So under light load a request waits
for nothing; under load batches grow with the rate, as far as the timeout lets them fill. A
batch of n units runs in the smallest bucket >= n, padded: buckets are compiled ahead of time,
so no batch size is ever compiled under load.

``simulate`` applies the rule on a virtual clock to requests whose service time is known: the
queueing-theory oracle the real-time server is tested against, and the way the search is tested
without waiting.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import numpy as np

T = TypeVar("T")
Unit = Literal["requests", "rows"]


def buckets_for(max_batch_size: int) -> tuple[int, ...]:
    """Powers of two below ``max_batch_size``, and ``max_batch_size`` itself: at most half of a
    batch is padding, with log2(max) + 1 programs to compile."""
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be at least 1 (got {max_batch_size})")
    found = []
    b = 1
    while b < max_batch_size:
        found.append(b)
        b *= 2
    return (*found, max_batch_size)


@dataclass(frozen=True)
class Policy:
    """``max_batch_size`` and buckets count ``unit``s: requests (the in-process server, whose
    requests are one example each) or rows (``bench serve``, whose requests may carry several;
    a request is never split across batches)."""

    max_batch_size: int
    batch_timeout_s: float
    unit: Unit = "requests"

    @property
    def buckets(self) -> tuple[int, ...]:
        return buckets_for(self.max_batch_size)

    def bucket(self, n: int) -> int:
        """The smallest compiled batch size that holds ``n`` units."""
        for b in self.buckets:
            if b >= n:
                return b
        raise ValueError(f"{n} {self.unit} exceed max_batch_size {self.max_batch_size}")


class BatchQueue(Generic[T]):
    """Requests waiting for a batch, and the rule that closes one. No clock and no lock of its
    own: times are given (``at``) and read (``closes_at``) on whatever clock its user keeps, and
    a threaded user holds its lock around every call (``Batcher``).

    The user's cycle: ``put`` each request as it arrives; when ``closes_at()`` has come (and the
    server is free), ``take()`` the batch and run it; ``freed()`` when it has run.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._waiting: deque[tuple[T, int, float]] = deque()  # (item, units, arrived at)
        self._units = 0
        self._busy = False  # a batch taken and not yet freed
        self._alone = False  # the oldest waiting request reached an idle server

    def __len__(self) -> int:
        return len(self._waiting)

    def put(self, item: T, at: float, rows: int = 1) -> bool:
        """Queue ``item`` (``rows`` examples), arrived at ``at``. True when the waiting batch's
        closing time moved earlier (a first request, or a batch now full): a batcher asleep
        until the old time must be woken."""
        units = rows if self.policy.unit == "rows" else 1
        if not self._busy and not self._waiting:
            self._alone = True
        self._waiting.append((item, units, at))
        before, self._units = self._units, self._units + units
        return len(self._waiting) == 1 or before < self.policy.max_batch_size <= self._units

    def closes_at(self) -> float:
        """When the waiting batch closes if nothing more arrives: -inf (now) for a request
        that reached an idle server or a full batch, the oldest's arrival + the timeout
        otherwise, +inf when nothing waits. A busy server's user takes it when it is free."""
        if not self._waiting:
            return math.inf
        if self._alone or self._units >= self.policy.max_batch_size:
            return -math.inf
        return self._waiting[0][2] + self.policy.batch_timeout_s

    def take(self) -> list[tuple[T, int]]:
        """The batch: the oldest requests whose units fit ``max_batch_size``, as (item, units)."""
        taken: list[tuple[T, int]] = []
        units = 0
        while self._waiting and units + self._waiting[0][1] <= self.policy.max_batch_size:
            item, n, _ = self._waiting.popleft()
            taken.append((item, n))
            units += n
        self._units -= units
        self._busy, self._alone = True, False
        return taken

    def freed(self) -> None:
        """The batch taken last has run: the server is free (idle where nothing waits)."""
        self._busy = False


class Batcher(Generic[T]):
    """A ``BatchQueue`` shared between the threads that put requests and the one batcher thread
    that takes batches, waking it only when a batch may close sooner than it planned."""

    def __init__(self, policy: Policy, clock: Callable[[], float] = time.perf_counter) -> None:
        self.queue: BatchQueue[T] = BatchQueue(policy)
        self.clock = clock
        self._cond = threading.Condition()
        self._stopping = False

    def put(self, item: T, at: float, rows: int = 1) -> None:
        with self._cond:
            if self.queue.put(item, at, rows):
                # Not for every request: waking the batcher for requests that cannot close a
                # batch sooner would only make it compete for the interpreter and the cores.
                self._cond.notify()

    def next_batch(self) -> list[tuple[T, int]] | None:
        """Block until a batch closes (by the rule, on ``clock``); None once stopping."""
        with self._cond:
            while not self._stopping:
                due = self.queue.closes_at()
                if due == math.inf:
                    self._cond.wait()
                    continue
                remaining = due - self.clock()
                if remaining <= 0:
                    return self.queue.take()
                self._cond.wait(remaining)
            return None

    def freed(self) -> None:
        with self._cond:
            self.queue.freed()

    def stop(self) -> None:
        """``next_batch`` returns None from now on; requests still queued stay unanswered."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()


@dataclass
class Trace:
    """What happened to each request (index = arrival order), in seconds on one clock.

    ``scheduled``: when it was due; ``issued``: when the generator handed it over (lateness is
    the difference); ``started``: when its batch began; ``done``: when its result was on the
    host (NaN: never answered, a dropped request). ``batch``/``bucket``: its batch's size
    before and after padding.
    """

    scheduled: np.ndarray
    issued: np.ndarray
    started: np.ndarray
    done: np.ndarray
    batch: np.ndarray
    bucket: np.ndarray

    @classmethod
    def empty(cls, scheduled: np.ndarray) -> Trace:
        n = len(scheduled)
        nan = np.full(n, np.nan)
        zero = np.zeros(n, dtype=np.int64)
        return cls(
            np.asarray(scheduled, float), nan.copy(), nan.copy(), nan.copy(), zero, zero.copy()
        )


def simulate(arrivals: np.ndarray, policy: Policy, service_s: Callable[[int], float]) -> Trace:
    """The batching rule (``BatchQueue``) on a virtual clock: requests issued exactly on
    schedule, a batch of bucket b taking ``service_s(b)``. Deterministic; O(requests)."""
    trace = Trace.empty(arrivals)
    trace.issued[:] = trace.scheduled
    a = trace.scheduled
    n = len(a)
    queue: BatchQueue[int] = BatchQueue(policy)
    now, i = -math.inf, 0  # the virtual time; the next request to arrive
    while i < n or len(queue):
        while i < n and a[i] <= now:  # the server is free: arrivals up to now
            queue.put(i, float(a[i]))
            i += 1
        due, upcoming = queue.closes_at(), a[i] if i < n else math.inf
        if due > now and upcoming <= due:  # an arrival before the batch closes may fill it
            now = upcoming
            continue
        now = max(now, due)
        ids = [item for item, _ in queue.take()]
        bucket = policy.bucket(len(ids))
        done = now + service_s(bucket)
        trace.started[ids] = now
        trace.done[ids] = done
        trace.batch[ids] = len(ids)
        trace.bucket[ids] = bucket
        while i < n and a[i] < done:  # arrivals while the batch runs
            queue.put(i, float(a[i]))
            i += 1
        queue.freed()
        now = done
    return trace

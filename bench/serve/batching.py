"""The dynamic-batching policy: when a batch closes, and which compiled bucket it runs in.

A batch closes when ``max_batch_size`` requests are waiting or when the oldest waiting request
has waited ``batch_timeout_s``, whichever comes first (Triton's ``max_queue_delay``); a server
still busy with the previous batch closes the next one as soon as it is free. A batch of n
requests runs in the smallest bucket >= n, padded: buckets are compiled ahead of time, so no
batch size is ever compiled under load.

``simulate`` applies the same rule on a virtual clock to requests whose service time is known:
the queueing-theory oracle the real-time server (``bench.serve.server``) is tested against, and
the way the search is tested without waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


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
    max_batch_size: int
    batch_timeout_s: float

    @property
    def buckets(self) -> tuple[int, ...]:
        return buckets_for(self.max_batch_size)

    def bucket(self, n: int) -> int:
        """The smallest compiled batch size that holds ``n`` requests."""
        for b in self.buckets:
            if b >= n:
                return b
        raise ValueError(f"{n} requests exceed max_batch_size {self.max_batch_size}")


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
    """The batcher's rule on a virtual clock: requests issued exactly on schedule, a batch of
    bucket b taking ``service_s(b)``. Deterministic; O(requests)."""
    trace = Trace.empty(arrivals)
    trace.issued[:] = trace.scheduled
    a = trace.scheduled
    n = len(a)
    free = -np.inf  # when the server finishes its current batch
    i = 0
    while i < n:
        # The batch fills at the arrival of its max_batch_size-th request, or times out from its
        # oldest; a busy server closes it when free, with whatever has come by then.
        last = min(i + policy.max_batch_size - 1, n - 1)
        full_at = a[last] if last - i + 1 == policy.max_batch_size else np.inf
        close = max(free, a[i], min(full_at, a[i] + policy.batch_timeout_s))
        j = i
        while j < n and j - i < policy.max_batch_size and a[j] <= close:
            j += 1
        size = j - i
        bucket = policy.bucket(size)
        done = close + service_s(bucket)
        trace.started[i:j] = close
        trace.done[i:j] = done
        trace.batch[i:j] = size
        trace.bucket[i:j] = bucket
        free = done
        i = j
    return trace

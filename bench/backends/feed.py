"""Per-step batch providers: what a backend calls each step to get the batch for that step.

Each backend's feed module (``open_batches(req, hosts, place)``) returns a ``Batches`` for the
cell's ``input`` (``synthetic``, ``numpy`` or ``tfdata``), and the backend calls it once per
step. The backend says how a batch is placed (one device, or sharded for data parallelism); the
provider says where batches come from and when. This module, the contract, stays
framework-free.

Every provider times its own calls: ``wait_s`` adds up the time the step spent waiting for its
batch (pipeline work not hidden by prefetching, plus placing the batch on the device), which is
how a cell knows how much of its step time went to input.

A provider serves what one compiled call takes: one batch, or with ``steps_per_call`` K a
``[K, batch, ...]`` stack where the call takes K distinct batches (``stacks_batches``), in the
same order as K single steps would see them.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from bench.backends.workload import stacks_batches, steps_per_call

if TYPE_CHECKING:
    pass


class Batches(ABC):
    """Call it for the next batch (a dict of features and ``label``), placed for the step."""

    kind: str = ""
    # Calls to pull before an in-memory cache holds the whole epoch (0: no cache).
    cache_batches: int = 0
    # The first call's input, placed, for compiling against (JAX), without taking it.
    example: Any = None
    examples_per_call: int = 0

    def __init__(self) -> None:
        self.wait_s = 0.0

    def __call__(self) -> Any:
        start = time.perf_counter()
        batch = self._next()
        self.wait_s += time.perf_counter() - start
        return batch

    @abstractmethod
    def _next(self) -> Any:
        """The next batch, placed where the step reads it."""

    def ready(self, batch: Any) -> None:  # noqa: B027 - optional hook: most batches are ready
        """Block until ``batch`` is where the step reads it (device copies can be async)."""

    @abstractmethod
    def fresh(self) -> Batches:
        """A new provider with the same settings, from the first batch (for timing it alone)."""

    def describe(self) -> dict[str, Any]:
        """What this input is, for the cell record."""
        return {"kind": self.kind}

    def fill_cache(self) -> float | None:
        """Pull batches until the cache holds a whole epoch; seconds taken, None if no cache.

        A cached pipeline is slow for one epoch and fast after; filling it before timing
        measures the steady state a long training job runs in.
        """
        if not self.cache_batches:
            return None
        start = time.perf_counter()
        for _ in range(self.cache_batches):
            self.ready(self._next())
        return time.perf_counter() - start

    def close(self) -> None:  # noqa: B027 - optional hook: only some providers hold threads
        """Stop background work (prefetch threads) and let go of buffers and caches."""


def batches_per_call(key: dict[str, Any]) -> int:
    """Batches one call takes: K when calls take stacks, else 1 (synthetic training reuses
    its one batch in every step of the call)."""
    return steps_per_call(key) if stacks_batches(key) else 1

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

The three inputs are written once here, framework-free: ``SyntheticFeed``, ``HostFeed`` and
``TfDataFeed`` hold what a provider keeps, serves and records; a backend's feed module
subclasses them with what its framework does differently (how a call's input is placed ahead of
the step, how tf.data is iterated, what compiling needs) and maps each ``input`` to its class.
"""

from __future__ import annotations

import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from typing import Any

from bench.backends.workload import BuildRequest, call_inputs, stacks_batches, steps_per_call
from bench.inputs.datafiles import DataSet
from bench.inputs.settings import PipelineSettings, resolve_label
from bench.inputs.tfdata import Pipeline

# How a backend puts one call's input where its step reads it (one device, or sharded).
Place = Callable[[dict[str, Any]], Any]


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


def batches_per_call(req: BuildRequest) -> int:
    """Batches one call takes: K when calls take stacks, else 1 (synthetic training reuses
    its one batch in every step of the call)."""
    return steps_per_call(req.key) if stacks_batches(req) else 1


def rows(hosts: list[dict[str, Any]]) -> int:
    """Examples in one host batch: this process's rows of the global batch (all of it where
    one process builds the global batch, as TensorFlow workers do)."""
    return int(next(iter(hosts[0].values())).shape[0])


class Feed(Batches):
    """A backend's provider for one cell: ``hosts`` are this process's rows of the global
    batches, ``place`` puts one call's input where the step reads it, ``keep`` places the
    synthetic batch once, to stay there, ``device`` is the one device to prefetch to, if any."""

    def __init__(
        self, req: BuildRequest, hosts: list[dict], place: Place, keep: Place, device: Any
    ):
        super().__init__()
        self._args = (req, hosts, place, keep, device)
        self._req, self._hosts, self._place = req, hosts, place
        self.examples_per_call = rows(hosts) * batches_per_call(req)

    def fresh(self) -> Batches:
        return type(self)(*self._args)


class SyntheticFeed(Feed):
    """``synthetic``: made once and kept on the device(s), the upper bound with no input cost."""

    kind = "synthetic"

    def __init__(
        self, req: BuildRequest, hosts: list[dict], place: Place, keep: Place, device: Any
    ):
        super().__init__(req, hosts, place, keep, device)
        self._batch = keep(call_inputs(req, hosts)[0])

    def _next(self) -> Any:
        return self._batch


class HostFeed(Feed):
    """``numpy``: host arrays placed for the step each call (cycling a few distinct ones)."""

    kind = "numpy"
    placement = ""  # how the framework places a host batch, for the record

    def __init__(
        self, req: BuildRequest, hosts: list[dict], place: Place, keep: Place, device: Any
    ):
        super().__init__(req, hosts, place, keep, device)
        self._inputs = call_inputs(req, hosts)
        self._cycle = itertools.cycle(self._inputs)

    def _next(self) -> Any:
        return self._place(next(self._cycle))

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "host_batches": len(self._hosts), "placement": self.placement}


class TfDataFeed(Feed):
    """``tfdata``: the tf.data pipeline of ``bench.inputs.tfdata`` over the cell's data files.

    A framework says how it builds the pipeline (``_pipeline``: which TensorFlow, which shard)
    and iterates it (``_iterate``: placed calls, with or without prefetching to the device).
    """

    kind = "tfdata"
    consumer = ""  # how the framework iterates the pipeline, for the record

    def __init__(
        self, req: BuildRequest, hosts: list[dict], place: Place, keep: Place, device: Any
    ):
        super().__init__(req, hosts, place, keep, device)
        if req.data is None:
            raise ValueError("a tfdata cell needs its data files (BuildRequest.data)")
        self.settings = resolve_label(req.key["pipeline"])
        per_call = batches_per_call(req)
        self.pipeline = self._pipeline(req.data, self.settings, rows(hosts), per_call)
        self.cache_batches = self.pipeline.cache_batches
        # what device_prefetch did, for the record: set by _iterate
        self.device_prefetch: Any = False
        self._iter = self._iterate(self.pipeline.dataset, device)

    @abstractmethod
    def _pipeline(
        self, data: DataSet, settings: PipelineSettings, batch_size: int, per_call: int
    ) -> Pipeline:
        """``tfdata.build`` with this framework's TensorFlow and this process's shard."""

    @abstractmethod
    def _iterate(self, dataset: Any, device: Any) -> Iterator[Any]:
        """Calls' inputs from ``dataset``, placed for the step; sets ``device_prefetch``."""

    def _next(self) -> Any:
        return next(self._iter)

    def describe(self) -> dict[str, Any]:
        assert self._req.data is not None
        return {
            "kind": self.kind,
            "pipeline": self._req.key["pipeline"],
            "settings": asdict(self.settings),
            "applied": {**self.pipeline.applied, "device_prefetch": self.device_prefetch},
            "consumer": self.consumer,
            "data": self._req.data.describe(),
        }

    def close(self) -> None:
        self._iter = iter(())  # drop the tf.data iterator (and its cache)


def open_feed(
    kinds: Mapping[str, type[Feed]],
    req: BuildRequest,
    hosts: list[dict],
    place: Place,
    keep: Place | None,
    device: Any,
) -> Batches:
    """The provider of ``kinds`` for the cell's ``input`` (``keep`` defaults to ``place``)."""
    return kinds[req.key["input"]](req, hosts, place, keep or place, device)

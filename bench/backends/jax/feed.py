"""JAX batch providers: a batch kept on the device(s), host copies each call, or tf.data.

Imported only in a JAX worker. The backend says how a call's input is placed (``place``: onto
one device, or this process's rows sharded over a data-parallel mesh); these providers say where
the batches come from. The ``tfdata`` provider imports TensorFlow with accelerators hidden (see
``bench.inputs.tfdata`` for why a JAX process runs tf.data at all), reads the pipeline through
``as_numpy_iterator()`` and, with ``device_prefetch`` > 0, keeps that many calls' inputs already
placed by a background thread (``bench.inputs.prefetch``): double buffering.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import jax

from bench.backends.feed import Batches, batches_per_call
from bench.backends.workload import BuildRequest, call_inputs
from bench.inputs import tf_runtime, tfdata
from bench.inputs.prefetch import DevicePrefetch
from bench.inputs.settings import resolve_label

Place = Callable[[dict[str, Any]], Any]


def rows(hosts: list[dict[str, Any]]) -> int:
    """Examples in one host batch: this process's rows of the global batch."""
    return int(next(iter(hosts[0].values())).shape[0])


class _JaxBatches(Batches):
    def __init__(
        self, req: BuildRequest, hosts: list[dict], place: Place, keep: Place, device: Any
    ):
        super().__init__()
        self._args = (req, hosts, place, keep, device)
        self._req, self._hosts, self._place = req, hosts, place
        self.examples_per_call = rows(hosts) * batches_per_call(req.key)

    def ready(self, batch: Any) -> None:
        jax.block_until_ready(batch)

    def fresh(self) -> Batches:
        return type(self)(*self._args)


class OnDevice(_JaxBatches):
    """``synthetic``: made once and kept on the device(s), the upper bound with no input cost."""

    kind = "synthetic"

    def __init__(
        self, req: BuildRequest, hosts: list[dict], place: Place, keep: Place, device: Any
    ):
        super().__init__(req, hosts, place, keep, device)
        self._batch = keep(call_inputs(req, hosts)[0])
        self.example = self._batch

    def _next(self) -> Any:
        return self._batch


class HostCopies(_JaxBatches):
    """``numpy``: host arrays placed on the device(s) each call (cycling a few distinct ones)."""

    kind = "numpy"

    def __init__(
        self, req: BuildRequest, hosts: list[dict], place: Place, keep: Place, device: Any
    ):
        super().__init__(req, hosts, place, keep, device)
        inputs = call_inputs(req, hosts)
        self._cycle = itertools.cycle(inputs)
        self.example = place(inputs[0])  # compiled against, not taken: step 1 sees batch 1

    def _next(self) -> Any:
        return self._place(next(self._cycle))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "host_batches": len(self._hosts),
            "placement": "placed (jax.device_put or sharded) when the step asks",
        }


class TfData(_JaxBatches):
    """``tfdata``: the tf.data pipeline as numpy batches, double-buffered onto the device(s)."""

    kind = "tfdata"

    def __init__(
        self, req: BuildRequest, hosts: list[dict], place: Place, keep: Place, device: Any
    ):
        super().__init__(req, hosts, place, keep, device)
        if req.data is None:
            raise ValueError("a tfdata cell needs its data files (BuildRequest.data)")
        tf = tf_runtime.import_tensorflow(hide_accelerators=True)
        self.settings = resolve_label(req.key["pipeline"])
        shard = (jax.process_index(), jax.process_count())
        per_call = batches_per_call(req.key)
        self.pipeline = tfdata.build(tf, req.data, self.settings, rows(hosts), per_call, shard)
        self.cache_batches = self.pipeline.cache_batches
        # Shapes and dtypes of a call's input, for compiling; the pipeline yields the same.
        self.example = place(call_inputs(req, hosts)[0])
        source = self.pipeline.dataset.as_numpy_iterator()
        depth = self.settings.device_prefetch
        self._prefetch = DevicePrefetch(source, place, depth) if depth else None
        self._iter = self._prefetch if self._prefetch else map(place, source)

    def _next(self) -> Any:
        return next(self._iter)

    def describe(self) -> dict[str, Any]:
        depth = self.settings.device_prefetch
        applied = dict(self.pipeline.applied)
        applied["device_prefetch"] = (
            f"{depth} calls' inputs placed ahead by a background thread" if depth else False
        )
        assert self._req.data is not None
        return {
            "kind": self.kind,
            "pipeline": self._req.key["pipeline"],
            "settings": asdict(self.settings),
            "applied": applied,
            "consumer": "tf.data as_numpy_iterator() in the JAX worker, TensorFlow on CPU only",
            "data": self._req.data.describe(),
        }

    def close(self) -> None:
        if self._prefetch is not None:
            self._prefetch.close()
        self._iter = iter(())  # drop the tf.data iterator (and its cache)


def open_batches(
    req: BuildRequest,
    hosts: list[dict],
    place: Place,
    keep: Place | None = None,
    device: Any = None,
) -> Batches:
    """The cell's input: ``hosts`` are this process's rows of the global batch, ``place`` puts
    one call's input where the step reads it, ``keep`` places the synthetic batch once, to stay
    there (default: ``place``), ``device`` is the one device to prefetch to, if any."""
    kinds = {"synthetic": OnDevice, "numpy": HostCopies, "tfdata": TfData}
    return kinds[req.key["input"]](req, hosts, place, keep or place, device)

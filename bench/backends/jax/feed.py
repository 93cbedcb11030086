"""JAX batch providers: a batch kept on the device(s), host copies each call, or tf.data.

Imported only in a JAX worker. The backend says how a call's input is placed (``place``: onto
one device, or this process's rows sharded over a data-parallel mesh); the providers of
``bench.backends.feed`` say where the batches come from. What is JAX's own: every provider has
an ``example`` (the first call's input, placed, to compile against without taking it), and
``ready`` waits with ``jax.block_until_ready``. The ``tfdata`` provider imports TensorFlow with
accelerators hidden (see ``bench.inputs.tfdata`` for why a JAX process runs tf.data at all),
reads this process's shard of the files through ``as_numpy_iterator()`` and, with
``device_prefetch`` > 0, keeps that many calls' inputs already placed by a background thread
(``bench.inputs.prefetch``): double buffering.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax

from bench.backends.feed import (
    Batches,
    Feed,
    HostFeed,
    Place,
    SyntheticFeed,
    TfDataFeed,
    open_feed,
)
from bench.backends.workload import BuildRequest, call_inputs
from bench.inputs import tf_runtime, tfdata
from bench.inputs.datafiles import DataSet
from bench.inputs.prefetch import DevicePrefetch
from bench.inputs.settings import PipelineSettings


class _Ready(Batches):
    """JAX places asynchronously: a batch is ready once its device copies are done."""

    def ready(self, batch: Any) -> None:
        jax.block_until_ready(batch)


class OnDevice(_Ready, SyntheticFeed):
    """``synthetic``: made once and kept on the device(s); the one batch is also the example."""

    def __init__(
        self, req: BuildRequest, hosts: list[dict], place: Place, keep: Place, device: Any
    ):
        super().__init__(req, hosts, place, keep, device)
        self.example = self._batch


class HostCopies(_Ready, HostFeed):
    """``numpy``: host arrays placed on the device(s) each call (cycling a few distinct ones)."""

    placement = "placed (jax.device_put or sharded) when the step asks"

    def __init__(
        self, req: BuildRequest, hosts: list[dict], place: Place, keep: Place, device: Any
    ):
        super().__init__(req, hosts, place, keep, device)
        self.example = place(self._inputs[0])  # compiled against, not taken: step 1 sees batch 1


class TfData(_Ready, TfDataFeed):
    """``tfdata``: the tf.data pipeline as numpy batches, double-buffered onto the device(s)."""

    consumer = "tf.data as_numpy_iterator() in the JAX worker, TensorFlow on CPU only"
    _prefetch: DevicePrefetch | None = None

    def _pipeline(
        self, data: DataSet, settings: PipelineSettings, batch_size: int, per_call: int
    ) -> tfdata.Pipeline:
        tf = tf_runtime.import_tensorflow(hide_accelerators=True)
        shard = (jax.process_index(), jax.process_count())
        return tfdata.build(tf, data, settings, batch_size, per_call, shard)

    def _iterate(self, dataset: Any, device: Any) -> Iterator[Any]:
        # Shapes and dtypes of a call's input, for compiling; the pipeline yields the same.
        self.example = self._place(call_inputs(self._req, self._hosts)[0])
        source = dataset.as_numpy_iterator()
        depth = self.settings.device_prefetch
        if not depth:
            return map(self._place, source)
        self.device_prefetch = f"{depth} calls' inputs placed ahead by a background thread"
        self._prefetch = DevicePrefetch(source, self._place, depth)
        return self._prefetch

    def close(self) -> None:
        if self._prefetch is not None:
            self._prefetch.close()
        super().close()


KINDS: dict[str, type[Feed]] = {"synthetic": OnDevice, "numpy": HostCopies, "tfdata": TfData}


def open_batches(
    req: BuildRequest,
    hosts: list[dict],
    place: Place,
    keep: Place | None = None,
    device: Any = None,
) -> Batches:
    """The cell's input, as ``bench.backends.feed.Feed`` takes it."""
    return open_feed(KINDS, req, hosts, place, keep, device)

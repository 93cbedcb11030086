"""TensorFlow batch providers: a batch kept on the device(s), host copies each call, or tf.data.

Imported only in a TensorFlow worker. The backend says how a call's input is placed (``place``:
host tensors the step copies to its device, or slices per replica of a distribution strategy);
the providers of ``bench.backends.feed`` say where the batches come from. The ``tfdata``
provider iterates the pipeline as tensors outside the step's ``tf.function``, so the time each
step waits for its batch is measured on its own. With ``device_prefetch`` > 0 on one GPU,
batches are copied ahead with ``tf.data.experimental.prefetch_to_device``; on the CPU the host
is the device.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from bench.backends.feed import (
    Batches,
    Feed,
    HostFeed,
    Place,
    SyntheticFeed,
    TfDataFeed,
    open_feed,
)
from bench.backends.workload import BuildRequest
from bench.inputs import tfdata
from bench.inputs.datafiles import DataSet
from bench.inputs.settings import PipelineSettings


class HostCopies(HostFeed):
    """``numpy``: host arrays handed to the step each call (it copies them to its device)."""

    placement = "host tensors (or per-replica slices) when the step asks"


class TfData(TfDataFeed):
    """``tfdata``: the tf.data pipeline's tensors, copied ahead onto one GPU when asked."""

    consumer = "tf.data iterator, next() outside the step's tf.function"

    def _pipeline(
        self, data: DataSet, settings: PipelineSettings, batch_size: int, per_call: int
    ) -> tfdata.Pipeline:
        return tfdata.build(tf, data, settings, batch_size, per_call)

    def _iterate(self, dataset: Any, device: str | None) -> Iterator[Any]:
        depth = self.settings.device_prefetch
        if not depth:
            self.device_prefetch = False
        elif device is None:
            self.device_prefetch = (
                "not applied: a distribution strategy places each replica's slice"
            )
        elif "GPU" in device.upper():
            dataset = dataset.apply(tf.data.experimental.prefetch_to_device(device, depth))
            self.device_prefetch = (
                f"{depth} batches copied ahead (tf.data.experimental.prefetch_to_device)"
            )
        else:
            kind = "the CPU is the host" if "CPU" in device.upper() else "not wired for TPUs"
            self.device_prefetch = f"not applicable: {kind}"
        return map(self._place, iter(dataset))


KINDS: dict[str, type[Feed]] = {"synthetic": SyntheticFeed, "numpy": HostCopies, "tfdata": TfData}


def open_batches(
    req: BuildRequest,
    hosts: list[dict],
    place: Place,
    keep: Place | None = None,
    device: str | None = None,
) -> Batches:
    """The cell's input, as ``bench.backends.feed.Feed`` takes it."""
    return open_feed(KINDS, req, hosts, place, keep, device)

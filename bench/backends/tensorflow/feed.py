"""TensorFlow batch providers: a batch kept on the device(s), host copies each call, or tf.data.

Imported only in a TensorFlow worker. The backend says how a call's input is placed (``place``:
host tensors the step copies to its device, or slices per replica of a distribution strategy);
these providers say where the batches come from. The ``tfdata`` provider iterates the pipeline
as tensors outside the step's ``tf.function``, so the time each step waits for its batch is
measured on its own. With ``device_prefetch`` > 0 on one GPU, batches are copied ahead with
``tf.data.experimental.prefetch_to_device``; on the CPU the host is the device.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import tensorflow as tf

from bench.backends.feed import Batches, batches_per_call
from bench.backends.workload import BuildRequest, call_inputs
from bench.inputs import tfdata
from bench.inputs.settings import resolve_label

Place = Callable[[dict[str, Any]], Any]


def rows(hosts: list[dict[str, Any]]) -> int:
    """Examples in one host batch (TensorFlow workers build the global batch)."""
    return int(next(iter(hosts[0].values())).shape[0])


class _TfBatches(Batches):
    def __init__(
        self, req: BuildRequest, hosts: list[dict], place: Place, keep: Place, device: str | None
    ):
        super().__init__()
        self._args = (req, hosts, place, keep, device)
        self._req, self._hosts, self._place = req, hosts, place
        self.examples_per_call = rows(hosts) * batches_per_call(req.key)

    def fresh(self) -> Batches:
        return type(self)(*self._args)


class OnDevice(_TfBatches):
    """``synthetic``: made once and kept on the device(s), the upper bound with no input cost."""

    kind = "synthetic"

    def __init__(
        self, req: BuildRequest, hosts: list[dict], place: Place, keep: Place, device: str | None
    ):
        super().__init__(req, hosts, place, keep, device)
        self._batch = keep(call_inputs(req, hosts)[0])

    def _next(self) -> Any:
        return self._batch


class HostCopies(_TfBatches):
    """``numpy``: host arrays handed to the step each call (it copies them to its device)."""

    kind = "numpy"

    def __init__(
        self, req: BuildRequest, hosts: list[dict], place: Place, keep: Place, device: str | None
    ):
        super().__init__(req, hosts, place, keep, device)
        self._cycle = itertools.cycle(call_inputs(req, hosts))

    def _next(self) -> Any:
        return self._place(next(self._cycle))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "host_batches": len(self._hosts),
            "placement": "host tensors (or per-replica slices) when the step asks",
        }


class TfData(_TfBatches):
    """``tfdata``: the tf.data pipeline's tensors, copied ahead onto one GPU when asked."""

    kind = "tfdata"

    def __init__(
        self, req: BuildRequest, hosts: list[dict], place: Place, keep: Place, device: str | None
    ):
        super().__init__(req, hosts, place, keep, device)
        if req.data is None:
            raise ValueError("a tfdata cell needs its data files (BuildRequest.data)")
        self.settings = resolve_label(req.key["pipeline"])
        per_call = batches_per_call(req.key)
        self.pipeline = tfdata.build(tf, req.data, self.settings, rows(hosts), per_call)
        self.cache_batches = self.pipeline.cache_batches
        dataset = self.pipeline.dataset
        depth = self.settings.device_prefetch
        if not depth:
            self._placed: Any = False
        elif device is None:
            self._placed = "not applied: a distribution strategy places each replica's slice"
        elif "GPU" in device.upper():
            dataset = dataset.apply(tf.data.experimental.prefetch_to_device(device, depth))
            self._placed = f"{depth} batches copied ahead (tf.data.experimental.prefetch_to_device)"
        else:
            kind = "the CPU is the host" if "CPU" in device.upper() else "not wired for TPUs"
            self._placed = f"not applicable: {kind}"
        self._iter = iter(dataset)

    def _next(self) -> Any:
        return self._place(next(self._iter))

    def describe(self) -> dict[str, Any]:
        assert self._req.data is not None
        return {
            "kind": self.kind,
            "pipeline": self._req.key["pipeline"],
            "settings": asdict(self.settings),
            "applied": {**self.pipeline.applied, "device_prefetch": self._placed},
            "consumer": "tf.data iterator, next() outside the step's tf.function",
            "data": self._req.data.describe(),
        }

    def close(self) -> None:
        self._iter = iter(())  # drop the tf.data iterator (and its cache)


def open_batches(
    req: BuildRequest,
    hosts: list[dict],
    place: Place,
    keep: Place | None = None,
    device: str | None = None,
) -> Batches:
    """The cell's input: ``hosts`` are this process's rows of the global batch, ``place`` puts
    one call's input where the step reads it, ``keep`` places the synthetic batch once, to stay
    there (default: ``place``), ``device`` is the one device to prefetch to, if any."""
    kinds = {"synthetic": OnDevice, "numpy": HostCopies, "tfdata": TfData}
    return kinds[req.key["input"]](req, hosts, place, keep or place, device)

"""What a backend builds for one cell: a compiled step the timer can drive.

Framework-free: the worker hands a ``BuildRequest`` to ``<backend>.build()`` and drives the
returned ``Workload`` through ``bench.measure.timing.Timer``.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.inputs.synthetic import make_batch
from bench.modeldef import DataSpec, ModelDef

# The ``numpy`` input cycles through this many distinct host batches, so every step copies
# fresh host memory to the device instead of hitting a cache.
NUMPY_POOL = 4


@dataclass(frozen=True)
class BuildRequest:
    key: dict[str, Any]  # the cell key: every axis value
    model: ModelDef
    args: Any  # the model's validated Args
    spec: DataSpec
    optimizer: Any  # bench.scenario.Optimizer
    seed: int


class Workload(ABC):
    """One cell's compiled step. ``__init__`` sets the attributes below.

    A "step" here is one compiled call: ``steps_per_call`` training steps (or batch
    predictions) run inside it, and the caller divides its time by that number.
    """

    compile_s: float
    compile_method: str
    param_count: int
    # The name the peak-FLOPs and price tables are keyed by ("NVIDIA H100 80GB HBM3",
    # "TPU v5 lite"); "cpu" for host CPUs, which are calibrated instead.
    device_name: str = "cpu"
    device_count: int = 1  # devices the step runs on (data parallelism multiplies it)
    steps_per_call: int = 1  # steps (or batch predictions) inside one compiled call

    def compiler_flops(self) -> float | None:
        """FLOPs of one step (not one call) by the compiler's own count, when it has one."""
        return None

    @abstractmethod
    def step(self) -> Any:
        """Launch one step; returns everything ``sync`` must wait for."""

    @abstractmethod
    def sync(self, out: Any) -> None:
        """Block until the device work behind ``out`` is finished."""

    @abstractmethod
    def check_output(self, out: Any) -> str | None:
        """A reason when the loss or predictions are NaN or infinite, else None."""

    @abstractmethod
    def trace_count(self) -> int:
        """How many times the step has been traced; a change while timing means a retrace."""

    @abstractmethod
    def memory(self) -> dict[str, Any]:
        """Peak device memory metrics (or ``unavailable`` with the reason)."""


def short_reason(exc: BaseException, default: str, limit: int = 100) -> str:
    """The first sentence of an exception's message, for one-line skip and failure reasons."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else default
    sentence = text.split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[: limit - 3] + "..."


def steps_per_call(key: dict[str, Any]) -> int:
    return int(key.get("steps_per_call", 1))


def stacks_batches(key: dict[str, Any]) -> bool:
    """Whether one call takes ``[K, batch, ...]`` arrays, one batch per step inside it.

    Training on synthetic input reuses its one device batch in every step, as with K = 1, so
    K steps per call compute exactly what K single steps do. Predictions (K > 1) always take K
    distinct batches: with the same batch K times the forward pass is loop-invariant and a
    compiler may hoist it out of the loop, faking a K-fold speed-up. Numpy input takes the next
    K host batches, copied to the device in one transfer per call.
    """
    k = steps_per_call(key)
    return k > 1 and (key["workload"] == "predict" or key["input"] == "numpy")


def host_batches(req: BuildRequest) -> list[dict[str, np.ndarray]]:
    """The distinct host batches a cell uses; the first one also initialises the model."""
    key = req.key
    if key["input"] == "numpy":
        count = NUMPY_POOL
    elif stacks_batches(key):
        count = steps_per_call(key)  # synthetic predictions: K distinct batches kept on device
    else:
        count = 1
    return [make_batch(req.spec, key["batch_size"], req.seed + i) for i in range(count)]


def call_inputs(req: BuildRequest, hosts: list[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """What successive calls take, in order (cycled): single batches or ``[K, ...]`` stacks.

    The order is the same in every framework and for every K: step ``n`` of a run sees host
    batch ``n % len(hosts)``, so K steps per call see the batches K single steps would.
    """
    if not stacks_batches(req.key):
        return hosts
    k = steps_per_call(req.key)
    calls = len(hosts) // math.gcd(len(hosts), k)  # the sequence of stacks repeats after this
    order = itertools.cycle(hosts)
    stacks = []
    for _ in range(calls):
        chunk = [next(order) for _ in range(k)]
        stacks.append({name: np.stack([b[name] for b in chunk]) for name in chunk[0]})
    return stacks

"""What a backend builds for one cell: a compiled step the timer can drive.

Framework-free: the worker hands a ``BuildRequest`` to ``<backend>.build()`` and drives the
returned ``Workload`` through ``bench.measure.timing.Timer``.
"""

from __future__ import annotations

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
    """One cell's compiled step. ``__init__`` sets the attributes below."""

    compile_s: float
    compile_method: str
    param_count: int
    # The name the peak-FLOPs and price tables are keyed by ("NVIDIA H100 80GB HBM3",
    # "TPU v5 lite"); "cpu" for host CPUs, which are calibrated instead.
    device_name: str = "cpu"
    device_count: int = 1  # devices the step runs on (data parallelism multiplies it)

    def compiler_flops(self) -> float | None:
        """FLOPs of one step by the compiler's own count (a cross-check), when it has one."""
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


def host_batches(req: BuildRequest) -> list[dict[str, np.ndarray]]:
    count = NUMPY_POOL if req.key["input"] == "numpy" else 1
    return [make_batch(req.spec, req.key["batch_size"], req.seed + i) for i in range(count)]

"""What a backend builds for one cell: a compiled step the timer can drive.

Framework-free: the worker hands a ``BuildRequest`` to ``<backend>.build()`` (see
``bench.backends.protocol``) and drives the returned ``Workload`` through
``bench.measure.timing.Timer``.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.backends.replicas import per_device_batch, resolve_replicas
from bench.inputs.synthetic import make_batch
from bench.modeldef import DataSpec, ModelDef

# Set by the runner for a worker, read by the backends before their framework starts: how many
# logical devices to split the host CPU into (TF; JAX reads JAX_NUM_CPU_DEVICES), and the
# TPUClusterResolver arguments of a legacy TPU node, as JSON.
ENV_CPU_DEVICES = "BENCH_CPU_DEVICES"
ENV_TPU_RESOLVER = "BENCH_TPU_RESOLVER"

# The ``numpy`` input cycles through this many distinct host batches, so every step copies
# fresh host memory to the device instead of hitting a cache.
NUMPY_POOL = 4


@dataclass(frozen=True)
class BuildRequest:
    # The cell key (bench.axes.CellKey): every axis value, by attribute or as a mapping.
    key: Mapping[str, Any]
    model: ModelDef
    args: Any  # the model's validated Args
    spec: DataSpec
    optimizer: Any  # bench.run.scenario.Optimizer
    seed: int
    data: Any = None  # bench.inputs.datafiles.DataSet for tfdata cells: the files to read
    # The run's shared float32 weights under canonical names (bench.backends.parity): when
    # given, ``build`` loads them into the model instead of its own initialisation.
    weights: Mapping[str, np.ndarray] | None = None
    run_dir: str | None = None  # the run folder, for files a backend keeps (LiteRT's models)
    # A training step (forward, backward, update) or a forward pass: the workload's
    # ``compiled_pass`` (bench.workloads.spec), so backends never read the workload's name.
    training: bool = False


@dataclass(frozen=True)
class Split:
    """How one cell's global batch is spread: over ``replicas`` devices in ``processes``
    processes (hosts), each process feeding its ``local_batch`` rows of every global batch."""

    requested: int | str  # the cell's replicas axis value ("all" or a number)
    replicas: int  # devices the step runs on, over every process
    processes: int
    global_batch: int  # the cell's batch_size

    @property
    def local_replicas(self) -> int:
        return self.replicas // self.processes

    @property
    def per_device_batch(self) -> int:
        return self.global_batch // self.replicas

    @property
    def local_batch(self) -> int:
        return self.global_batch // self.processes

    def describe(self, method: str) -> dict[str, Any]:
        """The record's ``parallelism`` block."""
        return {
            "replicas": self.replicas,
            "requested": self.requested,
            "processes": self.processes,
            "local_replicas": self.local_replicas,
            "global_batch_size": self.global_batch,
            "per_device_batch_size": self.per_device_batch,
            "method": method,
        }


def plan_split(key: Mapping[str, Any], available: int, processes: int = 1) -> Split:
    """Resolve ``replicas`` against the devices the worker sees (over every process) and check
    the batch splits evenly; ``BatchSplitError`` (a skip, with its reason) otherwise."""
    requested = key.get("replicas", 1)
    replicas = resolve_replicas(requested, available, processes)
    per_device_batch(key["batch_size"], replicas, processes)
    return Split(requested, replicas, processes, key["batch_size"])


def paid_devices(device: str, split: Split) -> int:
    """Devices MFU and cost count: every accelerator the step runs on, but one host per process
    on CPUs, where replicas are virtual devices sharing the host's cores (and its price)."""
    return split.processes if device == "cpu" else split.replicas


class Workload(ABC):
    """One cell's compiled step. ``__init__`` sets the attributes below.

    A "step" here is one compiled call: ``steps_per_call`` training steps (or batch
    predictions) run inside it, and the caller divides its time by that number.
    """

    compile_s: float  # tracing + compilation (+ the first call where they cannot be apart)
    compile_method: str  # how compile_s was measured, for the record
    # compile_s was a load from a persistent compilation cache (bench tune's), not a compile
    compile_cached: bool = False
    param_count: int
    # How ``sync`` waits, for the step time's method ("device-synced"); may depend on device.
    sync_method: str
    # The name the peak-FLOPs and price tables are keyed by ("NVIDIA H100 80GB HBM3",
    # "TPU v5 lite"); "cpu" for host CPUs, which are calibrated instead.
    device_name: str = "cpu"
    device_count: int = 1  # devices MFU and cost count (see paid_devices)
    steps_per_call: int = 1  # steps (or batch predictions) inside one compiled call
    split: Split | None = None  # data parallelism; None: one device, the whole batch
    parallel_method: str = "one device"
    batches: Any = None  # bench.backends.feed.Batches: the step's input, timed by the cell

    # What ``compile_count`` counts, for the record's method.
    compile_count_method: str = ""
    # The framework's profiler, for the record; "" when the backend has none.
    trace_tool: str = ""

    def compiler_flops(self) -> float | None:
        """FLOPs of one step (not one call) by the compiler's own count, when it has one."""
        return None

    def compile_count(self) -> int | None:
        """Compilations so far in this process, by the framework's own count (None: it keeps
        none); the cell reads it around the timed phase, where any compile is a stall."""
        return None

    def use_batches(self, batches: Any) -> None:
        """Take the step's input from ``batches`` from now on (a fresh copy of the pipeline for
        steps after the timed phase). Backends read each call's input via ``_next_batch``."""
        self._next_batch = batches

    # -- profiling (bench.workloads.cell.profiling): after the timed phase, never inside it ---------------

    def start_trace(self, folder: Path) -> None:
        """Start the framework's profiler, writing its trace under ``folder``."""
        raise NotImplementedError(f"{type(self).__name__} has no profiler")

    def stop_trace(self) -> None:
        """Stop the profiler started by ``start_trace`` and write the trace."""
        raise NotImplementedError(f"{type(self).__name__} has no profiler")

    def trace_events(self, folder: Path) -> tuple[list[Any], str]:
        """The op events (``bench.measure.breakdown.OpEvent``) of the newest trace under
        ``folder``, and what their lines are (device streams, CPU compute threads)."""
        raise NotImplementedError(f"{type(self).__name__} cannot read its trace")

    def program_text(self) -> tuple[str, str]:
        """The optimized program the step runs, as text, and the file name to save it under
        (``program.hlo.txt``); raises with the reason where there is none."""
        raise NotImplementedError(f"{type(self).__name__} has no compiled program text")

    @abstractmethod
    def step(self) -> Any:
        """Launch one step; returns everything ``sync`` must wait for."""

    @abstractmethod
    def sync(self, out: Any) -> None:
        """Block until the device work behind ``out`` is finished and its outputs could be read
        on the host: the timer stops the clock after this returns, so returning early would
        under-report the step (dispatch is asynchronous in every framework bench drives)."""

    @abstractmethod
    def check_output(self, out: Any) -> str | None:
        """A reason when the loss or predictions are NaN or infinite, else None."""

    @abstractmethod
    def trace_count(self) -> int:
        """How many times the step has been traced; a change while timing means a retrace."""

    @abstractmethod
    def memory(self) -> dict[str, Any]:
        """Peak device memory metrics (or ``unavailable`` with the reason)."""

    def backend_metrics(self) -> dict[str, Any]:
        """Metrics only this backend measures (LiteRT: its model file's size), added to the
        cell's record; each must be registered in ``bench.metrics``."""
        return {}

    def predict_eval(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """Predictions ``[N, num_outputs]`` (float32, on the host) for the N examples of the
        run's evaluation set, through the cell's compiled prediction (its precision, device and
        converter), in inference mode. Called after the timed phase, never inside it; cut the
        set into calls with ``bench.backends.parity.eval_calls``."""
        raise NotImplementedError(f"{type(self).__name__} cannot predict the evaluation set")

    def infer(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        """Predictions for one host batch of this workload's batch size (``workload: serve``):
        copied to the device, run through the compiled predict step, and returned once they
        are on the host. The batch has the same features (and label) the step was built with,
        so nothing is retraced."""
        raise NotImplementedError(f"{type(self).__name__} does not serve requests")


def short_reason(exc: BaseException, default: str, limit: int = 100) -> str:
    """The first sentence of an exception's message, for one-line skip and failure reasons."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else default
    sentence = text.split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[: limit - 3] + "..."


def steps_per_call(key: Mapping[str, Any]) -> int:
    return int(key.get("steps_per_call", 1))


def stacks_batches(req: BuildRequest) -> bool:
    """Whether one call takes ``[K, batch, ...]`` arrays, one batch per step inside it.

    Training on synthetic input reuses its one device batch in every step, as with K = 1, so
    K steps per call compute exactly what K single steps do. Predictions (K > 1) always take K
    distinct batches: with the same batch K times the forward pass is loop-invariant and a
    compiler may hoist it out of the loop, faking a K-fold speed-up. Numpy input takes the next
    K host batches, copied to the device in one transfer per call; tfdata input the pipeline's
    next K batches, stacked by the pipeline itself (``batch(K)``).
    """
    k = steps_per_call(req.key)
    return k > 1 and (not req.training or req.key["input"] in ("numpy", "tfdata"))


def host_batches(
    req: BuildRequest, process_id: int = 0, processes: int = 1
) -> list[dict[str, np.ndarray]]:
    """The distinct host batches a cell uses; the first one also initialises the model.

    They are GLOBAL batches, made the same on every process from the seed; in a multi-host run
    each process keeps only its rows of each, so a multi-host step sees the examples a
    single-host one would.
    """
    key = req.key
    if key["input"] == "numpy":
        count = NUMPY_POOL
    elif stacks_batches(req):
        count = steps_per_call(key)  # synthetic predictions: K distinct batches kept on device
    else:
        count = 1
    batches = [make_batch(req.spec, key["batch_size"], req.seed + i) for i in range(count)]
    if processes == 1:
        return batches
    rows = key["batch_size"] // processes
    part = slice(process_id * rows, (process_id + 1) * rows)
    return [{k: v[part] for k, v in batch.items()} for batch in batches]


def call_inputs(req: BuildRequest, hosts: list[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """What successive calls take, in order (cycled): single batches or ``[K, ...]`` stacks.

    The order is the same in every framework and for every K: step ``n`` of a run sees host
    batch ``n % len(hosts)``, so K steps per call see the batches K single steps would.
    """
    if not stacks_batches(req):
        return hosts
    k = steps_per_call(req.key)
    calls = len(hosts) // math.gcd(len(hosts), k)  # the sequence of stacks repeats after this
    order = itertools.cycle(hosts)
    stacks = []
    for _ in range(calls):
        chunk = [next(order) for _ in range(k)]
        stacks.append({name: np.stack([b[name] for b in chunk]) for name in chunk[0]})
    return stacks

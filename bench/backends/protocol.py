"""What a backend is: the import-light facts about a framework, and what its worker module does.

A backend is a package ``bench/backends/<name>/`` with two halves, so that planning, validation
and reading never pay for a framework import:

- its ``__init__`` declares ``SPEC``, a ``BackendSpec``: the facts the runner, the scenario and
  the reading side need about the framework (how to start its worker, which axes mean nothing
  to it, which package versions matter). It imports no framework.
- its ``backend`` module implements ``Backend``: imported only in that framework's worker
  process, it sets the devices up, says what it sees, and builds a ``Workload`` (the compiled
  step the timer drives: ``bench.backends.workload``) for each cell.
- optionally a ``generate`` module (``registry.module(name, "generate")``), also worker-only:
  ``build_decoder(model, args, precision, slots, cache_len, buckets, temperature, seed,
  **options)`` returns the ``CompiledDecoder`` a generate cell drives
  (``bench.serve.generation.decoder``). JAX and TensorFlow have one; LiteRT has none.

``bench.backends.registry`` names every backend in one line; nothing else lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bench.backends.workload import BuildRequest, Workload
    from bench.platform.cluster import Cluster


@dataclass(frozen=True)
class BackendSpec:
    """What is known about a backend without importing its framework."""

    name: str  # the scenario's ``framework`` value
    install_hint: str  # how to install the framework, for the skip reason when it is absent
    # Distributions whose versions change this framework's speed (the gate's fingerprint); the
    # first is the framework's own, importable under that name (how `bench selfcheck` tells
    # whether it is installed).
    packages: tuple[str, ...]
    # Environment its worker needs, by device kind (e.g. which platform JAX may initialise).
    device_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Environment every one of its workers needs, whatever the device.
    env: Mapping[str, str] = field(default_factory=dict)
    # The framework's own variable for virtual CPU devices, set beside BENCH_CPU_DEVICES;
    # "" when the backend splits the CPU itself in ``setup`` from BENCH_CPU_DEVICES.
    cpu_devices_env: str = ""
    # A worker process can hold one replica count only: the runner starts a fresh worker for
    # each (TensorFlow's collectives key groups by a per-process counter).
    worker_per_replica_count: bool = False
    # Why this backend cannot drive a legacy TPU node (a TPU reached over the network, not a
    # TPU VM); "" when it can. Its TPU cells on a node are skipped with this reason.
    no_tpu_node: str = ""
    # Axis values this backend can run, for the axes where it runs only some (the rest take
    # any value): a scenario cell outside them is a validation error naming the axis.
    accepts: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    # Modules its worker needs beyond the framework of ``packages[0]``, checked when a scenario
    # is validated: absent, the scenario is refused with ``install_hint`` (a missing framework
    # only skips cells, but these are what the backend is for).
    needs_modules: tuple[str, ...] = ()


class Backend(Protocol):
    """A framework's worker-side module (``bench.backends.<name>.backend``).

    The worker calls, in order: ``setup`` once, ``probe`` (and ``version``) once, ``build`` per
    cell, ``calibration_matmul`` when a CPU peak is needed, ``all_gather_text`` per cell in a
    multi-host run, and ``teardown`` once at the end. One process runs one backend only.
    """

    SPEC: BackendSpec

    def setup(self, device: str, cluster: Cluster | None) -> None:
        """Prepare the framework before any device is touched: split the CPU into virtual
        devices, join the multi-host job of ``cluster``. Idempotent; raises when it cannot."""

    def teardown(self) -> None:
        """Leave the multi-host job (if joined); called once, after the last cell."""

    def version(self) -> str:
        """The framework's version, recorded with the worker."""

    def probe(self, device: str) -> tuple[bool, str, list[dict[str, Any]]]:
        """Whether the framework sees a device of this kind (``cpu``, ``gpu``, ``tpu``), the
        one-line reason when it does not, and a description of each device it sees. Must not
        raise for a missing device: absence is an answer."""

    def build(self, req: BuildRequest) -> Workload:
        """The cell's compiled step with its input opened: compiled here (so ``compile_s`` is
        apart from step time), ready for the timer to call ``step``/``sync``. Raises
        ``BatchSplitError`` when the batch does not split over the devices (a skip)."""

    def calibration_matmul(self, precision: str, n: int) -> Callable[[], Any]:
        """A call that runs one n x n x n matmul in ``precision`` through the framework's CPU
        kernels and returns only once it has finished (the CPU peak is calibrated on it)."""

    def matmul_settings(self, device: str) -> dict[str, Any]:
        """What decides the precision float32 matmuls run at on ``device`` (read by
        ``bench.measure.flops.matmul_precision``): ``tf32_allowed`` (bool, or None when the
        framework's setting is unknown), ``setting`` (that setting, for people),
        ``nvidia_tf32_override`` and, on GPUs, ``compute_capability``."""

    # Optional, for prediction parity (bench/backends/parity.py); a backend without them
    # records its predict cells' parity as unavailable, with the reason.
    #
    # def init_weights(self, req: BuildRequest) -> dict[str, np.ndarray]:
    #     """The model's float32 weights initialised from ``req.seed``, by canonical name."""
    #
    # def reference_outputs(self, req, weights, features) -> np.ndarray:
    #     """float32 CPU inference on ``features`` with ``weights``: ``[N, num_outputs]``."""

    def all_gather_text(self, text: str) -> list[str]:
        """Every process's ``text`` in process order, through the framework's collectives (no
        shared disk). A collective: every process of the job calls it for each cell."""

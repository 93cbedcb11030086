"""What a workload declares about itself: the one place the rest of bench learns it from.

Rank 0 (nothing heavy is imported): the runner, scenario validation, the axes, the reading
side and the report read these facts without importing a framework or a measuring module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class WorkloadSpec:
    """One workload kind.

    ``measure`` names the function that measures a cell (``"package.module:function"``,
    imported in the worker only); it is called as ``measure(backend, msg)`` with the worker's
    backend module and the cell's ``bench.workloads.cell.message.CellMessage``, and returns the
    measured parts of the record (status, reason, flags, metrics, samples and any block of its
    own).
    """

    name: str
    help: str
    measure: str
    # The compiled pass the backend builds and the models count FLOPs of: a training step
    # (forward, backward, update) or a forward pass (the model definitions' "train"/"predict").
    compiled_pass: Literal["train", "predict"] = "predict"
    # Timed as back-to-back batches (throughput and step-time tables, repeats, profiles) rather
    # than as requests under load (which need the scenario's slo).
    offline: bool = True
    # Its predictions are checked against the run's reference outputs (``parity_*`` metrics).
    parity: bool = False
    # Axes that mean something only for this workload (left out of other workloads' keys).
    axes: tuple[str, ...] = ()
    # Axes it runs with one value whatever the scenario asks (a request is one example).
    fixed: Mapping[str, Any] = field(default_factory=dict)
    # Axis values it runs with only: a scenario asking for another is refused at validation.
    requires: Mapping[str, Any] = field(default_factory=dict)
    # Axis values it runs, for the axes where it runs only some: another is refused at
    # validation (serve has no gamma or offline arrivals).
    accepts: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    # Metric names it records beyond the ones every cell has (docs and ``bench list``).
    metrics: tuple[str, ...] = ()
    # The throughput every ok cell of it records, or says why not: the reading side takes an
    # ok record without it for a truncated one. Generate cells count output tokens, not
    # examples.
    throughput: str = "examples_per_s"
    # What ``bench gate`` tests its cells on when no --metric (nor policy file) says: the
    # gate metrics of ``bench.metrics`` whose samples its records keep.
    gates: tuple[str, ...] = ("step_time",)
    # The model definition's capabilities it needs (``bench.modeldef``), e.g. a loss to train.
    needs: tuple[str, ...] = ()
    # Report sections it adds (anchors of ``bench.report.sections``).
    sections: tuple[str, ...] = ()
    # The module that declares it, imported by a worker that does not know the name yet (a
    # plug-in registered by a test or a user's package).
    module: str = ""

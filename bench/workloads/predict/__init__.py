"""``workload: predict``: offline batch prediction, timed per batch, with its predictions
checked against the run's reference outputs (parity)."""

from __future__ import annotations

from bench.workloads.spec import WorkloadSpec

SPEC = WorkloadSpec(
    name="predict",
    help="offline batch prediction (forward passes on batches), with prediction parity",
    measure="bench.workloads.predict.cell:measure",
    compiled_pass="predict",
    parity=True,
    metrics=("latency_per_batch_s", "parity_max_abs", "parity_mean_abs", "top1_agreement"),
    needs=("data_spec", "flops_per_example"),
    sections=("parity",),
    module=__name__,
)

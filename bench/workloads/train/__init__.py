"""``workload: train``: timed training steps (forward, backward, optimizer update) on batches."""

from __future__ import annotations

from bench.workloads.spec import WorkloadSpec

SPEC = WorkloadSpec(
    name="train",
    help="training steps (forward, backward, update) on batches",
    measure="bench.workloads.train.cell:measure",
    compiled_pass="train",
    needs=("data_spec", "flops_per_example"),
    module=__name__,
)

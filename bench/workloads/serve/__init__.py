"""``workload: serve``: online requests under load, to the worker's own server (in process) or
to a model server over the network (``endpoint: NAME``); latency from the scheduled arrival,
the highest rate that meets the scenario's slo. docs/serving.md and docs/endpoints.md."""

from __future__ import annotations

from bench.workloads.spec import WorkloadSpec

SPEC = WorkloadSpec(
    name="serve",
    help="online requests under load (in process or a network endpoint), latency against an slo",
    measure="bench.workloads.serve.cell:measure",
    compiled_pass="predict",
    offline=False,
    axes=("arrivals", "endpoint", "max_batch_size", "batch_timeout_ms"),
    # A served request is one example: the batches a server forms are max_batch_size's.
    fixed={"batch_size": 1},
    # Requests of one example on one device, straight from the host.
    requires={"replicas": 1, "steps_per_call": 1, "input": "synthetic"},
    accepts={"arrivals": ("poisson", "constant", "single_stream")},
    metrics=(
        "request_latency_s",
        "max_compliant_qps",
        "realised_batch_size",
        "queue_time_s",
        "compute_time_s",
        "late_requests",
        "dropped_requests",
        "issue_lateness_s",
        "error_rate",
        "round_trip_s",
        "client_wait_s",
        "server_overhead_s",
    ),
    needs=("data_spec", "flops_per_example"),
    sections=("serving",),
    module=__name__,
)

"""One serving path: a cell on the worker's own server and a cell on a network endpoint go
through the same load, summary and record code, so at the same rate they give records of the
same shape (a stand-in backend in process; a stand-in v2 REST server over the network)."""

from __future__ import annotations

from typing import Any

from bench.workloads.cell.message import CellMessage
from bench.workloads.serve import SPEC
from bench.workloads.serve.cell.endpoint import measure_endpoint_cell
from bench.workloads.serve.cell.inprocess import measure_serve_cell
from tests.test_endpoint import StandIn, cell
from tests.test_serve_cell import SleepingBackend, message

RATE = 100.0
TRIES = 3
# What only one side can know: the model's build (in process) or the server's readiness and
# address (endpoint); everything else is the shared path's.
IN_PROCESS_ONLY = {"compile_s", "param_count", "peak_host_rss_bytes", "flops_per_example"}
SERVE_IN_PROCESS_ONLY = {"bucket_service_s"}
SERVE_ENDPOINT_ONLY = {"endpoint", "ready_after_s"}


def shape(found: dict[str, Any]) -> dict[str, Any]:
    serve = found["serve"]
    return {
        "record": set(found),
        "metrics": set(found["metrics"]),
        "serve": set(serve),
        "probe": [set(p) for p in serve["probes"]],
        "metric_stats": {
            name: set(found["metrics"][name]) - {"method"}
            for name in SPEC.metrics
            if name in found["metrics"] and "value" not in found["metrics"][name]
        },
    }


def both_cells() -> tuple[dict[str, Any], dict[str, Any]]:
    """One in-process and one endpoint cell at RATE. An ok cell records what its rate cost and
    an invalid one (its generator fell behind on a busy machine) does not, so the shapes are
    compared on two ok cells: up to three tries (measured: 1 try in 60 ended invalid with the
    load average at 3.5-4 on 2 cores)."""
    _, local = message(slo_ms=200.0, target_qps=RATE, arrivals="constant", max_batch_size=1)
    local["measure"]["serve"].update(min_queries=60, min_seconds=0.5, warmup_queries=10)
    for _ in range(TRIES):
        in_process = measure_serve_cell(SleepingBackend(), CellMessage.from_dict(local))
        with StandIn(delay_s=0.001) as server:
            endpoint_at = {"url": server.url, "max_in_flight": 8}
            _, remote = cell(endpoint_at, RATE, 60, arrivals="constant")
            endpoint = measure_endpoint_cell(remote)
        if in_process["status"] == endpoint["status"] == "ok":
            break
    return in_process, endpoint


def test_in_process_and_endpoint_cells_give_one_record_shape_at_one_rate():
    in_process, endpoint = both_cells()
    assert in_process["status"] == endpoint["status"] == "ok", (
        in_process["reason"],
        endpoint["reason"],
    )
    a, b = shape(in_process), shape(endpoint)
    assert a["record"] == b["record"]
    assert a["metrics"] - IN_PROCESS_ONLY == b["metrics"]
    # Every serve metric on both sides: measured, or unavailable with the reason.
    assert set(SPEC.metrics) - {"max_compliant_qps", "server_overhead_s"} <= b["metrics"]
    assert a["serve"] - SERVE_IN_PROCESS_ONLY == b["serve"] - SERVE_ENDPOINT_ONLY
    assert a["probe"] == b["probe"] and len(a["probe"]) == 1
    assert a["metric_stats"]["request_latency_s"] == b["metric_stats"]["request_latency_s"]
    assert (
        in_process["serve"]["target"] == "in_process" and endpoint["serve"]["target"] == "endpoint"
    )
    # What one side cannot see is said, not left out.
    hidden = endpoint["metrics"]["realised_batch_size"]
    assert "not visible to a network client" in hidden["unavailable"]
    assert in_process["metrics"]["error_rate"]["value"] == 0.0
    assert "no sender pool" in in_process["metrics"]["client_wait_s"]["method"]

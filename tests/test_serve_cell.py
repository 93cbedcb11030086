"""A serve cell measured in-process on a stand-in backend whose predict step sleeps a known
time per bucket: the worker's side of ``workload: serve`` without a framework."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from bench.axes import CellKey, normalize
from bench.backends.workload import BuildRequest, Workload
from bench.serve.batching import buckets_for
from bench.workloads.cell.message import CellMessage
from bench.workloads.serve.cell.inprocess import measure_serve_cell


class SleepingWorkload(Workload):
    """Predicts zeros after sleeping ``base + per_row x batch`` seconds."""

    def __init__(self, req: BuildRequest, base: float, per_row: float, retrace: bool) -> None:
        self.batch = req.key["batch_size"]
        self.compile_s, self.compile_method, self.param_count = 0.01, "stand-in", 7
        self.sync_method = "host read"
        self.service = base + per_row * self.batch
        self.calls = 0
        self.retrace = retrace

    def step(self) -> Any:
        return None

    def sync(self, out: Any) -> None:
        pass

    def check_output(self, out: Any) -> str | None:
        return None

    def trace_count(self) -> int:
        return self.calls if self.retrace else 0

    def memory(self) -> dict[str, Any]:
        return {}

    def infer(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        assert len(next(iter(batch.values()))) == self.batch  # padded to its bucket
        self.calls += 1
        time.sleep(self.service)
        return np.zeros((self.batch, 2), np.float32)


class SleepingBackend:
    def __init__(self, base: float = 0.001, per_row: float = 0.0001, retrace: bool = False):
        self.base, self.per_row, self.retrace = base, per_row, retrace
        self.built: list[int] = []

    def build(self, req: BuildRequest) -> Workload:
        assert req.key["workload"] == "predict"
        self.built.append(req.key["batch_size"])
        return SleepingWorkload(req, self.base, self.per_row, self.retrace)


def message(slo_ms: float, **axes: Any) -> tuple[Any, dict[str, Any]]:
    values = {
        "workload": "serve", "framework": "jax", "device": "cpu", "batch_size": 32,
        "precision": "float32", "input": "synthetic", "xla": False, "steps_per_call": 1,
        "replicas": 1, "arrivals": "poisson", "target_qps": "search", "max_batch_size": 4,
        "batch_timeout_ms": 1.0, **axes,
    }  # fmt: skip
    key = CellKey.from_dict({"model": "mlp", **normalize(values)})
    serve = {
        "min_queries": 150, "min_seconds": 0.3, "warmup_queries": 10, "max_seconds": 10.0,
        "drain_s": 0.3, "low_qps": None, "tolerance": 0.05, "retries": 1,
    }  # fmt: skip
    msg = {
        "cell_id": key.cell_id,
        "key": key.to_dict(),
        "model_args": {"hidden": [8], "vocab_size": 20, "embed_dim": 2},
        "optimizer": {},
        "seed": 0,
        "measure": {"serve": serve},
        "pricing": {"cpu": 1.0},
        "slo": {"percentile": 99, "latency_ms": slo_ms},
    }
    return key, msg


@pytest.mark.timing
def test_a_search_cell_records_every_probe_and_the_max_compliant_rate():
    backend = SleepingBackend()
    _key, msg = message(slo_ms=8.0)
    found = measure_serve_cell(backend, CellMessage.from_dict(msg))
    assert sorted(backend.built) == list(buckets_for(4)) == [1, 2, 4]  # every bucket, ahead
    assert found["status"] == "ok", found["reason"]
    m, serve = found["metrics"], found["serve"]
    max_qps = m["max_compliant_qps"]["value"]
    low, high = serve["search"]["bracket_qps"]
    assert low == max_qps and high / low <= 1.05
    assert len({p["offered_qps"] for p in serve["probes"]}) >= 4
    assert [p["offered_qps"] for p in serve["probes"]] == sorted(
        p["offered_qps"] for p in serve["probes"]
    )
    # The offline throughput of bucket 4 (~4 / 1.4 ms) bounds the search from above.
    assert (
        serve["offline_qps"] == pytest.approx(4 / 0.0014, rel=0.3)
        and max_qps < serve["offline_qps"]
    )
    assert m["examples_per_s"]["value"] == pytest.approx(max_qps)
    # 1 USD/h over max_qps requests/s, per million requests.
    assert m["cost_per_million_examples_usd"]["value"] == pytest.approx(1.0 / 3600 / max_qps * 1e6)
    assert m["request_latency_s"]["p99"] <= 0.008
    for name in ("realised_batch_size", "queue_time_s", "compute_time_s", "late_requests",
                 "dropped_requests", "issue_lateness_s"):  # fmt: skip
        assert name in m, name
    assert "histogram" in serve["probes"][0] and serve["policy"]["buckets"] == [1, 2, 4]


@pytest.mark.timing
def test_an_slo_no_rate_meets_is_recorded_with_the_reason_and_the_cell_is_kept():
    _key, msg = message(slo_ms=0.5)  # below the 1.1 ms a single request takes
    found = measure_serve_cell(SleepingBackend(), CellMessage.from_dict(msg))
    assert found["status"] == "ok" and "slo_unmet" in found["flags"]
    assert "SLO not met at any rate tried" in found["reason"]
    assert "a single request alone takes" in found["reason"]  # so no stepping down
    assert "unavailable" in found["metrics"]["max_compliant_qps"]
    assert "unavailable" in found["metrics"]["examples_per_s"]
    assert [p["attempt"] for p in found["serve"]["probes"]] == [1, 2]  # the miss, retried


def test_a_retrace_under_load_makes_the_cell_invalid():
    _key, msg = message(slo_ms=50.0, target_qps=100.0)
    found = measure_serve_cell(SleepingBackend(retrace=True), CellMessage.from_dict(msg))
    assert found["status"] == "invalid" and "retraced" in found["reason"]


def test_single_stream_sends_one_request_at_a_time():
    _key, msg = message(slo_ms=50.0, arrivals="single_stream")
    backend = SleepingBackend()
    found = measure_serve_cell(backend, CellMessage.from_dict(msg))
    assert backend.built == [1]
    assert found["status"] == "ok"
    (probe,) = found["serve"]["probes"]
    assert probe["offered_qps"] is None and probe["batch_size"]["max"] == 1
    assert probe["latency_s"]["p50"] == pytest.approx(0.0011, rel=0.5)
    assert "max_compliant_qps" not in found["metrics"]


def test_a_multi_host_run_skips_its_serve_cells_with_the_reason():
    _key, msg = message(slo_ms=50.0)
    found = measure_serve_cell(
        SleepingBackend(), CellMessage.from_dict({**msg, "cluster": {"num_processes": 2}})
    )
    assert found["status"] == "skipped" and "one host" in found["reason"]

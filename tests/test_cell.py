"""measure_cell with a fake backend: validity rules and metric wiring, no framework needed."""

from __future__ import annotations

from typing import Any

from bench.backends.workload import Workload
from bench.workloads.cell.measure import measure_cell


class FakeWorkload(Workload):
    sync_method = "fake sync"

    def __init__(
        self, device_name: str = "cpu", retrace_after: int | None = None, output: float = 1.0
    ):
        self.compile_s, self.compile_method, self.param_count = 0.5, "fake compile", 10
        self.device_name = device_name
        self.retrace_after = retrace_after
        self.output = output
        self.steps = 0

    def step(self) -> Any:
        self.steps += 1
        return self.output

    def sync(self, out: Any) -> None:
        pass

    def check_output(self, out: Any) -> str | None:
        return None if out == out else "non-finite loss ([nan]...)"  # NaN != NaN

    def trace_count(self) -> int:
        # Retraces once the timed phase is under way (first step + 1 warm-up come before it).
        if self.retrace_after is not None and self.steps > self.retrace_after:
            return 1
        return 0

    def memory(self) -> dict[str, Any]:
        return {"peak_device_memory_bytes": {"unavailable": "fake", "unit": "bytes"}}

    def compiler_flops(self) -> float | None:
        return 2000.0


class FakeBackend:
    """Stands in for a backend module (hashable, as the CPU-peak cache needs)."""

    def __init__(self, workload: FakeWorkload):
        self.workload = workload

    def build(self, req: Any) -> FakeWorkload:
        return self.workload

    def calibration_matmul(self, precision: str, n: int) -> Any:
        return lambda: None

    def matmul_settings(self, device: str) -> dict[str, Any]:
        return {}


def backend_for(workload: FakeWorkload) -> Any:
    return FakeBackend(workload)


MSG = {
    "cell_id": "c",
    "key": {
        "model": "mlp",
        "workload": "train",
        "framework": "jax",
        "device": "gpu",
        "batch_size": 4,
        "precision": "bfloat16",
        "input": "synthetic",
    },
    "model_args": {"num_numeric": 2, "num_categorical": 0, "hidden": [3]},
    "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.0, "weight_decay": 0.0},
    "seed": 0,
    "measure": {
        "warmup_steps": 1,
        "min_steps": 5,
        "min_seconds": 0.0,
        "max_seconds": 5.0,
        "target_rel_ci": 1.0,
        "timeout_s": 10,
    },
    "pricing": {"h100-sxm": 3.0},
}


def test_ok_cell_on_a_known_gpu_gets_peak_mfu_and_priced_cost():
    result = measure_cell(backend_for(FakeWorkload("NVIDIA H100 80GB HBM3")), MSG)
    m = result["metrics"]
    # mlp with 2 numeric inputs, hidden [3], 2 classes: forward 2*(2*3 + 3*2) = 24 FLOPs,
    # train = 3 x 24 = 72 FLOPs per example.
    assert m["flops_per_example"]["value"] == 72
    assert m["xla_flops_per_example"]["value"] == 2000.0 / 4  # compiler count per example
    assert "H100" in m["peak_flops_per_s"]["method"]
    assert m["mfu"]["value"] < 1e-3  # 72 FLOPs per example is nothing for an H100
    # Pricing override: $3 per device-hour for an H100 SXM -> cost scales with 1/throughput.
    rate = m["examples_per_s"]["value"]
    assert m["cost_per_million_examples_usd"]["value"] == 3.0 / 3600 / rate * 1e6
    assert result["status"] == "ok"


def test_retrace_during_the_timed_phase_invalidates():
    result = measure_cell(backend_for(FakeWorkload(retrace_after=3)), MSG)
    assert result["status"] == "invalid"
    assert result["reason"] == "step retraced 1 time(s) during the timed phase"


def test_nan_output_invalidates():
    result = measure_cell(backend_for(FakeWorkload(output=float("nan"))), MSG)
    assert result["status"] == "invalid" and "non-finite loss" in result["reason"]


def test_mfu_above_a_datasheet_peak_invalidates():
    # Claim ~1e11 training FLOPs per example (four 65536-wide layers, the widest the MLP
    # accepts) on a T4 (8.1 TFLOP/s fp32): any throughput above ~80 examples/s is impossible,
    # so the FLOP count or the timing must be wrong.
    big = {
        **MSG,
        "key": {**MSG["key"], "precision": "float32"},
        "model_args": {"num_numeric": 65_536, "num_categorical": 0, "hidden": [65_536] * 4},
    }
    result = measure_cell(backend_for(FakeWorkload("Tesla T4")), big)
    assert result["status"] == "invalid" and result["reason"].startswith("MFU ")


def test_step_time_method_says_how_the_backend_syncs():
    # The backend's own words (Workload.sync_method): the cell knows no framework.
    result = measure_cell(backend_for(FakeWorkload()), MSG)
    assert result["metrics"]["step_time_s"]["method"].endswith(", fake sync")

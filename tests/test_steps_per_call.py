"""measure_cell with a fake backend and timer: with K steps per call, every number is per step.

(tests/test_cell.py checks the cell's validity rules with a fake backend; these fix the timer's
output too, so the arithmetic is exact.)"""

from __future__ import annotations

from typing import Any

import pytest

from bench.backends.workload import Workload
from bench.measure.timing import Timing
from bench.workloads.cell import offline
from bench.workloads.cell.measure import measure_cell


class FakeWorkload(Workload):
    compile_s = 2.0
    compile_method = "fake"
    param_count = 10
    sync_method = "fake sync"

    def __init__(self, steps_per_call: int) -> None:
        self.steps_per_call = steps_per_call

    def step(self) -> Any:
        return 0.0

    def sync(self, out: Any) -> None:
        pass

    def check_output(self, out: Any) -> str | None:
        return None

    def trace_count(self) -> int:
        return 0

    def memory(self) -> dict[str, Any]:
        return {}

    def compiler_flops(self) -> float | None:
        return 4000.0  # one step, not one call (the backend divides a K-step program by K)


class FakeBackend:
    """Stands in for a backend module (hashable, as the CPU-peak cache needs)."""

    def __init__(self, steps_per_call: int) -> None:
        self.steps_per_call = steps_per_call

    def build(self, req: Any) -> Workload:
        return FakeWorkload(self.steps_per_call)

    def calibration_matmul(self, precision: str, n: int) -> Any:
        return lambda: None

    def matmul_settings(self, device: str) -> dict[str, Any]:
        return {}


class FixedTimer:
    """Calls of 0.4, 0.4 and 0.8 s after one 0.8 s warm-up call."""

    def __init__(self, rule: Any) -> None:
        pass

    def run(self, step: Any, sync: Any, on_start: Any = None, on_end: Any = None) -> Timing:
        for hook in (on_start, on_end):
            if hook:
                hook()
        return Timing(
            first_step_s=1.0,
            warmup_s=[0.8],
            step_times_s=[0.4, 0.4, 0.8],
            stop_reason="target_rel_ci reached",
            rel_ci=0.01,
            converged=True,
            last_output=0.0,
        )


def message(workload: str, steps_per_call: int) -> dict[str, Any]:
    key = {
        "model": "transformer",
        "workload": workload,
        "framework": "jax",
        "device": "cpu",
        "batch_size": 8,
        "precision": "float32",
        "input": "synthetic",
        "xla": True,
        "steps_per_call": steps_per_call,
    }
    return {
        "key": key,
        "model_args": {"num_layers": 1, "d_model": 8, "num_heads": 2, "seq_len": 4},
        "optimizer": {"name": "sgd"},
        "seed": 0,
        "measure": {
            "warmup_steps": 1,
            "min_steps": 3,
            "min_seconds": 0.0,
            "max_seconds": 1.0,
            "target_rel_ci": 0.5,
        },
    }


@pytest.fixture(autouse=True)
def fixed_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline, "Timer", FixedTimer)


def test_k_steps_per_call_report_per_step_numbers():
    record = measure_cell(FakeBackend(4), message("predict", 4))
    metrics = record["metrics"]
    # Calls of 0.4, 0.4, 0.8 s with 4 steps each: steps of 0.1, 0.1, 0.2 s, median 0.1 s.
    assert record["samples"]["step_time_s"] == [0.1, 0.1, 0.2]
    assert record["samples"]["warmup_s"] == [0.2]
    assert metrics["step_time_s"]["median"] == pytest.approx(0.1)
    assert metrics["examples_per_s"]["value"] == pytest.approx(8 / 0.1)
    assert metrics["tokens_per_s"]["value"] == pytest.approx(8 * 4 / 0.1)  # seq_len 4
    assert metrics["latency_per_batch_s"]["p50"] == pytest.approx(0.1)
    for name in ("step_time_s", "examples_per_s", "tokens_per_s", "latency_per_batch_s"):
        assert "steps_per_call=4" in metrics[name]["method"], name
    assert {k: metrics["run_length"][k] for k in ("steps", "calls", "steps_per_call")} == {
        "steps": 12,
        "calls": 3,
        "steps_per_call": 4,
    }
    assert metrics["run_length"]["seconds"] == pytest.approx(1.6)  # wall time of the calls
    assert metrics["xla_flops_per_example"]["value"] == 4000.0 / 8


def test_one_step_per_call_reads_as_before():
    metrics = measure_cell(FakeBackend(1), message("train", 1))["metrics"]
    assert metrics["examples_per_s"]["value"] == pytest.approx(8 / 0.4)
    assert metrics["examples_per_s"]["method"] == "batch_size / median step time"
    assert "steps_per_call" not in metrics["step_time_s"]["method"]
    assert metrics["run_length"]["steps"] == metrics["run_length"]["calls"] == 3

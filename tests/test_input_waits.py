"""Input-wait metrics, and how repeated cells pool them across processes."""

from __future__ import annotations

import pytest

from bench.measure.repeats import merge_repeats
from bench.measure.waits import input_metrics


def test_wait_fraction_is_total_wait_over_total_step_time():
    # Steps of 0.1 s, 0.1 s, 0.2 s waited 0.05, 0, 0.05 s: 0.1 s of 0.4 s = 25%.
    found = input_metrics([0.05, 0.0, 0.05], [0.1, 0.1, 0.2], fill_s=1.5)
    assert found["input_wait_fraction"]["value"] == pytest.approx(0.25)
    assert found["input_wait_fraction"]["unit"] == "fraction"
    assert found["input_wait_s"]["median"] == pytest.approx(0.05)
    assert found["input_wait_s"]["unit"] == "s" and found["input_wait_s"]["method"]
    assert found["cache_fill_s"]["value"] == 1.5
    assert "cache_fill_s" not in input_metrics([0.0], [0.1], fill_s=None)


def repeat(times: list[float], waits: list[float]) -> dict:
    metrics = {
        "examples_per_s": {"value": 8 / sorted(times)[len(times) // 2], "unit": "examples/s"},
        "step_time_s": {"unit": "s", "method": "m", "median": sorted(times)[len(times) // 2]},
        **input_metrics(waits, times, None),
    }
    return {
        "cell_id": "c",
        "key": {"batch_size": 8, "input": "tfdata"},
        "status": "ok",
        "metrics": metrics,
        "samples": {"step_time_s": times, "warmup_s": [], "input_wait_s": waits},
    }


def test_repeats_pool_input_waits_from_every_process():
    # Process 1 waited 0.1 s of 0.4 s, process 2 0.3 s of 0.4 s: pooled 0.4 s of 0.8 s = 50%.
    merged = merge_repeats([repeat([0.2, 0.2], [0.05, 0.05]), repeat([0.2, 0.2], [0.15, 0.15])])
    assert merged["metrics"]["input_wait_fraction"]["value"] == pytest.approx(0.5)
    assert merged["samples"]["input_wait_s"] == [0.05, 0.05, 0.15, 0.15]
    assert "pooled over 2 processes" in merged["metrics"]["input_wait_s"]["method"]

"""Repeats in fresh processes: pooled statistics, rescaled metrics, flaky cells not hidden."""

from __future__ import annotations

import math

from bench.measure.repeats import merge_repeats


def rec(times, status="ok", reason="", compile_s=1.0):
    median = sorted(times)[len(times) // 2] if times else 1.0
    return {
        "cell_id": "c",
        "key": {"batch_size": 10},
        "status": status,
        "reason": reason,
        "flags": [],
        "metrics": {
            "examples_per_s": {"value": 10 / median, "unit": "examples/s", "method": "m"},
            "step_time_s": {"unit": "s", "method": "wall", "median": median},
            "compile_s": {"value": compile_s, "unit": "s", "method": "c"},
            "mfu": {"value": 0.5, "unit": "fraction", "method": "f"},
            "cost_per_million_examples_usd": {
                "value": 2.0,
                "unit": "USD/1M examples",
                "method": "p",
            },
        },
        "samples": {"step_time_s": times, "warmup_s": []},
    }


def test_pooled_statistics_and_rescaled_metrics():
    # Repeat 1: steps of 1.0 s (median 1.0); repeat 2: 3.0 s. Pooled [1,1,1,3,3,3]: median 2.0,
    # so examples/s = 10 / 2.0 = 5.0; the first repeat alone said 10 / 1.0 = 10, a factor 0.5:
    # MFU 0.5 -> 0.25 and cost 2.0 -> 4.0 scale with it.
    merged = merge_repeats([rec([1.0, 1.0, 1.0]), rec([3.0, 3.0, 3.0], compile_s=2.0)])
    m = merged["metrics"]
    assert m["step_time_s"]["median"] == 2.0 and m["step_time_s"]["n"] == 6
    assert m["examples_per_s"]["value"] == 5.0
    assert math.isclose(m["mfu"]["value"], 0.25)
    assert math.isclose(m["cost_per_million_examples_usd"]["value"], 4.0)
    # Between-process CV of the medians 1 and 3: stdev sqrt(2) / mean 2 = 0.707.
    assert math.isclose(m["between_process_cv"]["value"], math.sqrt(2) / 2)
    assert [r["compile_s"] for r in merged["repeats"]] == [1.0, 2.0]
    assert merged["samples"]["step_time_s_by_repeat"] == [[1.0] * 3, [3.0] * 3]
    assert merged["status"] == "ok"


def test_a_failed_repeat_marks_the_cell():
    merged = merge_repeats([rec([1.0, 1.0]), rec([], status="oom", reason="RESOURCE_EXHAUSTED")])
    assert merged["status"] == "oom"
    assert merged["reason"] == "repeat 2/2: RESOURCE_EXHAUSTED"
    assert len(merged["repeats"]) == 2


def test_all_repeats_failed():
    merged = merge_repeats([rec([], "failed", "boom"), rec([], "failed", "bang")])
    assert merged["status"] == "failed" and merged["reason"] == "all 2 repeats failed; last: bang"


def test_requests_under_load_are_not_pooled_but_each_process_is_kept():
    # A generate cell has per-request samples and no step times: bench tune re-measures its
    # finalists in fresh processes, and the merge must keep them apart, not fail.
    def online(tokens_per_s: float) -> dict:
        r = rec([])
        r["metrics"] = {"output_tokens_per_s": {"value": tokens_per_s, "unit": "tokens/s",
                                                "method": "m"}}  # fmt: skip
        r["samples"] = {"ttft_s": [0.1, 0.2]}
        return r

    merged = merge_repeats([online(100.0), online(80.0)])
    assert merged["status"] == "ok" and "repeats_not_pooled" in merged["flags"]
    assert merged["metrics"]["output_tokens_per_s"]["value"] == 100.0
    assert len(merged["repeats"]) == 2 and merged["samples"] == {"ttft_s": [0.1, 0.2]}

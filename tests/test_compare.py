"""Matching cells across runs, ratios and their intervals, missing and failed cells."""

from __future__ import annotations

import pytest

from bench.read.compare import ComparisonError, compare
from bench.read.runset import load_runs
from bench.report.compare import to_csv, to_markdown
from tests.fixtures.runs import record, write_run


def ratio(result, field, group=0, run=1):
    metric = next(m for m in result.groups[group].metrics if m.field == field)
    return metric.ratios[run - 1]


def test_a_slower_candidate_is_worse_with_an_interval(tmp_path):
    a = write_run(tmp_path, "a", [record(median_s=0.010, seed=1)])
    b = write_run(tmp_path, "b", [record(median_s=0.012, seed=2)])
    result = compare(load_runs([a, b]))
    steps = ratio(result, "median_ms")
    # 12 ms / 10 ms exactly, 3% noise on each side
    assert steps.value == pytest.approx(1.2)
    assert 1.1 < steps.ci_lo < 1.2 < steps.ci_hi < 1.3
    assert steps.verdict == "worse"
    rate = ratio(result, "examples_per_s")
    assert rate.value == pytest.approx(1 / 1.2) and rate.verdict == "worse"
    # the throughput interval is the step-time interval, inverted
    assert rate.ci_lo == pytest.approx(1 / steps.ci_hi) and rate.ci_hi == pytest.approx(
        1 / steps.ci_lo
    )
    assert ratio(result, "p99_ms").verdict is None  # no interval, no claim


def test_run_compared_with_itself_is_one(tmp_path):
    a = write_run(tmp_path, "a", [record(median_s=0.01), record(batch_size=128, median_s=0.02)])
    result = compare(load_runs([a, a], allow_repeats=True))
    for group in result.groups:
        for metric in group.metrics:
            assert metric.ratios[0].value == 1.0
            assert metric.ratios[0].verdict in (None, "same")


def test_axes_that_differ_between_runs_as_a_whole_are_compared_not_matched(tmp_path):
    cpu = write_run(tmp_path, "cpu", [record(device="cpu", batch_size=b) for b in (64, 256)])
    gpu = write_run(
        tmp_path, "gpu", [record(device="gpu", batch_size=b, median_s=0.001) for b in (64, 256)]
    )
    result = compare(load_runs([cpu, gpu]))
    assert "device" not in result.by and result.differing == {"device": ("cpu", "gpu")}
    assert len(result.groups) == 2
    assert all(s.status == "ok" for g in result.groups for s in g.sides)
    assert ratio(result, "examples_per_s").value == pytest.approx(10.0)


def test_by_chooses_the_axes_and_refuses_ambiguity(tmp_path):
    a = write_run(tmp_path, "a", [record(framework="jax"), record(framework="tensorflow")])
    b = write_run(tmp_path, "b", [record(framework="jax")])
    with pytest.raises(ComparisonError, match="add framework to --by"):
        compare(load_runs([a, b]), by=["batch_size"])
    with pytest.raises(ComparisonError, match="no axis 'devic'"):
        compare(load_runs([a, b]), by=["devic"])
    result = compare(load_runs([a, b]), by=["framework"])
    assert [g.match["framework"] for g in result.groups] == ["jax", "tensorflow"]


def test_missing_and_failed_cells_are_shown_as_such(tmp_path):
    a = write_run(tmp_path, "a", [record(batch_size=64), record(batch_size=128)])
    b = write_run(
        tmp_path,
        "b",
        [
            record(batch_size=64, status="failed", reason="boom", median_s=None),
            record(batch_size=256),
        ],
    )
    result = compare(load_runs([a, b]))
    statuses = {g.match["batch_size"]: [s.status for s in g.sides] for g in result.groups}
    assert statuses == {"64": ["ok", "failed"], "128": ["ok", "missing"], "256": ["missing", "ok"]}
    text = to_markdown(result)
    assert "| status |  | ok | failed |" in text and "b/A" not in text
    assert "B jax-cpu-predict-bs64-float32-synthetic: failed: boom" in text
    assert ",missing," not in to_csv(result).split("\n", 1)[0]


def test_cost_and_mfu_are_compared_when_present(tmp_path):
    a = write_run(tmp_path, "a", [record(usd_per_hour=1.0, flops_per_example=1e6, peak_flops=1e12)])
    b = write_run(tmp_path, "b", [record(usd_per_hour=2.0, flops_per_example=1e6, peak_flops=1e12)])
    result = compare(load_runs([a, b]))
    # same speed at twice the price: cost x2, and the step-time interval carried over
    cost = ratio(result, "cost_usd_per_million")
    assert cost.value == pytest.approx(2.0) and cost.ci_lo < 2.0 < cost.ci_hi
    assert cost.verdict == "worse"
    assert ratio(result, "mfu_pct").value == pytest.approx(1.0)
    assert "energy_kwh_per_million" not in {m.field for m in result.groups[0].metrics}
    assert "energy_kwh_per_million" in result.omitted

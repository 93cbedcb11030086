"""The gate on generate cells: TTFT and TPOT per request, decode tokens/s per step, read from the
record's own sample lists (``Gate.sample``) and tested by the gate's rule like step times."""

from __future__ import annotations

import pytest

from bench.gate.baseline import METRICS, load_side, save_baseline
from bench.gate.decision import Verdict
from bench.gate.policy import build_config
from bench.gate.regression import run_gate
from tests.fixtures.gate_runs import (
    cell_id,
    generate_cell_id,
    generate_record,
    lognormal,
    record,
    write_run,
)

CONFIG = build_config(None, {}, METRICS)
GEN = ["ttft", "tpot", "tokens_per_s"]


def sides(tmp_path, base, cand):
    b = write_run(tmp_path / "base", base)
    c = write_run(tmp_path / "cand", cand)
    return load_side([b]), load_side([c])


def verdicts(report) -> dict[str, Verdict]:
    return {r.metric.name: r.decision.verdict for r in report.rows}


def gen(seed: int, ttft: float = 0.08, tpot: float = 0.004, rate: float = 900.0) -> dict:
    # 40 requests, 300 decode steps: a small generate cell's counts
    return generate_record(
        lognormal(seed, 40, ttft, 0.05),
        lognormal(seed + 1, 40, tpot, 0.05),
        lognormal(seed + 2, 300, rate, 0.05),
    )


def test_the_gate_metrics_read_the_sample_lists_with_their_direction():
    assert {m: (METRICS[m].quantity, METRICS[m].higher_is_better) for m in GEN} == {
        "ttft": ("ttft_s", False),
        "tpot": ("tpot_s", False),
        "tokens_per_s": ("decode_tokens_per_s", True),
    }
    assert not any(METRICS[m].per_process for m in GEN)  # many samples per cell, not per process


def test_ttft_30_percent_worse_fails_the_gate(tmp_path):
    base = gen(1)
    cand = gen(1, ttft=0.08 * 1.3)  # the same TPOT and decode samples; only TTFT moves
    report = run_gate(*sides(tmp_path, [base], [cand]), CONFIG, GEN)
    assert verdicts(report) == {
        "ttft": Verdict.REGRESSED,
        "tpot": Verdict.NO_CHANGE,
        "tokens_per_s": Verdict.NO_CHANGE,
    }
    (row,) = [r for r in report.rows if r.metric.name == "ttft"]
    assert row.cell_id == generate_cell_id()
    assert row.decision.ratio == pytest.approx(1.3, rel=0.05)
    assert row.decision.n_baseline == row.decision.n_candidate == 40
    assert report.exit_code == 1 and report.binding == [row]


def test_an_identical_generate_run_passes(tmp_path):
    report = run_gate(*sides(tmp_path, [gen(1)], [gen(1)]), CONFIG, GEN)
    assert set(verdicts(report).values()) == {Verdict.NO_CHANGE}
    assert report.tests == 3 and report.exit_code == 0


def test_fewer_tokens_per_second_is_worse(tmp_path):
    report = run_gate(*sides(tmp_path, [gen(1)], [gen(1, rate=900.0 * 0.7)]), CONFIG, GEN)
    assert verdicts(report)["tokens_per_s"] == Verdict.REGRESSED
    (row,) = [r for r in report.rows if r.metric.name == "tokens_per_s"]
    assert row.decision.ratio == pytest.approx(0.7, rel=0.05)  # candidate / baseline, as measured
    assert row.metric.unit == "tokens/s"


def test_a_saved_baseline_keeps_the_sample_lists_and_the_verdicts(tmp_path):
    base, cand = sides(tmp_path, [gen(1)], [gen(1, ttft=0.08 * 1.3)])
    saved = load_side([save_baseline(base, tmp_path / "b.json")])
    quantities = saved.cells[generate_cell_id()].quantities
    assert {q: quantities[q].n for q in ("ttft_s", "tpot_s", "decode_tokens_per_s")} == {
        "ttft_s": 40,
        "tpot_s": 40,
        "decode_tokens_per_s": 300,
    }
    direct, from_file = (run_gate(s, cand, CONFIG, GEN) for s in (base, saved))
    assert verdicts(from_file) == verdicts(direct)


def test_unavailable_samples_say_why(tmp_path):
    failed = generate_record([], [], [], unavailable="no request measured it")
    report = run_gate(*sides(tmp_path, [gen(1)], [failed]), CONFIG, GEN)
    reasons = {r.metric.name: r.decision.reason for r in report.rows}
    assert set(verdicts(report).values()) == {Verdict.INSUFFICIENT_DATA}
    assert reasons["ttft"] == "candidate: no request measured it"
    assert report.exit_code == 0


def test_a_train_cell_has_no_ttft_and_says_so(tmp_path):
    # a train cell carries no empty TTFT entry into the baseline: the gate names the list
    train = record(lognormal(1, 30, 0.01))
    report = run_gate(*sides(tmp_path, [train], [train]), CONFIG, ["ttft", "step_time"])
    rows = {r.metric.name: r for r in report.rows}
    assert rows["ttft"].cell_id == cell_id()
    assert rows["ttft"].decision.verdict == Verdict.INSUFFICIENT_DATA
    assert rows["ttft"].decision.reason == (
        "baseline: the record holds no ttft_s samples (a train cell); "
        "candidate: the record holds no ttft_s samples (a train cell)"
    )
    assert rows["step_time"].decision.verdict == Verdict.NO_CHANGE
    assert "ttft_s" not in load_side([tmp_path / "base"]).cells[cell_id()].quantities


def test_without_metric_each_cell_is_gated_on_its_workloads_own(tmp_path):
    # A generate cell has no step times: by default it is gated on TTFT, TPOT and tokens/s,
    # and a train cell beside it on its step time, each only on its own.
    train = record(lognormal(1, 30, 0.01))
    base, cand = sides(tmp_path, [train, gen(1)], [train, gen(1, ttft=0.08 * 1.3)])
    report = run_gate(base, cand, CONFIG)
    rows = {(r.cell_id, r.metric.name): r.decision.verdict for r in report.rows}
    assert rows == {
        (cell_id(), "step_time"): Verdict.NO_CHANGE,
        (generate_cell_id(), "ttft"): Verdict.REGRESSED,
        (generate_cell_id(), "tpot"): Verdict.NO_CHANGE,
        (generate_cell_id(), "tokens_per_s"): Verdict.NO_CHANGE,
    }
    assert [m.name for m in report.metrics] == ["step_time", "ttft", "tpot", "tokens_per_s"]
    assert report.exit_code == 1
    # named metrics apply to every cell, as before
    named = run_gate(base, cand, CONFIG, ["step_time"])
    assert [(r.cell_id, r.decision.verdict) for r in named.rows] == [
        (cell_id(), Verdict.NO_CHANGE),
        (generate_cell_id(), Verdict.INSUFFICIENT_DATA),
    ]

"""The whole gate over two sides: pairing, metrics, Holm across everything, advisory verdicts."""

from __future__ import annotations

import pytest

from bench.gate.baseline import METRICS, load_side
from bench.gate.decision import Verdict
from bench.gate.policy import build_config
from bench.gate.regression import GateError, run_gate
from bench.report.gate import render_text, report_dict
from tests.fixtures.gate_runs import ENV, cell_id, lognormal, record, reference, write_run

CONFIG = build_config(None, {}, METRICS)


def gate(
    tmp_path, base_records, cand_records, metrics=None, config=CONFIG, base_ref=None, **cand_opts
):
    b = write_run(tmp_path / "base", base_records, ref=base_ref)
    c = write_run(tmp_path / "cand", cand_records, **cand_opts)
    return run_gate(load_side([b]), load_side([c]), config, metrics)


def verdicts(report) -> dict[tuple[str, str], str]:
    return {(r.cell_id, r.metric.name): r.decision.verdict.value for r in report.rows}


def test_a_25_percent_slowdown_fails_and_names_the_cell(tmp_path):
    report = gate(tmp_path, [record(lognormal(1, 30, 0.010))], [record(lognormal(2, 30, 0.0125))])
    assert verdicts(report) == {(cell_id(), "step_time"): "REGRESSED"}
    assert report.exit_code == 1 and not report.advisory


def test_throughput_is_gated_in_its_own_direction(tmp_path):
    report = gate(tmp_path, [record(lognormal(1, 30, 0.010))], [record(lognormal(2, 30, 0.0125))],
                  metrics=["throughput"])  # fmt: skip
    (row,) = report.rows
    # 25% slower steps: throughput ratio 1/1.25 = 0.8, which is worse for throughput
    assert row.decision.verdict == Verdict.REGRESSED
    assert row.decision.ratio == pytest.approx(0.8, rel=0.05)
    assert row.metric.unit == "examples/s"


def test_holm_runs_over_every_cell_and_metric(tmp_path):
    base = [record(lognormal(s, 30, 0.01), "train", b) for s, b in enumerate((8, 16, 32))]
    report = gate(tmp_path, base, base, metrics=["step_time", "throughput"])
    assert report.tests == 6
    assert set(verdicts(report).values()) == {"NO_CHANGE"}


def test_per_process_metrics_need_repeats_and_say_so(tmp_path):
    report = gate(tmp_path, [record(lognormal(1, 30, 0.01))], [record(lognormal(2, 30, 0.01))],
                  metrics=["compile_time", "host_memory", "device_memory"])  # fmt: skip
    reasons = {r.metric.name: r.decision.reason for r in report.rows}
    assert set(verdicts(report).values()) == {"INSUFFICIENT_DATA"}
    assert reasons["compile_time"].startswith("compile_time is one value per process: 1 baseline")
    assert "measure.repeats: 10 in the scenario" in reasons["compile_time"]
    assert reasons["device_memory"] == (
        "baseline: no memory_stats on cpu; candidate: no memory_stats on cpu"
    )
    assert report.exit_code == 0


def test_compile_time_from_repeats_can_regress(tmp_path):
    def with_repeats(seed: int, compile_s: float) -> dict:
        parts = [lognormal(seed + i, 10, 0.01) for i in range(12)]
        values = lognormal(seed, 12, compile_s, 0.03)
        repeats = [{"status": "ok", "compile_s": v, "peak_host_rss_bytes": 4e8} for v in values]
        return record([t for p in parts for t in p], repeats=repeats, by_repeat=parts)

    report = gate(tmp_path, [with_repeats(1, 0.5)], [with_repeats(50, 0.75)],
                  metrics=["step_time", "compile_time", "host_memory"])  # fmt: skip
    found = verdicts(report)
    assert found[(cell_id(), "compile_time")] == "REGRESSED"  # 50% slower compile, 12 per side
    assert found[(cell_id(), "host_memory")] == "NO_CHANGE"  # identical values: all tied
    assert found[(cell_id(), "step_time")] == "NO_CHANGE"


def test_cells_that_did_not_run_are_insufficient_with_the_reason(tmp_path):
    report = gate(tmp_path, [record(lognormal(1, 30, 0.01))],
                  [record([], status="oom", reason="out of memory")])  # fmt: skip
    (row,) = report.rows
    assert row.decision.verdict == Verdict.INSUFFICIENT_DATA
    assert row.decision.reason == "candidate: cell oom: out of memory"
    assert row.decision.median_baseline is not None and row.decision.n_candidate == 0
    assert report.exit_code == 0  # `bench run` itself exits 1 on the failed cell


def test_cells_on_one_side_only_are_noted_and_none_in_common_is_an_error(tmp_path):
    report = gate(tmp_path, [record(lognormal(1, 30, 0.01)), record(lognormal(2, 30, 0.01), "predict")],
                  [record(lognormal(3, 30, 0.01)), record(lognormal(4, 30, 0.01), "train", 64)])  # fmt: skip
    assert [r.cell_id for r in report.rows] == [cell_id()]
    assert f"1 baseline cell(s) not in the candidate: {cell_id('predict')}" in report.notes
    assert f"1 candidate cell(s) not in the baseline: {cell_id('train', 64)}" in report.notes
    with pytest.raises(GateError, match="no cell is in both"):
        gate(tmp_path / "x", [record(lognormal(1, 30, 0.01))],
             [record(lognormal(1, 30, 0.01), "predict")])  # fmt: skip


def test_environment_mismatch_makes_a_regression_advisory(tmp_path):
    env = {**ENV, "packages": {**ENV["packages"], "jax": "0.5.0"}}
    report = gate(tmp_path, [record(lognormal(1, 30, 0.010))], [record(lognormal(2, 30, 0.0125))],
                  env=env)  # fmt: skip
    assert report.regressed and report.advisory and report.exit_code == 0
    assert report.environment.mismatches == (("framework.jax", "0.4.35", "0.5.0"),)
    strict = run_gate(report.baseline, report.candidate, CONFIG, strict_env=True)
    assert strict.exit_code == 1


def test_unstable_machine_makes_a_regression_advisory(tmp_path):
    # the reference kernel ran 25% slower too: the machine explains the slowdown
    report = gate(tmp_path, [record(lognormal(1, 30, 0.010))], [record(lognormal(2, 30, 0.0125))],
                  ref=reference(7, factor=1.25))  # fmt: skip
    assert report.machine.unstable and report.advisory and report.exit_code == 0
    assert report.advisory_reasons == ["the machine is UNSTABLE"]
    # the machine measured up to ~1.27x slower: 1.10 x 1.27 = 1.40 explains a 1.25x slowdown
    (row,) = report.rows
    assert 1.25 < report.machine.slowdown < 1.35
    assert row.slowdown_lo < row.machine_bound(report.machine)
    assert report.rule(row) == "advisory"
    text = render_text(report)
    assert "REGRESSED (advisory)" in text and "within the" in text


def test_a_slowdown_beyond_what_the_unstable_machine_measured_still_fails(tmp_path):
    # The baseline's reference kernel ran 9% slower at its end than at its start (drift beyond
    # half the 10% threshold: UNSTABLE), and the candidate's model is 2.3x slower. The machine
    # explains at most ~1.1x: 1.10 x ~1.11 = ~1.22, far below 2.3, so the gate fails.
    report = gate(tmp_path, [record(lognormal(1, 30, 0.010))], [record(lognormal(2, 30, 0.023))],
                  base_ref=reference(3, drift=1.09))  # fmt: skip
    (row,) = report.rows
    assert report.machine.unstable and report.advisory
    assert any("machine during the run" in r for r in report.machine.reasons)
    assert 1.05 < report.machine.slowdown < 1.15
    assert "drift in baseline run" in report.machine.slowdown_source
    assert report.rule(row) == "beyond_machine" and report.exit_code == 1
    text = render_text(report)
    assert text.startswith(
        "bench gate: FAIL (exit 1): 1 REGRESSED, beyond what the UNSTABLE machine explains"
    )
    assert "REGRESSED (beyond machine)" in text and "it counts" in text
    assert "largest slowdown the machine check measured: x1.1" in text
    assert report_dict(report)["rows"][0]["rule"] == "beyond_machine"


def test_the_same_drift_leaves_a_slowdown_it_can_explain_advisory(tmp_path):
    # 1.2x slower steps on the same drifting machine: beyond the 10% threshold, within ~1.22
    report = gate(tmp_path, [record(lognormal(1, 30, 0.010))], [record(lognormal(2, 30, 0.0118))],
                  base_ref=reference(3, drift=1.09))  # fmt: skip
    (row,) = report.rows
    assert row.decision.verdict == Verdict.REGRESSED
    assert report.rule(row) == "advisory" and report.exit_code == 0


def test_a_busy_machine_explains_at_most_what_others_took(tmp_path):
    # others held 50% of the CPU: a program needing the whole machine ran at most 2x slower,
    # so 1.10 x 2 = 2.2 is explained and 3x is not
    for factor, code in ((1.25, 0), (3.0, 1)):
        report = gate(tmp_path / str(factor), [record(lognormal(1, 30, 0.010))],
                      [record(lognormal(2, 30, 0.010 * factor))],
                      ref=reference(7, others=0.5))  # fmt: skip
        assert report.machine.slowdown == pytest.approx(2.0)
        assert report.machine.slowdown_source.startswith("others' CPU share in candidate run")
        assert report.exit_code == code, factor


def test_a_changed_environment_is_never_overruled_by_the_machine_rule(tmp_path):
    env = {**ENV, "packages": {**ENV["packages"], "jax": "0.5.0"}}
    report = gate(tmp_path, [record(lognormal(1, 30, 0.010))], [record(lognormal(2, 30, 0.03))],
                  env=env, base_ref=reference(3, drift=1.09))  # fmt: skip
    assert report.machine.unstable and report.regressed
    assert report.rule(report.rows[0]) == "advisory" and report.exit_code == 0


def test_a_busy_candidate_machine_makes_a_regression_advisory(tmp_path):
    report = gate(tmp_path, [record(lognormal(1, 30, 0.010))], [record(lognormal(2, 30, 0.0125))],
                  ref=reference(7, others=0.5))  # fmt: skip
    assert report.machine.unstable and report.exit_code == 0


def test_a_changed_scenario_is_noted_not_excused(tmp_path):
    b = write_run(tmp_path / "b", [record(lognormal(1, 30, 0.010))])
    c = write_run(tmp_path / "c", [record(lognormal(2, 30, 0.0125))])
    meta = (c / "run.json").read_text().replace("0" * 64, "1" * 64)
    (c / "run.json").write_text(meta)
    report = run_gate(load_side([b]), load_side([c]), CONFIG)
    assert report.exit_code == 1
    assert any(n.startswith("the scenario files differ") for n in report.notes)


def processes(seed: int, *medians: float) -> dict:
    """One cell measured in a process per median (``measure.repeats``), 20 steps each."""
    parts = [lognormal(seed + i, 20, m, 0.03) for i, m in enumerate(medians)]
    repeats = [{"status": "ok", "median_step_s": float(sorted(p)[10])} for p in parts]
    return record([t for p in parts for t in p], repeats=repeats, by_repeat=parts)


def test_the_spread_between_processes_widens_the_threshold_of_per_step_metrics(tmp_path):
    # Each side's processes disagree by up to 30%, as the same cell does between fresh
    # processes on a 2-core VM; the candidate is 20% slower, with a tight interval over steps.
    base = processes(1, 0.010, 0.0125, 0.013)
    report = gate(tmp_path / "a", [base], [processes(10, 0.012, 0.0145, 0.0156)],
                  metrics=["step_time", "throughput"])  # fmt: skip
    for row in report.rows:
        assert 0.25 < row.policy.threshold < 0.4, row.metric.name
        assert row.decision.verdict != Verdict.REGRESSED, row.decision
    assert report.exit_code == 0
    (note,) = [n for n in report.notes if "widened" in n]
    assert note.startswith(f"{cell_id()}: threshold widened to ")
    assert "3 baseline and 3 candidate processes" in note
    # the same spread does not hide a model twice as slow
    report = gate(tmp_path / "b", [base], [processes(10, 0.020, 0.025, 0.026)])
    assert verdicts(report) == {(cell_id(), "step_time"): "REGRESSED"} and report.exit_code == 1
    # processes that agree leave the threshold alone, so 20% slower fails
    report = gate(tmp_path / "c", [processes(1, 0.010, 0.0101, 0.0102)],
                  [processes(10, 0.012, 0.0121, 0.0122)])  # fmt: skip
    assert report.rows[0].policy.threshold == pytest.approx(0.10) and report.exit_code == 1
    assert not [n for n in report.notes if "widened" in n]


def test_an_unstable_machine_bound_uses_the_configured_threshold_not_the_widened_one(tmp_path):
    # The baseline's machine slowed 1.5x while it ran: its processes are 1.5x apart and the
    # kernel's end is 1.5x its start. Both measure one drift; a 2.3x slower model must still
    # fail: 2.3 > 1.1 x ~1.55, though not > 1.5 x 1.1 x 1.55.
    base = processes(1, 0.010, 0.0125, 0.015)
    report = gate(tmp_path, [base], [processes(10, 0.023, 0.024, 0.025)],
                  base_ref=reference(3, drift=1.5))  # fmt: skip
    assert report.machine.unstable and 1.45 < report.machine.slowdown < 1.7
    (row,) = report.rows
    assert row.policy.threshold > 0.4 and row.configured == pytest.approx(0.10)
    assert row.machine_bound(report.machine) == pytest.approx(1.1 * report.machine.slowdown)
    assert report.rule(row) == "beyond_machine" and report.exit_code == 1


def read_machine(rec: dict, *seconds: float) -> dict:
    """``rec`` with the runner's per-cell machine reading: one per process."""
    if rec.get("repeats"):
        for repeat, s in zip(rec["repeats"], seconds, strict=True):
            repeat["machine_matmul_s"] = s
    else:
        (s,) = seconds
        rec["metrics"]["machine_matmul_s"] = {"value": s, "unit": "s", "method": "m"}
    return rec


def test_a_cells_own_machine_reading_replaces_the_drift_of_the_runs_ends(tmp_path):
    # What the project's 2-core VM did: the kernel at the candidate run's end was 2.1x its
    # start, so the run-wide bound (1.1 x ~2.2) explained a model twice as deep; the matmul
    # timed before each of the cell's processes read the same on both sides, so it fails.
    base = read_machine(processes(1, 0.010, 0.0102, 0.0104), 0.0016, 0.0017, 0.0016)
    slow = read_machine(processes(10, 0.021, 0.0215, 0.022), 0.0016, 0.0016, 0.0017)
    report = gate(tmp_path / "a", [base], [slow], ref=reference(7, drift=2.1))
    (row,) = report.rows
    assert report.machine.unstable and report.machine.slowdown > 2.0
    assert row.cell_machine == pytest.approx(1.0)
    assert row.machine_bound(report.machine) == pytest.approx(1.1)
    assert report.rule(row) == "beyond_machine" and report.exit_code == 1
    assert "this cell's machine slowdown 1.000" in render_text(report)
    assert report_dict(report)["rows"][0]["machine_slowdown_of"] == "cell"
    # the same run-wide drift without per-cell readings (an older run) leaves it advisory
    plain = gate(tmp_path / "b", [processes(1, 0.010, 0.0102, 0.0104)],
                 [processes(10, 0.021, 0.0215, 0.022)], ref=reference(7, drift=2.1))  # fmt: skip
    assert plain.rows[0].cell_machine is None and plain.exit_code == 0


def test_a_cell_that_met_a_slower_machine_is_explained_by_it(tmp_path):
    # The machine was 1.9x slower when the candidate measured this cell: 2x slower steps are
    # within 1.1 x 1.9 = 2.09, so advisory, though the run-wide ends drifted only 1.09x.
    base = read_machine(processes(1, 0.010, 0.0102, 0.0104), 0.0016, 0.0016, 0.0016)
    cand = read_machine(processes(10, 0.020, 0.0202, 0.0204), 0.0030, 0.0031, 0.0030)
    report = gate(tmp_path, [base], [cand], base_ref=reference(3, drift=1.09))
    (row,) = report.rows
    assert row.decision.verdict == Verdict.REGRESSED and report.machine.unstable
    assert row.cell_machine == pytest.approx(0.0030 / 0.0016)
    assert report.rule(row) == "advisory" and report.exit_code == 0


def test_others_share_compounds_with_a_cells_own_reading(tmp_path):
    # others held 50% of the CPU in the candidate run: 2x explained on top of the cell's own
    base = read_machine(processes(1, 0.010, 0.0102, 0.0104), 0.0016, 0.0016, 0.0016)
    cand = read_machine(processes(10, 0.020, 0.0202, 0.0204), 0.0016, 0.0016, 0.0016)
    report = gate(tmp_path, [base], [cand], ref=reference(7, others=0.5))
    (row,) = report.rows
    assert row.machine_slowdown(report.machine) == pytest.approx(2.0)
    assert report.rule(row) == "advisory" and report.exit_code == 0

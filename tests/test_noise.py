"""The noise threshold shared by compare, recommend and input_bound, on constructed records."""

from __future__ import annotations

import csv
import io
import json

import pytest

from bench.cli import main
from bench.measure.noise import DEFAULT_THRESHOLD, Noise, beyond, noise_for, spread, summary
from bench.read.compare import compare
from bench.read.recommend import recommend
from bench.read.runset import load_runs
from bench.report.compare import legend, to_csv
from tests.fixtures.runs import record, write_run


def ratio(result, field="median_ms"):
    return next(m for m in result.groups[0].metrics if m.field == field).ratios[0]


def with_repeats(rec: dict, *medians: float) -> dict:
    rec["repeats"] = [{"status": "ok", "median_step_s": m} for m in medians]
    return rec


def test_the_band_is_symmetric_in_log_scale():
    # T = 10%: above 1.1 or below 1 / 1.1 = 0.909; an interval touching the band is no claim
    assert beyond(1.11, 1.3, 0.10) == "above"
    assert beyond(1.09, 1.3, 0.10) is None
    assert beyond(0.8, 0.90, 0.10) == "below"
    assert beyond(0.8, 0.92, 0.10) is None
    # T = 0 is the interval alone: excluding 1.00 is enough
    assert beyond(1.001, 1.01, 0.0) == "above"


def test_threshold_precedence_set_then_repeats_then_default():
    plain, repeated = {}, {"repeats": [{"status": "ok", "median_step_s": m} for m in (1.0, 1.04)]}
    assert noise_for([plain]) == Noise(DEFAULT_THRESHOLD, "default")
    # the largest relative difference between two processes: 1.04 / 1.0 - 1
    found = noise_for([plain, repeated])
    assert found.source == "repeats" and found.threshold == pytest.approx(0.04)
    assert noise_for([repeated], 0.2) == Noise(0.2, "set")
    failed = {"repeats": [{"status": "failed", "median_step_s": 9.0}, {"status": "ok"}]}
    assert spread([1.0]) is None and noise_for([failed]).source == "default"
    with pytest.raises(ValueError, match="finite fraction"):
        noise_for([], float("nan"))


def test_a_true_30_percent_difference_is_still_marked(tmp_path):
    a = write_run(tmp_path, "a", [record(median_s=0.010, seed=1)])
    b = write_run(tmp_path, "b", [record(median_s=0.013, seed=2)])
    result = compare(load_runs([a, b]))
    steps = ratio(result)
    assert steps.value == pytest.approx(1.3) and steps.ci_lo > 1.1
    assert steps.verdict == "worse" and steps.noise == Noise(0.10, "default")
    assert ratio(result, "examples_per_s").verdict == "worse"


def test_a_3_percent_difference_with_a_tight_interval_is_not(tmp_path):
    # 0.5% step noise: the interval excludes 1.00 (the old rule said "worse"), but 3% is
    # within the 10% a rerun moves a cell
    a = write_run(tmp_path, "a", [record(median_s=0.010, spread=0.005, seed=1)])
    b = write_run(tmp_path, "b", [record(median_s=0.0103, spread=0.005, seed=2)])
    result = compare(load_runs([a, b]))
    steps = ratio(result)
    assert 1.0 < steps.ci_lo < steps.ci_hi < 1.1
    assert steps.verdict == "same"
    assert compare(load_runs([a, b]), noise=0.0).groups[0].metrics[1].ratios[0].verdict == "worse"
    assert "noise threshold 10% (default; no repeats)" in legend(result)


def test_repeats_set_the_threshold_per_cell_and_the_output_says_so(tmp_path):
    # bs64: processes 1% apart, so 3% is beyond noise; bs128: no repeats, so 10% applies
    a = write_run(
        tmp_path,
        "a",
        [
            with_repeats(record(median_s=0.010, spread=0.005, seed=1), 0.0100, 0.0101),
            record(batch_size=128, median_s=0.010, spread=0.005, seed=3),
        ],
    )
    b = write_run(
        tmp_path,
        "b",
        [
            with_repeats(record(median_s=0.0103, spread=0.005, seed=2), 0.0103, 0.0103),
            record(batch_size=128, median_s=0.0103, spread=0.005, seed=4),
        ],
    )
    result = compare(load_runs([a, b]))
    by_batch = {g.match["batch_size"]: g for g in result.groups}
    repeated = by_batch["64"].metrics[1].ratios[0]
    assert repeated.verdict == "worse" and repeated.noise.source == "repeats"
    assert repeated.noise.threshold == pytest.approx(0.01)
    assert by_batch["128"].metrics[1].ratios[0].verdict == "same"
    assert result.noise_rule == (
        "noise threshold per cell: 1% from the spread between repeated processes; "
        "10% (default; no repeats)"
    )
    rows = list(csv.DictReader(io.StringIO(to_csv(result))))
    marked = [r for r in rows if r["verdict"] == "worse"]
    assert {r["batch_size"] for r in marked} == {"64"}
    assert all(r["noise_source"] == "repeats" for r in marked)
    assert float(marked[0]["noise_threshold"]) == pytest.approx(0.01)


def test_recommend_needs_the_lead_beyond_the_threshold(tmp_path):
    # 5% apart with 0.5% noise: the old rule called it a real lead; a rerun can undo it
    runset = load_runs(
        [
            write_run(
                tmp_path,
                "run",
                [
                    record(framework="jax", median_s=0.0100, spread=0.005, seed=1),
                    record(framework="tensorflow", median_s=0.0105, spread=0.005, seed=2),
                ],
            )
        ]
    )
    (choice,) = recommend(runset, "throughput").choices
    (runner,) = choice.runners_up
    assert runner.margin.ci_lo > 1.0 and runner.margin.within_noise is True
    assert runner.margin.noise == Noise(0.10, "default")
    (choice,) = recommend(runset, "throughput", noise=0.02).choices
    assert choice.runners_up[0].margin.within_noise is False
    assert recommend(runset, "throughput", noise=0.02).noise_rule == (
        "noise threshold 2% (set by --noise)"
    )


def shared(run_dir, share: float) -> None:
    """Mark a run as measured while other processes held ``share`` of the CPU."""
    meta = json.loads((run_dir / "run.json").read_text())
    host = {"others_share": share, "others_cores": 2 * share, "cpus": 2}
    meta["reference_kernel"] = {"version": 1, "start": {}, "end": {"host_cpu": host}}
    (run_dir / "run.json").write_text(json.dumps(meta))


def test_a_shared_machine_widens_the_threshold(tmp_path):
    # 1.8x slower while others held 60% of the CPU: 1 / (1 - 0.6) = 2.5 explains it, so the
    # band is 1.1 x 2.5 = 2.75 and no claim is made; 5% others (within T) change nothing
    a = write_run(tmp_path, "a", [record(median_s=0.010, seed=1)])
    b = write_run(tmp_path, "b", [record(median_s=0.018, seed=2)])
    shared(a, 0.05)
    assert ratio(compare(load_runs([a, b]))).verdict == "worse"
    shared(b, 0.6)
    result = compare(load_runs([a, b]))
    steps = ratio(result)
    assert steps.ci_lo > 1.5 and steps.verdict == "same"
    assert steps.noise.machine == pytest.approx(2.5) and steps.noise.band == pytest.approx(1.75)
    assert result.noise_rule == (
        "noise threshold 10% (default; no repeats); widened where the machine was shared or "
        "changed speed, up to x 2.5 (other processes used 60% of the CPU during run b)"
    )
    assert steps.noise.describe() == (
        "10% (default; no repeats) x 2.5 for the machine (other processes used 60% of the "
        "CPU during run b) = 175%"
    )
    # a shared machine cannot make a true 4x go away
    c = write_run(tmp_path, "c", [record(median_s=0.040, seed=3)])
    shared(c, 0.6)
    assert ratio(compare(load_runs([a, c]))).verdict == "worse"


def test_others_share_during_a_cell_widens_its_threshold():
    quiet = {"cell_id": "q", "metrics": {"others_cpu_share": {"value": 0.05}}}
    busy = {"cell_id": "b", "metrics": {"others_cpu_share": {"value": 0.2}}}
    assert noise_for([quiet]).machine == 1.0  # within T: the threshold already allows for it
    found = noise_for([quiet, busy])
    assert found.machine == pytest.approx(1.25) and "during cell b" in found.shared
    # a repeat measured under more contention than the merged record's first process
    repeated = {"cell_id": "r", "repeats": [{"status": "ok", "others_cpu_share": 0.5}]}
    assert noise_for([repeated]).machine == pytest.approx(2.0)


def kernel(run_dir, start_s: float, end_s: float) -> None:
    """Give a run reference-kernel timings: matmul medians ``start_s`` and ``end_s``."""
    meta = json.loads((run_dir / "run.json").read_text())
    timed = {m: {"matmul_s": [t * f for f in (0.99, 1.0, 1.02)], "copy_s": [0.01] * 3}
             for m, t in (("start", start_s), ("end", end_s))}  # fmt: skip
    meta["reference_kernel"] = {"version": 1, **timed}
    (run_dir / "run.json").write_text(json.dumps(meta))


def test_a_machine_that_changed_speed_between_runs_widens_the_threshold(tmp_path):
    # The A/A failure CI met: every cell 1.3x slower in the second run, each with a tight
    # interval. The kernel timed the machine 1.35x slower too: that explains it, no claim.
    a = write_run(tmp_path, "a", [record(median_s=0.010, seed=1)])
    b = write_run(tmp_path, "b", [record(median_s=0.013, seed=2)])
    kernel(a, 0.010, 0.010)
    kernel(b, 0.0135, 0.0135)
    steps = ratio(compare(load_runs([a, b])))
    assert steps.ci_lo > 1.2 and steps.verdict == "same"
    assert steps.noise.machine == pytest.approx(1.35)
    assert "matmul_s took 1.35x between runs a and b" in steps.noise.shared
    # the same kernel on both sides widens nothing, so the 1.3x is a claim again
    kernel(b, 0.010, 0.0101)
    steps = ratio(compare(load_runs([a, b])))
    assert steps.verdict == "worse" and steps.noise.machine == pytest.approx(1.01)
    # kernels of different versions are different workloads: not compared across runs
    kernel(b, 0.0135, 0.0135)
    meta = json.loads((b / "run.json").read_text())
    meta["reference_kernel"]["version"] = 2
    (b / "run.json").write_text(json.dumps(meta))
    assert ratio(compare(load_runs([a, b]))).noise.machine == 1.0


def test_a_machine_that_changed_speed_within_a_run_widens_the_threshold(tmp_path):
    a = write_run(tmp_path, "a", [record(median_s=0.010, seed=1)])
    b = write_run(tmp_path, "b", [record(median_s=0.013, seed=2)])
    kernel(a, 0.010, 0.010)
    kernel(b, 0.0075, 0.0105)  # sped up 1.4x during run b: its early cells ran slow
    steps = ratio(compare(load_runs([a, b])))
    assert steps.verdict == "same" and steps.noise.machine == pytest.approx(1.4)
    assert "from the start to the end of run b" in steps.noise.shared


def test_damaged_kernel_timings_are_ignored(tmp_path):
    meta = {"reference_kernel": {"start": {"matmul_s": ["x", None, -1.0, float("nan")]},
                                 "end": "damaged"}}  # fmt: skip
    assert noise_for([], runs=[("a", meta), ("b", {"reference_kernel": [1]})]).machine == 1.0


def test_summary_of_no_claims_names_the_default():
    assert summary([]) == "noise threshold 10% (default; no repeats)"


def test_cli_noise_option(tmp_path, capsys):
    a = write_run(tmp_path, "a", [record(median_s=0.010, spread=0.005, seed=1)])
    b = write_run(tmp_path, "b", [record(median_s=0.0103, spread=0.005, seed=2)])
    assert main(["compare", str(a), str(b), "--format", "json", "--noise", "0.01"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["noise_rule"] == "noise threshold 1% (set by --noise)"
    steps = doc["groups"][0]["metrics"][1]["ratios"][0]
    assert steps["verdict"] == "worse"
    assert steps["noise"] == {"threshold": 0.01, "source": "set", "machine": 1.0, "shared": ""}
    for bad in ("nan", "-0.1", "inf", "ten"):
        with pytest.raises(SystemExit) as exit_info:
            main(["compare", str(a), str(b), "--noise", bad])
        assert exit_info.value.code == 2
        assert "--noise: " in capsys.readouterr().err
    assert main(["recommend", str(b), "--noise", "0.05"]) == 0
    assert "noise threshold 5% (set by --noise)" in capsys.readouterr().out

"""Recommendation logic on constructed results where the right answer is known by design."""

from __future__ import annotations

import yaml

from bench.read.constraints import parse_all
from bench.read.recommend import recommend
from bench.read.runset import load_runs
from bench.report.recommend import explain, to_deploy_yaml
from tests.fixtures.runs import fleet, record, write_run


def one_run(tmp_path, records, **kw):
    return load_runs([write_run(tmp_path, "run", records, **kw)])


def only(rec):
    (choice,) = rec.choices
    return choice


def test_clear_winner_beyond_noise(tmp_path):
    # bs256 at 4 ms is 64 ex/ms; bs64 at 2 ms is 32 ex/ms: exactly 2x, far beyond 3% noise
    runset = one_run(
        tmp_path,
        [
            record(batch_size=64, median_s=0.002, seed=1),
            record(batch_size=256, median_s=0.004, seed=2),
        ],
    )
    choice = only(recommend(runset, "throughput"))
    assert choice.winner.key["batch_size"] == 256
    (runner,) = choice.runners_up
    assert abs(runner.margin.factor - 2.0) < 1e-9
    assert runner.margin.within_noise is False
    assert runner.margin.ci_lo > 1.8 and runner.margin.ci_hi < 2.2
    assert "beyond noise" in " ".join(explain(choice))


def test_tie_within_noise_is_said_so(tmp_path):
    # 1% apart with 5% step-time noise: the interval of the lead straddles 1
    runset = one_run(
        tmp_path,
        [
            record(framework="jax", median_s=0.0100, spread=0.05, seed=3),
            record(framework="tensorflow", median_s=0.0101, spread=0.05, seed=4),
        ],
    )
    choice = only(recommend(runset, "throughput"))
    assert choice.winner.key["framework"] == "jax"  # the point estimate still decides
    (runner,) = choice.runners_up
    assert runner.margin.within_noise is True
    assert runner.margin.ci_lo <= 1.0 <= runner.margin.ci_hi
    text = " ".join(explain(choice))
    assert "within noise" in text and "either will do" in text
    assert choice.tied == choice.runners_up


def test_failed_cells_are_never_chosen_and_are_counted(tmp_path):
    runset = one_run(
        tmp_path,
        [
            record(batch_size=64, median_s=0.004),
            record(
                batch_size=256, status="failed", reason="worker killed by SIGKILL", median_s=None
            ),
            record(batch_size=512, status="oom", reason="OOM", median_s=None),
            # invalid cells keep their numbers (here: 8x faster) but must never win
            record(batch_size=1024, status="invalid", reason="non-finite loss", median_s=0.004),
        ],
    )
    choice = only(recommend(runset, "throughput"))
    assert choice.winner.key["batch_size"] == 64
    assert choice.excluded == {"failed": 1, "oom": 1, "invalid": 1}
    assert choice.n_candidates == 1 and choice.n_cells == 4


def test_constraints_that_exclude_everything_name_the_closest_cells(tmp_path):
    runset = one_run(
        tmp_path,
        [
            record(batch_size=64, median_s=0.002, seed=5),  # p99 ~2.1 ms
            record(batch_size=256, median_s=0.006, seed=6),  # p99 ~6.3 ms
            record(batch_size=1024, median_s=0.020, seed=7),
        ],
    )
    rec = recommend(runset, "throughput", parse_all(["p99_ms<=1", "batch_size>=128"]))
    choice = only(rec)
    assert choice.winner is None and not rec.complete
    # bs256 breaks only the latency limit; bs64 breaks both: bs256 is closest
    assert [c.cell.key["batch_size"] for c in choice.closest] == [256, 1024, 64]
    (violation,) = choice.closest[0].violations
    assert violation.startswith("p99_ms = 6.") and violation.endswith("(needs <=1)")
    text = " ".join(explain(choice))
    assert text.startswith("No cell meets p99_ms<=1 and batch_size>=128.")
    assert "Closest: batch 256 on vm" in text  # only the axis that differs, named


def test_binding_constraint_is_named_with_the_cell_it_kept_out(tmp_path):
    rec = recommend(
        load_runs(fleet(tmp_path)), "throughput", parse_all(["p99_ms<=50", "workload==predict"])
    )
    choice = only(rec)
    assert (choice.winner.host.label, choice.winner.key["batch_size"]) == ("gpu-vm", 1024)
    (bind,) = choice.binding
    assert bind.constraint.text == "p99_ms<=50"
    assert (bind.cell.host.label, bind.cell.key["batch_size"]) == ("gpu-vm", 8192)
    assert "p99_ms = 61 (needs <=50)" in " ".join(explain(choice))


def test_runs_from_different_machines_are_distinct_candidates(tmp_path):
    # the same key on two hosts: two candidates, each named with its host
    slow = write_run(tmp_path, "a", [record(median_s=0.004, seed=1)], hostname="old-vm")
    fast = write_run(tmp_path, "b", [record(median_s=0.002, seed=2)], hostname="new-vm")
    choice = only(recommend(load_runs([slow, fast]), "throughput"))
    assert choice.winner.host.label == "new-vm"
    assert [r.cell.host.label for r in choice.runners_up] == ["old-vm"]
    assert "on new-vm" in explain(choice)[0]


def test_same_hostname_different_hardware_are_different_machines(tmp_path):
    a = write_run(tmp_path, "a", [record(median_s=0.004)], hostname="vm")
    b = write_run(tmp_path, "b", [record(median_s=0.002)], hostname="vm", cpu="AMD EPYC 9B14")
    runset = load_runs([a, b])
    assert [h.label for h in runset.hosts] == ["vm", "vm#2"]
    assert len(only(recommend(runset, "throughput")).runners_up) == 1


def test_latest_run_of_a_host_supersedes_its_earlier_record(tmp_path):
    old = write_run(
        tmp_path, "old", [record(median_s=0.001)], started_at="2025-01-01T00:00:00+00:00"
    )
    new = write_run(
        tmp_path, "new", [record(median_s=0.004)], started_at="2025-02-01T00:00:00+00:00"
    )
    rec = recommend(load_runs([new, old]), "throughput")  # argument order does not matter
    choice = only(rec)
    assert choice.winner.run_id == "new" and not choice.runners_up
    assert "1 earlier record" in rec.notes[0]


def test_each_objective_picks_its_own_winner(tmp_path):
    runset = load_runs(fleet(tmp_path))
    where = parse_all(["workload==predict"])
    winners = {
        goal: only(recommend(runset, goal, where)).winner
        for goal in ("throughput", "cost", "energy", "latency")
    }
    label = {g: (w.host.label, w.key["framework"], w.key["batch_size"]) for g, w in winners.items()}
    assert label == {
        "throughput": ("gpu-vm", "jax", 8192),  # 1.14M ex/s, never mind its p99
        "cost": ("tpu-vm", "jax", 8192),  # $1.20/h at 780k ex/s
        "energy": ("gpu-vm", "jax", 1024),  # TPUs report no energy: not candidates
        "latency": ("gpu-vm", "jax", 64),  # 0.3 ms steps
    }
    energy = only(recommend(runset, "energy", where))
    assert energy.excluded["without energy_kwh_per_million"] == 3


def test_memory_and_device_constraints(tmp_path):
    runset = load_runs(fleet(tmp_path))
    rec = recommend(
        runset, "throughput", parse_all(["workload==predict", "device!=gpu", "memory_gb<=8"])
    )
    assert only(rec).winner.key == {**only(rec).winner.key, "device": "tpu", "batch_size": 1024}


def test_deploy_yaml_holds_the_chosen_configuration(tmp_path):
    runset = load_runs(fleet(tmp_path))
    rec = recommend(runset, "cost", parse_all(["workload==predict"]))
    doc = yaml.safe_load(to_deploy_yaml(rec, runset))
    (deploy,) = doc["deployments"]
    assert doc["objective"] == "cost" and doc["constraints"] == ["workload==predict"]
    assert {k: deploy[k] for k in ("device", "framework", "batch_size", "precision", "input")} == {
        "device": "tpu",
        "framework": "jax",
        "batch_size": 8192,
        "precision": "float32",
        "input": "synthetic",
    }
    assert deploy["host"]["name"] == "tpu-vm"
    assert deploy["model_args"] == {"hidden": [64]}
    expected = deploy["expected"]
    # 8192 examples per 10.5 ms step
    assert abs(expected["examples_per_s"] - 8192 / 0.0105) < 1
    assert expected["cost_usd_per_million"] > 0 and expected["energy_kwh_per_million"] is None
    assert deploy["source"] == {
        "run": "2025-01-01-tpu",
        "cell": "jax-tpu-predict-bs8192-float32-synthetic",
    }


def test_no_cells_for_a_workload_is_incomplete(tmp_path):
    runset = one_run(tmp_path, [record()])
    rec = recommend(runset, "throughput", parse_all(["workload==train"]))
    assert rec.choices == () and not rec.complete
    assert rec.notes == ("no cell matches workload==train",)


def test_objective_nobody_measured(tmp_path):
    runset = one_run(tmp_path, [record()])
    choice = only(recommend(runset, "cost"))
    assert choice.winner is None and not choice.closest
    assert "cost_usd_per_million" in explain(choice)[0]

"""The input_bound rule on constructed records, as the runner applies it, and in the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from bench.inputs import verdict
from bench.report.terminal import cells_table
from bench.run.runner import Runner
from bench.runfolder import Run
from tests.fixtures.runs import steps

KEY = {"model": "m", "workload": "train", "framework": "jax", "device": "cpu", "batch_size": 32}


def record(input_: str, rate: float, wait: float | None = None, status: str = "ok", **key) -> dict:
    full = {**KEY, "input": input_, **key}
    cell_id = "-".join(str(v) for v in full.values())
    metrics: dict[str, Any] = {
        "examples_per_s": {"value": rate, "unit": "examples/s", "method": "m"}
    }
    if wait is not None:
        metrics["input_wait_fraction"] = {"value": wait, "unit": "fraction", "method": "m"}
    return {"cell_id": cell_id, "key": full, "status": status, "flags": [], "metrics": metrics}


def test_below_the_noise_band_of_the_synthetic_cell_is_input_bound():
    synthetic = record("synthetic", 1000.0)
    # Without step times the share decides against 1 / (1 + 10%) = 0.909: 890 / 1000 = 0.89 is
    # below, 910 / 1000 = 0.91 is not (a gap that a rerun can open on its own).
    slow = verdict.apply(record("tfdata", 890.0, wait=0.01, pipeline="naive"), [synthetic])
    assert slow["flags"] == ["input_bound"]
    assert slow["metrics"]["input_bound"]["share_of_synthetic"] == 0.89
    assert slow["metrics"]["input_bound"]["reference_cell"] == synthetic["cell_id"]
    assert slow["metrics"]["input_bound"]["noise_source"] == "default"
    fine = verdict.apply(record("numpy", 910.0, wait=0.5), [synthetic])
    assert fine["flags"] == [] and fine["metrics"]["input_bound"]["value"] is False
    assert fine["metrics"]["input_bound"]["unit"] == "bool"


def with_steps(rec: dict, median_s: float, spread: float = 0.01, repeats=()) -> dict:
    """``rec`` with 40 step times around ``median_s`` (its examples/s set to match) and,
    given ``repeats``, per-process medians as ``measure.repeats`` keeps them."""
    rec["samples"] = {"step_time_s": steps(median_s, n=40, spread=spread, seed=len(rec["cell_id"]))}
    rec["metrics"]["examples_per_s"]["value"] = rec["key"]["batch_size"] / median_s
    rec["repeats"] = [{"status": "ok", "median_step_s": m} for m in repeats]
    return rec


def test_with_step_times_the_whole_interval_must_lie_below_the_band():
    synthetic = with_steps(record("synthetic", 0.0), 0.010)
    # 20% slower (share 0.83) with 1% step noise: the interval is far below 0.909
    slow = verdict.apply(with_steps(record("tfdata", 0.0, pipeline="naive"), 0.012), [synthetic])
    assert slow["flags"] == ["input_bound"]
    lo, hi = slow["metrics"]["input_bound"]["share_ci95"]
    assert lo < 1 / 1.2 < hi < 1 / 1.1
    # 5% slower with a tight interval: real, but within what a rerun moves: not input-bound
    near = verdict.apply(with_steps(record("tfdata", 0.0, pipeline="naive"), 0.0105), [synthetic])
    assert near["flags"] == [] and near["metrics"]["input_bound"]["share_ci95"][1] < 1.0


def test_the_spread_between_repeated_processes_sets_the_threshold():
    # Processes of the synthetic cell differed by 2% (0.0102 / 0.0100): a 5% gap is beyond it.
    synthetic = with_steps(record("synthetic", 0.0), 0.010, repeats=(0.0100, 0.0102))
    cell = with_steps(record("tfdata", 0.0, pipeline="naive"), 0.0105, spread=0.005)
    judged = verdict.apply(cell, [synthetic])["metrics"]["input_bound"]
    assert judged["value"] is True
    assert judged["noise_source"] == "repeats" and abs(judged["noise_threshold"] - 0.02) < 1e-9


def test_the_reference_must_match_every_key_field_but_the_input():
    other_batch = record("synthetic", 1000.0, batch_size=64)
    other_framework = record("synthetic", 1000.0, framework="tensorflow")
    cell = record("tfdata", 500.0, wait=0.05, pipeline="tuned")
    judged = verdict.apply(cell, [other_batch, other_framework])
    # No matching synthetic cell: the wait rule decides (5% <= 10%: not input-bound).
    assert judged["metrics"]["input_bound"]["value"] is False
    assert "input wait fraction > 0.1" in judged["metrics"]["input_bound"]["method"]


def test_without_an_ok_synthetic_cell_the_wait_fraction_decides():
    failed = record("synthetic", 1000.0, status="failed")
    waits = verdict.apply(record("tfdata", 999.0, wait=0.11, pipeline="naive"), [failed])
    assert waits["flags"] == ["input_bound"]
    assert waits["metrics"]["input_bound"]["input_wait_fraction"] == 0.11
    assert verdict.apply(record("tfdata", 999.0, wait=0.10, pipeline="naive"), [])["flags"] == []


def test_synthetic_failed_and_unjudgeable_cells_are_left_alone():
    synthetic = record("synthetic", 1000.0)
    assert verdict.apply(synthetic, [synthetic]) is synthetic
    failed = record("tfdata", 10.0, status="failed", pipeline="naive")
    assert verdict.apply(failed, [synthetic]) is failed
    no_numbers = {**record("numpy", 1.0), "metrics": {}}
    assert verdict.apply(no_numbers, [synthetic]) is no_numbers


def test_a_flag_goes_away_when_the_verdict_changes():
    cell = verdict.apply(record("numpy", 500.0, wait=0.5), [])  # no reference yet: waits 50%
    assert cell["flags"] == ["input_bound"]
    cell["flags"].insert(0, "unstable")
    rejudged = verdict.apply(cell, [record("synthetic", 520.0)])  # 96% of synthetic
    assert rejudged["flags"] == ["unstable"]


class FakeWriter:
    def __init__(self) -> None:
        self.lines: list[dict] = []

    def append_cell(self, rec: dict) -> None:
        self.lines.append(rec)


def test_runner_flags_cells_whichever_of_the_pair_finishes_first():
    writer, events = FakeWriter(), []
    runner = Runner(None, writer, lambda kind, **data: events.append(kind), "python")  # type: ignore[arg-type]
    runner._finish(record("tfdata", 400.0, wait=0.05, pipeline="naive"))  # before its reference
    assert writer.lines[-1]["flags"] == []  # only 5% waiting: not input-bound yet
    runner._finish(record("synthetic", 1000.0))
    # The synthetic cell arrived: the tfdata cell is judged again and its record appended.
    assert [r["key"]["input"] for r in writer.lines] == ["tfdata", "synthetic", "tfdata"]
    assert writer.lines[-1]["flags"] == ["input_bound"]
    assert events == ["cell_done", "cell_done", "cell_updated"]
    runner._finish(record("numpy", 950.0, wait=0.2))  # after its reference: judged at once
    assert writer.lines[-1]["flags"] == [] and len(writer.lines) == 4


def test_a_resumed_run_judges_new_cells_against_stored_ones():
    synthetic = record("synthetic", 1000.0)
    writer = FakeWriter()
    runner = Runner(None, writer, lambda *a, **k: None, "python", {synthetic["cell_id"]: synthetic})  # type: ignore[arg-type]
    runner._finish(record("tfdata", 600.0, wait=0.3, pipeline="naive"))
    assert writer.lines[-1]["flags"] == ["input_bound"]


def test_the_results_table_shows_the_flag_and_the_input_columns():
    synthetic = record("synthetic", 1000.0)
    naive = verdict.apply(record("tfdata", 610.0, wait=0.38, pipeline="naive"), [synthetic])
    naive["metrics"]["pipeline_examples_per_s"] = {
        "value": 700.0,
        "unit": "examples/s",
        "method": "m",
    }
    run = Run(Path("r"), {"run_id": "r1"}, {r["cell_id"]: r for r in (synthetic, naive)})
    console = Console(width=200, record=True)
    console.print(cells_table(run))
    text = console.export_text()
    assert "input_bound (61% of synthetic)" in text
    assert "input wait" in text and "38%" in text and "pipeline ex/s" in text

"""Gate sides from run folders and baseline files: what is kept, thinned, pooled and refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.gate.baseline import (
    METRICS,
    BaselineError,
    dumps,
    load_side,
    save_baseline,
    thin,
)
from tests.fixtures.gate_runs import cell_id, lognormal, record, reference, write_run


def test_thinning_keeps_first_last_and_even_spacing():
    assert thin(list(range(5)), 10) == [0, 1, 2, 3, 4]
    # 11 samples to 6: positions 0, 2, 4, 6, 8, 10
    assert thin(list(range(11)), 6) == [0, 2, 4, 6, 8, 10]
    kept = thin(list(range(10_000)), 500)
    assert len(kept) == len(set(kept)) == 500 and kept[0] == 0 and kept[-1] == 9999


def test_a_run_folder_becomes_a_side_with_every_metric(tmp_path):
    times = lognormal(1, 40, 0.01)
    run = write_run(tmp_path / "r1", [record(times), record([], "predict", status="skipped",
                                                            reason="no GPU")])  # fmt: skip
    side = load_side([run])
    assert side.run_ids == ["r1"] and side.notes == ()
    cell = side.cells[cell_id()]
    steps, why = cell.samples(METRICS["step_time"])
    # 7 significant digits are kept
    assert steps == pytest.approx(times, rel=5e-7) and why == ""
    throughput, _ = cell.samples(METRICS["throughput"])
    assert throughput == pytest.approx([32 / t for t in times], rel=1e-6)
    assert cell.samples(METRICS["compile_time"]) == ([0.5], "")
    assert cell.samples(METRICS["p99_latency"])[0] == pytest.approx([np.percentile(times, 99)])
    assert cell.samples(METRICS["device_memory"]) == ([], "no memory_stats on cpu")
    skipped = side.cells[cell_id("predict")]
    assert skipped.samples(METRICS["step_time"]) == ([], "cell skipped: no GPU")


def test_repeats_give_one_value_per_process(tmp_path):
    parts = [lognormal(s, 20, 0.01) for s in range(3)]
    repeats = [{"status": "ok", "compile_s": 0.4 + i / 10, "peak_host_rss_bytes": 4e8,
                "peak_device_memory_bytes": None} for i in range(3)]  # fmt: skip
    pooled = [t for p in parts for t in p]
    run = write_run(tmp_path / "r", [record(pooled, repeats=repeats, by_repeat=parts)])
    cell = load_side([run]).cells[cell_id()]
    assert cell.processes == 3
    assert cell.samples(METRICS["compile_time"])[0] == pytest.approx([0.4, 0.5, 0.6])
    p99s = [np.percentile(p, 99) for p in parts]
    assert cell.samples(METRICS["p99_latency"])[0] == pytest.approx(p99s, rel=1e-6)
    assert len(cell.samples(METRICS["step_time"])[0]) == 60


def test_several_runs_pool_per_cell(tmp_path):
    r1 = write_run(tmp_path / "r1", [record(lognormal(1, 20, 0.01), compile_s=0.5)])
    r2 = write_run(tmp_path / "r2", [record(lognormal(2, 20, 0.01), compile_s=0.7),
                                     record(lognormal(3, 20, 0.02), "predict")])  # fmt: skip
    side = load_side([r1, r2])
    assert side.run_ids == ["r1", "r2"] and side.label == f"{r1}, {r2}"
    cell = side.cells[cell_id()]
    assert cell.processes == 2 and len(cell.samples(METRICS["step_time"])[0]) == 40
    assert cell.samples(METRICS["compile_time"])[0] == [0.5, 0.7]
    assert side.cells[cell_id("predict")].processes == 1
    with pytest.raises(BaselineError, match="run r1 is given more than once"):
        load_side([r1, r1])


def test_a_cell_failing_in_one_run_keeps_the_ok_runs_data(tmp_path):
    r1 = write_run(tmp_path / "r1", [record(lognormal(1, 20, 0.01))])
    r2 = write_run(tmp_path / "r2", [record([], status="oom", reason="out of memory")])
    cell = load_side([r1, r2]).cells[cell_id()]
    assert cell.status == "ok" and cell.processes == 1
    assert "oom in a run: out of memory" in cell.reason


def test_saved_baseline_reads_back_identically_and_stays_small(tmp_path):
    many = lognormal(1, 20_000, 1e-4)
    run = write_run(tmp_path / "r", [record(many)])
    side = load_side([run])
    path = save_baseline(side, tmp_path / "baselines" / "b.json")
    again = load_side([path])
    assert again.document == side.document
    assert (
        again.cells[cell_id()].samples(METRICS["step_time"])[0]
        == side.cells[cell_id()].samples(METRICS["step_time"])[0]
    )
    # 20,000 samples thinned to 500, each written in about 12 bytes
    assert len(side.cells[cell_id()].samples(METRICS["step_time"])[0]) == 500
    assert path.stat().st_size < 15_000
    assert '"samples": [' in path.read_text()  # one line per list of numbers


def test_reference_kernel_and_fingerprint_travel_with_the_baseline(tmp_path):
    run = write_run(tmp_path / "r", [record(lognormal(1, 20, 0.01))], ref=reference(3, others=0.2))
    saved = save_baseline(load_side([run]), tmp_path / "b.json")
    (run_doc,) = load_side([saved]).runs
    assert run_doc.fingerprint["cpu_model"] == "Test CPU"
    assert run_doc.reference_kernel is not None
    assert run_doc.reference_kernel.end is not None
    assert run_doc.reference_kernel.end.host_cpu is not None
    assert run_doc.reference_kernel.end.host_cpu.others_share == 0.2


def test_an_interrupted_run_is_noted(tmp_path):
    run = write_run(tmp_path / "r", [record(lognormal(1, 20, 0.01))], status="interrupted")
    assert "run r is interrupted, with 1 of 1 cells recorded" in load_side([run]).notes[0]


def test_bad_inputs_raise_baseline_errors_naming_the_file(tmp_path):
    with pytest.raises(BaselineError, match="no such run folder or baseline file"):
        load_side([tmp_path / "missing"])
    with pytest.raises(BaselineError, match="not a bench run folder"):
        load_side([tmp_path])
    text = tmp_path / "x.json"
    text.write_text("[1, 2")
    with pytest.raises(BaselineError, match=r"x.json:1: not valid JSON"):
        load_side([text])
    bad_run = write_run(tmp_path / "bad", [record(lognormal(1, 20, 0.01))])
    rec = json.loads((bad_run / "cells.jsonl").read_text())
    rec["samples"]["step_time_s"] = "fast"
    (bad_run / "cells.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(BaselineError, match=r"samples\.step_time_s: expected a list of numbers"):
        load_side([bad_run])
    with pytest.raises(BaselineError, match="no run folder or baseline file given"):
        load_side([])


def test_dumps_puts_number_lists_on_one_line():
    text = dumps({"a": [1.5, 2.0, 3e-05], "b": {"c": ["x", "y"]}})
    assert '"a": [1.5, 2.0, 3e-05]' in text
    assert json.loads(text) == {"a": [1.5, 2.0, 3e-05], "b": {"c": ["x", "y"]}}


def test_a_cell_ok_only_in_a_later_run_is_ok_and_says_where_it_was_not(tmp_path):
    r1 = write_run(tmp_path / "r1", [record([], status="timeout", reason="no result")])
    r2 = write_run(tmp_path / "r2", [record(lognormal(1, 20, 0.01))])
    cell = load_side([r1, r2]).cells[cell_id()]
    assert (cell.status, cell.reason, cell.processes) == ("ok", "timeout in a run: no result", 1)
    both_bad = load_side([r1, write_run(tmp_path / "r3", [record([], status="oom")])])
    assert both_bad.cells[cell_id()].status == "oom"

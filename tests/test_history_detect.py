"""The history's change detection: the first stage on series made here, pinning with stand-in
comparisons, the gate-rule judgement on pooled runs, and suspects kept in the store."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench.cli import main
from bench.gate.baseline import side_from_documents
from bench.history.detect import suspects
from bench.history.judge import CLEARED, CONFIRMED, INCONCLUSIVE, Judgement, judge
from bench.history.pinning import pin
from tests.history_helpers import commit, run_at


def _noisy(n: int, seed: int, sd: float = 0.01) -> np.ndarray:
    return np.exp(np.random.default_rng(seed).normal(0, sd, n))


def test_a_step_is_suspected_at_its_commit():
    x = _noisy(200, 0)
    x[120:] *= 1.10  # 10% slower from index 120 on, with 1% noise
    (found,) = suspects(x)
    assert found.index == 120 and found.lo <= 120 <= found.hi
    assert found.ratio == pytest.approx(1.10, rel=0.01)
    assert found.direction == 1


def test_spikes_and_quiet_series_are_not_suspected():
    x = _noisy(300, 1)
    x[50] *= 3.0  # an outlier
    x[150] *= 1.3  # a one-commit spike
    x[200:202] *= 1.2  # a two-commit spike
    x[-1] *= 2.0  # an outlier on the last commit
    assert suspects(x) == []


def test_small_changes_are_not_worth_a_rerun():
    x = _noisy(400, 2, sd=0.001)
    x[200:] *= 1.01  # found, but below the 2% worth re-running
    assert suspects(x) == []
    assert [s.index for s in suspects(x, min_effect=0.005)] == [200]


def test_same_input_same_output():
    x = _noisy(3000, 3, sd=0.03)
    x[1000:] *= 1.05
    assert suspects(x) == suspects(x.copy())


def test_a_wide_interval_weighs_less():
    x = _noisy(200, 4)
    x[100:103] *= 1.08  # three points off, with wide intervals: runs that were noisy
    narrow = [(v * 0.99, v * 1.01) for v in x]
    wide = list(narrow)
    for i in range(100, 103):
        wide[i] = (x[i] * 0.8, x[i] * 1.25)
    assert suspects(x, narrow) != [] and suspects(x, wide) == []


def _judged(changed: bool, ratio: float = 1.0) -> Judgement:
    return Judgement(CONFIRMED if changed else CLEARED, "", ratio, None, None, "")


@pytest.mark.parametrize("truth", [3, 7, 10, 12, 14])
def test_pinning_finds_the_commit_in_the_window(truth):
    levels = [1.0 if i < truth else 1.1 for i in range(20)]

    def compare(i: int, j: int) -> Judgement:
        return _judged(levels[i] != levels[j], levels[j] / levels[i])

    result = pin(10, 2, 15, compare)
    if truth <= 15:
        assert (result.status, result.index) == (CONFIRMED, truth)
    # one comparison when the suspect was right; else the window's ends and a bisection
    assert len(result.comparisons) <= (1 if truth == 10 else 2 + 2 * math.ceil(math.log2(14)))


def test_pinning_clears_a_window_without_a_change():
    result = pin(5, 3, 8, lambda i, j: _judged(False))
    assert result.status == CLEARED and result.index is None
    assert [(i, j) for i, j, _ in result.comparisons] == [(4, 5), (2, 8)]


def _doc(run_id: str, median: float, seed: int) -> dict:
    samples = [float(v) for v in median * _noisy(40, seed, 0.02)]
    return {
        "format": "bench-baseline", "format_version": 1, "bench_version": "t", "max_samples": 500,
        "runs": [{"run_id": run_id, "scenario": {"name": "t", "sha256": "0"},
                  "fingerprint": {"cpu_model": "t"}}],
        "cells": {"c": {"key": {"batch_size": 8}, "status": "ok", "processes": 1,
                        "quantities": {"step_time_s": {"unit": "s", "samples": samples}},
                        "process_medians": [float(np.median(samples))]}},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("after", "status", "verdict"),
    [(2.0, CONFIRMED, "REGRESSED"), (0.5, CONFIRMED, "IMPROVED"), (1.0, CLEARED, "NO_CHANGE")],
)
def test_judgement_is_the_gates_rule_both_ways(after, status, verdict):
    before = side_from_documents([_doc(f"a{i}", 0.01, i) for i in range(2)], "before")
    later = side_from_documents([_doc(f"b{i}", 0.01 * after, 10 + i) for i in range(2)], "after")
    judged = judge(before, later, "c", threshold=0.1)
    assert (judged.status, judged.verdict) == (status, verdict)
    assert judged.ratio == pytest.approx(after, rel=0.05)


def test_judgement_of_too_few_samples_is_inconclusive():
    few = _doc("a", 0.01, 0)
    few["cells"]["c"]["quantities"]["step_time_s"]["samples"] = [0.01] * 3
    judged = judge(
        side_from_documents([few], "a"),
        side_from_documents([_doc("b", 0.02, 1)], "b"),
        "c",
        threshold=0.1,
    )
    assert judged.status == INCONCLUSIVE


def test_changes_records_each_suspect_once(history_db, tmp_path, capsys):
    runs = [run_at(tmp_path / "res", i, 0.01 if i < 20 else 0.013) for i in range(40)]
    assert main(["history", "add", *map(str, runs), "--db", history_db, "--branch", "main"]) == 0
    capsys.readouterr()
    args = ["history", "changes", "--db", history_db, "--suspects", "--format", "json"]
    assert main(args) == 0
    (found,) = json.loads(capsys.readouterr().out)
    assert (found["status"], found["cell_id"], found["metric"]) == (
        "suspect", "jax-cpu-train-bs32-float32-synthetic", "step_time",
    )  # fmt: skip
    assert (found["before_commit"], found["after_commit"]) == (commit(19), commit(20))
    assert commit(19) in found["detail"]["window"] and commit(20) in found["detail"]["window"]
    # found again, recorded once; and none is reported until a re-run confirms it
    assert main(args) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    assert main(["history", "changes", "--db", history_db]) == 0
    assert "0 confirmed change(s); 0 new suspect(s), 1 awaiting" in capsys.readouterr().out


def test_trend_page_draws_each_series_and_its_suspect(tmp_path, capsys):
    db = str(tmp_path / "h.sqlite")
    runs = [run_at(tmp_path / "res", i, 0.01 if i < 20 else 0.013) for i in range(40)]
    main(["history", "add", *map(str, runs), "--db", db, "--branch", "main"])
    main(["history", "changes", "--db", db])
    assert main(["history", "report", "--db", db, "-o", str(tmp_path / "t.html")]) == 0
    html = (tmp_path / "t.html").read_text()
    # the train and the predict cell's step time; the suspect labelled with the first
    # stage's ratio (of the medians of lognormal samples: about 1.3)
    assert html.count("<svg") == 2
    assert "x1.306 (suspect)" in html and 'stroke-dasharray="4 4"' in html
    # one interval bar and one point per commit and series
    assert html.count("<circle") == 2 * 40


def test_a_pair_given_by_hand_is_listed_as_such(tmp_path, capsys):
    from bench.history import changes
    from bench.history.store import Store

    store = Store.open(f"sqlite:///{tmp_path / 'h.sqlite'}", write=True)
    series = changes.Series("main", "c", "step_time", ["a" * 40, "b" * 40], [], [])
    assert changes.record_suspect(store, series, 1, (1, 1), None)
    assert not changes.record_suspect(store, series, 1, (1, 1), None)  # known already
    store.close()
    db = str(tmp_path / "h.sqlite")
    assert main(["history", "changes", "--no-detect", "--suspects", "--db", db]) == 0
    assert "suspect      c step_time: aaaaaaaaaaaa..bbbbbbbbbbbb (given by hand)" in (
        capsys.readouterr().out
    )
    assert (
        main(["history", "changes", "--no-detect", "--suspects", "--db", db, "--format", "json"])
        == 0
    )
    (row,) = json.loads(capsys.readouterr().out)
    assert row["detail"]["ratio"] is None and row["detail"]["window"] == ["a" * 40, "b" * 40]

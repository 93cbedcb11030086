"""``bench gate --baseline history:main``: the gate against the branch's runs since each cell's
last confirmed change, instead of one baseline run."""

from __future__ import annotations

import pytest

from bench.cli import main
from bench.history import changes
from bench.history.judge import CONFIRMED, Judgement
from bench.history.store import Store
from tests.history_helpers import commit, run_at


@pytest.fixture
def history(tmp_path, capsys):
    """12 runs of main: 10 ms until commit 8, 13 ms from it on; the change confirmed."""
    db = str(tmp_path / "history.sqlite")
    runs = [run_at(tmp_path / "res", i, 0.010 if i < 8 else 0.013) for i in range(12)]
    assert main(["history", "add", *map(str, runs), "--db", db, "--branch", "main"]) == 0
    store = Store.open(f"sqlite:///{db}", write=True)
    cell = "jax-cpu-train-bs32-float32-synthetic"
    series = changes.Series("main", cell, "step_time", [commit(i) for i in range(12)], [], [])
    changes.record_suspect(store, series, 8, (8, 8), 1.3)
    (suspect,) = changes.rows(store, "main", "suspect")
    judged = Judgement(CONFIRMED, "REGRESSED", 1.3, 1.25, 1.35, "")
    changes.record_judgement(store, suspect, CONFIRMED, (commit(7), commit(8)), judged, [])
    store.close()
    capsys.readouterr()
    return db


def _gate(db: str, candidate, capsys) -> tuple[int, str]:
    code = main([
        "gate", "--baseline", "history:main", "--candidate", str(candidate), "--db", db,
        "--metric", "step_time", "--format", "json",
    ])  # fmt: skip
    return code, capsys.readouterr().out


def test_a_candidate_like_main_since_its_change_passes(history, tmp_path, capsys):
    # 13 ms: like the runs since the confirmed change, 1.3x the runs before it
    code, out = _gate(history, run_at(tmp_path / "cand", 50, 0.013, seed=99), capsys)
    assert code == 0, out
    assert '"NO_CHANGE"' in out and '"REGRESSED"' not in out


def test_a_slower_candidate_fails(history, tmp_path, capsys):
    code, out = _gate(history, run_at(tmp_path / "cand", 50, 0.020, seed=99), capsys)
    assert code == 1, out
    assert '"REGRESSED"' in out


def test_the_candidate_is_not_its_own_baseline(history, tmp_path, capsys):
    candidate = run_at(tmp_path / "cand", 50, 0.020, seed=99)
    assert main(["history", "add", str(candidate), "--db", history, "--branch", "main"]) == 0
    capsys.readouterr()
    code, out = _gate(history, candidate, capsys)
    assert code == 1, out


def test_unknown_branch_is_one_line(history, tmp_path, capsys):
    code = main([
        "gate", "--baseline", "history:nope", "--candidate", str(run_at(tmp_path / "c", 1)),
        "--db", history,
    ])  # fmt: skip
    text = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in text and "no runs of branch 'nope'" in text

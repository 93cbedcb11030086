"""``bench history confirm`` on a real repository made here: three commits of a model file,
the middle one doubling the model's depth. The confirmation re-runs the cell at the commits of
each suspect, interleaved, in git worktrees, and judges them by the gate's rule: the change is
confirmed at the middle commit, and a suspect planted between the two identical commits is
cleared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main

MODEL = """
from bench.models import mlp

DEPTH = {depth}


def _built(args):
    return args.model_copy(update={{"hidden": [h for h in args.hidden for _ in range(DEPTH)]}})


class Model:
    DESCRIPTION = "an MLP whose depth this repository's history changes"
    Args = mlp.Args

    @staticmethod
    def data_spec(args):
        return mlp.data_spec(_built(args))

    @staticmethod
    def flops_per_example(args, workload):
        return mlp.flops_per_example(_built(args), workload)

    @staticmethod
    def build_tf(args):
        return mlp.build_tf(_built(args))

    @staticmethod
    def build_jax(args, dtype):
        return mlp.build_jax(_built(args), dtype)
"""

SCENARIO = """\
name: depth
model: "mymodel:Model"
model_args: {hidden: [512, 512]}
framework: jax
device: cpu
matrix:
  workload: [train]
  batch_size: [128]
measure: {warmup_steps: 3, min_steps: 20, min_seconds: 0.5, max_seconds: 1.0,
          target_rel_ci: 0.05, timeout_s: 120}
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _repo(root: Path) -> tuple[Path, list[str]]:
    repo = root / "project"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    (repo / "s.yaml").write_text(SCENARIO)
    commits = []
    for depth, note in ((1, "first"), (2, "twice as deep"), (2, "docs only")):
        (repo / "mymodel.py").write_text(MODEL.format(depth=depth))
        (repo / "README").write_text(note + "\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", note)
        commits.append(_git(repo, "rev-parse", "HEAD"))
    return repo, commits


def _cell(repo: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "run", "s.yaml", "--dry-run"],
        cwd=repo, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.split()[0]


# Real runs judged by their spread: on the shared 2-core VM, beside other jobs at load
# averages of 4-13, it passed 2 of 4 times; in the failures the runs of one commit varied
# 2.4-5.2x, and the gate's rule then confirms nothing. Hence timing: .ci/timing-checks runs it
# and counts (2-5 minutes a run).
@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.timing
def test_confirm_pins_the_deeper_model_and_clears_identical_commits(tmp_path, capsys):
    repo, (c1, c2, c3) = _repo(tmp_path)
    cell = _cell(repo)
    db = str(tmp_path / "history.sqlite")
    # The threshold: this 2-core VM moves a cell 1.2-1.4x between processes (docs/gate.md),
    # and a suspect is cleared only when that spread stays within the threshold; the deeper
    # model is about 2x slower, so 50% tells the two apart.
    common = ["--repo", str(repo), "--scenario", "s.yaml", "--cell", cell, "--db", db,
              "--rounds", "2", "--threshold", "0.5"]  # fmt: skip
    assert main(["history", "confirm", "--commits", f"{c1}..{c2}", *common]) == 0
    said = capsys.readouterr().out
    assert said.startswith("confirmed"), said
    assert f"{c1[:12]}..{c2[:12]}" in said

    assert main(["history", "confirm", "--commits", f"{c2}..{c3}", *common]) == 0
    said = capsys.readouterr().out
    assert said.startswith("cleared"), said

    assert main(["history", "changes", "--no-detect", "--db", db, "--format", "json"]) == 0
    import json

    listed = json.loads(capsys.readouterr().out)
    assert [(r["before_commit"], r["after_commit"]) for r in listed] == [(c1, c2)]
    assert listed[0]["ratio"] > 1.5 and listed[0]["ci_lo"] > 1.5
    # the worktrees are gone and the repository's own tree untouched
    assert _git(repo, "worktree", "list").count("\n") == 0
    assert _git(repo, "status", "--porcelain") == ""


def test_a_commit_the_repository_lacks_is_one_line(tmp_path, capsys):
    repo = tmp_path / "r"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "s.yaml").write_text(SCENARIO)
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-q", "-m", "one")
    code = main([
        "history", "confirm", "--repo", str(repo), "--scenario", "s.yaml",
        "--commits", "deadbeef..cafebabe", "--cell", "c", "--db", str(tmp_path / "h.sqlite"),
    ])  # fmt: skip
    text = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in text, text
    assert "cannot check out commit deadbeef" in text
    assert _git(repo, "worktree", "list").count("\n") == 0


def test_run_history_adds_the_finished_run(tmp_path, capsys):
    import argparse

    from bench.cli.run import _add_to_history
    from tests.history_helpers import run_at

    run = run_at(tmp_path / "res", 3)
    args = argparse.Namespace(
        db=str(tmp_path / "h.sqlite"), results_dir=str(tmp_path), branch="main"
    )
    # the run's own exit code is kept when the history takes it, and 2 when it cannot
    assert _add_to_history(args, run, 1) == 1
    said = capsys.readouterr().out
    assert "history: " in said and " points at c003" in said
    (tmp_path / "bad.sqlite").write_text("not a database\n" * 10)
    args.db = str(tmp_path / "bad.sqlite")
    assert _add_to_history(args, run, 0) == 2


def test_a_session_interleaves_and_pins_through_the_window(tmp_path):
    """The second stage's own loop on stand-in runs: commits c3.. are 1.5x slower; the suspect
    sits at c5 with the window c1..c7; the runs alternate A B A B and the pin lands on c3."""
    from bench.history.confirm import session
    from bench.history.pinning import pin
    from tests.fixtures.gate_runs import cell_id
    from tests.history_helpers import run_at

    made: list[str] = []

    def run(commit: str) -> Path:
        made.append(commit)
        i = int(commit[1:])
        median = 0.015 if i >= 3 else 0.010
        return run_at(
            tmp_path / f"r{len(made)}", i, median, seed=len(made), run_id=f"run-{len(made)}"
        )

    window = [f"c{i}" for i in range(8)]
    compare = session(run, "step_time", cell_id(), rounds=2, threshold=0.1)
    result = pin(5, 1, 7, lambda i, j: compare(window[i], window[j]))
    assert (result.status, result.index) == ("confirmed", 3)
    # the first comparison, c4 against c5: A B A B, nothing there (both 1.5x)
    assert made[:4] == ["c4", "c5", "c4", "c5"]
    assert result.comparisons[0][:2] == (4, 5) and result.judgement.ratio > 1.4

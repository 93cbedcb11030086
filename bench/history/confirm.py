"""The second stage: re-run the commits around a suspect, interleaved, and judge them.

``bench history confirm --repo R --scenario S`` takes each suspect of the history, checks out
the commits it needs from the user's repository R as git worktrees (never touching R's own
working tree), and runs the suspect's cell of scenario S (a path inside R) at each of two
commits in turn, A B A B ... (``rounds`` runs of each), each run a fresh ``bench run --only
CELL`` in the commit's worktree with the worktree first on ``PYTHONPATH``, so the model and
scenario are the commit's own. Interleaving puts the machine's slow drift on both sides
alike. The runs are judged by the gate's rule (``bench.history.judge``); when the gate says
INCONCLUSIVE (more samples would tell) as many runs again are added once. Pinning
(``bench.history.pinning``) decides which pairs of commits to compare.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.gate.baseline import BaselineError, load_side
from bench.history.judge import INCONCLUSIVE, Judgement, judge
from bench.history.pinning import Pinned, pin
from bench.history.store import HistoryError

RUN_TIMEOUT_S = 1800
MIN_THRESHOLD = 0.01
DEFAULT_THRESHOLD = 0.05  # for a pair given by hand, with no suspected size


class Checkouts:
    """Detached git worktrees of the user's repository, one per commit, removed at the end."""

    def __init__(self, repo: Path, root: Path):
        self.repo, self.root = repo, root
        self.made: dict[str, Path] = {}

    def get(self, commit: str) -> Path:
        if commit not in self.made:
            path = self.root / f"wt-{commit[:12]}"
            done = subprocess.run(
                ["git", "-C", str(self.repo), "worktree", "add", "--detach", str(path), commit],
                capture_output=True, text=True, check=False, timeout=300,
            )  # fmt: skip
            if done.returncode != 0:
                why = (done.stderr.strip().splitlines() or ["git failed"])[-1]
                raise HistoryError(f"{self.repo}: cannot check out commit {commit} ({why})")
            self.made[commit] = path
        return self.made[commit]

    def close(self) -> None:
        for path in self.made.values():
            subprocess.run(
                ["git", "-C", str(self.repo), "worktree", "remove", "--force", str(path)],
                capture_output=True, check=False, timeout=300,
            )  # fmt: skip
        subprocess.run(
            ["git", "-C", str(self.repo), "worktree", "prune"], capture_output=True, check=False
        )


class Runner:
    """Runs one cell of the scenario at a commit; each run a new run folder."""

    def __init__(self, checkouts: Checkouts, scenario: str, cell_id: str, out: Path):
        self.checkouts, self.scenario, self.cell_id, self.out = checkouts, scenario, cell_id, out
        self.runs = 0

    def __call__(self, commit: str) -> Path:
        tree = self.checkouts.get(commit)
        scenario = tree / self.scenario
        if not scenario.is_file():
            raise HistoryError(f"{scenario}: no scenario file at commit {commit[:12]}")
        self.runs += 1
        results = self.out / f"{self.runs:03d}-{commit[:12]}"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
        argv = [sys.executable, "-m", "bench", "run", str(scenario), "--only", self.cell_id,
                "--results-dir", str(results)]  # fmt: skip
        done = subprocess.run(
            argv, cwd=tree, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
            check=False,
        )  # fmt: skip
        folders = sorted(p for p in results.glob("*") if (p / "run.json").exists())
        if done.returncode not in (0, 1) or not folders:
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise HistoryError(
                f"bench run of {self.cell_id} at commit {commit[:12]} exited {done.returncode}: {last}"
            )
        return folders[-1]


def session(run: Callable[[str], Path], metric: str, cell_id: str, rounds: int, threshold: float):
    """compare(before, after): ``rounds`` interleaved runs of each commit, as many again once
    if the gate says INCONCLUSIVE; judged by the gate's rule."""

    def compare(before: str, after: str) -> Judgement:
        sides: dict[str, list[Path]] = {before: [], after: []}
        judged: Judgement | None = None
        for _ in range(2):
            for _ in range(rounds):
                for commit in (before, after):  # A B A B ...
                    sides[commit].append(run(commit))
            try:
                a = load_side(sides[before])
                b = load_side(sides[after])
            except BaselineError as exc:
                raise HistoryError(str(exc)) from None
            judged = judge(a, b, cell_id, metric, threshold=threshold)
            if judged.status != INCONCLUSIVE:
                break
        assert judged is not None
        return judged

    return compare


def threshold_for(suspect: dict[str, Any], given: float | None) -> float:
    """Half the suspected change (a change half as large is worth telling apart from none),
    at least 1%; ``given`` where the user set one."""
    if given is not None:
        return given
    ratio = suspect["detail"].get("ratio")
    if not ratio or ratio <= 0:
        return DEFAULT_THRESHOLD
    return max(abs(math.log(ratio)) / 2, MIN_THRESHOLD)


def confirm_one(
    suspect: dict[str, Any],
    repo: Path,
    scenario: str,
    rounds: int,
    threshold: float | None,
    keep: Path | None = None,
) -> tuple[Pinned, list[str], int]:
    """Pin one suspect by re-runs; (the outcome, the window's commits, bench runs made)."""
    window: list[str] = suspect["detail"]["window"]
    at = window.index(suspect["after_commit"])
    try:
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="bench-confirm-", dir=keep))
    except OSError as exc:
        raise HistoryError(f"{keep}: cannot make a folder for the runs ({exc})") from None
    checkouts = Checkouts(repo, work)
    runner = Runner(checkouts, scenario, suspect["cell_id"], work / "runs")
    compare = session(
        runner, suspect["metric"], suspect["cell_id"], rounds, threshold_for(suspect, threshold)
    )
    try:
        pinned = pin(at, 1, len(window) - 1, lambda i, j: compare(window[i], window[j]))
    finally:
        checkouts.close()
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return pinned, window, runner.runs

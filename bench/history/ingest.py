"""Adding runs to the history: ``bench history add RUN...``, ``import RESULTS_DIR`` and
``bench run --history``.

A run is placed at its commit (``environment.git.commit`` in run.json, or ``--commit``) on a
branch, in the order of the commit's time as git tells it in the repository at hand, else of
the run's start. Adding is idempotent: a run already in the history adds nothing.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.history.points import rows_of
from bench.history.store import HistoryError, Store
from bench.runfolder import ResultsError, load_run, utc_now


@dataclass(frozen=True)
class Added:
    path: Path
    run_id: str
    commit: str
    added: bool  # False: the run was in the history already
    points: int


def git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def current_branch(repo: Path = Path()) -> str:
    """The branch to file runs under: CI's own name for it where set, else git's."""
    for name in ("BENCH_BRANCH", "GITHUB_REF_NAME", "CI_COMMIT_BRANCH"):
        if os.environ.get(name):
            return os.environ[name]
    found = git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    return found if found and found != "HEAD" else "main"


def add_paths(
    store: Store,
    paths: Iterable[str | Path],
    branch: str,
    commit: str | None = None,
    repo: Path = Path(),
) -> list[Added]:
    """Add each run folder; HistoryError names the first that cannot be added (the runs
    before it stay added: each run is its own transaction)."""
    done = []
    for path in map(Path, paths):
        try:
            run = load_run(path)
        except ResultsError as exc:
            raise HistoryError(str(exc)) from None
        git_meta = (run.meta.get("environment") or {}).get("git") or {}
        at = commit or git_meta.get("commit")
        if not at:
            raise HistoryError(
                f"{path}/run.json: environment.git.commit: no commit recorded (the run was not "
                "made in a git checkout); give one with --commit"
            )
        when = git(repo, "show", "-s", "--format=%cI", str(at)) or ""
        rows = rows_of(run, commit=str(at), branch=branch, commit_time=when, added_at=utc_now())
        added = store.add(rows)
        done.append(Added(path, run.run_id, str(at), added, len(rows.points)))
    return done


def run_folders(results_dir: str | Path) -> list[Path]:
    """The run folders directly under ``results_dir``, oldest first (their names sort so)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise HistoryError(f"{root}: no such results folder")
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "run.json").exists())

"""Run folders at commits, and a history database on SQLite or a real PostgreSQL server, for the
history's tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tests.fixtures.gate_runs import ENV, lognormal, record, write_run


def commit(i: int) -> str:
    return f"c{i:03d}" + "0" * 36


def run_at(root: Path, i: int, median: float = 0.01, *, seed: int | None = None, **kw: Any) -> Path:
    """A run of two cells at commit ``commit(i)`` whose train step takes ``median`` seconds."""
    env = copy.deepcopy(ENV)
    env["git"] = {"commit": commit(i), "dirty": False}
    s = i if seed is None else seed
    records = [
        record(lognormal(s, 40, median)),
        record(lognormal(s + 1000, 40, 0.004), workload="predict"),
    ]
    folder = write_run(root / f"run{i:03d}", records, env=env, **kw)
    meta = folder / "run.json"
    # runs of successive commits start in order, a minute apart
    meta.write_text(
        meta.read_text().replace("2026-01-01T00:00:00", f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00")
    )
    return folder

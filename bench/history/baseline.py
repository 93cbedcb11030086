"""``bench gate --baseline history:BRANCH``: the gate's baseline from the history.

Per cell, the runs of the branch since the cell's last confirmed change (the change's own
commit on), the latest ``RUNS`` of them, pooled as the gate pools several baseline runs: their
samples, and their per-run medians as the spread between processes, which widens the gate's
threshold to the run-to-run noise the branch has shown. The documents are the gate's own, kept
when each run was added, so the verdicts are the ones the gate gives against those run folders.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from bench.gate.baseline import FORMAT, FORMAT_VERSION, MAX_SAMPLES, Side, side_from_documents
from bench.history.store import HistoryError, Store

PREFIX = "history:"
RUNS = 10


def is_history(spec: str) -> bool:
    return spec.startswith(PREFIX)


def _since(store: Store, branch: str) -> dict[str, list[str]]:
    """Per cell, the commits at which it changed (confirmed), any metric."""
    from bench.history.changes import rows

    found: dict[str, list[str]] = {}
    for row in rows(store, branch, "confirmed"):
        found.setdefault(row["cell_id"], []).append(row["after_commit"])
    return found


def side(store: Store, spec: str, exclude: Iterable[str] = (), runs: int = RUNS) -> Side:
    """The baseline side named by ``spec`` (``history:main``); runs in ``exclude`` (the
    candidate's) are left out."""
    from sqlalchemy import select

    from bench.history.schema import cells
    from bench.history.schema import runs as runs_table

    branch = spec[len(PREFIX) :] or "main"
    skip = set(exclude)
    with store.reading() as conn:
        run_rows = [
            dict(r._mapping)
            for r in conn.execute(
                select(runs_table.c.run_id, runs_table.c.commit, runs_table.c.gate)
                .where(runs_table.c.branch == branch)
                .order_by(runs_table.c.commit_time, runs_table.c.started_at)
            )
        ]
        cell_rows = [
            dict(r._mapping)
            for r in conn.execute(
                select(cells.c.run_id, cells.c.cell_id, cells.c.gate)
                .join(runs_table, runs_table.c.run_id == cells.c.run_id)
                .where(runs_table.c.branch == branch)
            )
        ]
    run_rows = [r for r in run_rows if r["run_id"] not in skip]
    if not run_rows:
        raise HistoryError(f"{spec}: no runs of branch {branch!r} in {store.where}")
    changed = _since(store, branch)
    by_run: dict[str, dict[str, Any]] = {}
    for row in cell_rows:
        by_run.setdefault(row["run_id"], {})[row["cell_id"]] = json.loads(row["gate"])
    order = [r["commit"] for r in run_rows]
    chosen: dict[str, list[str]] = {}  # cell -> run ids, newest RUNS since its last change
    for cell_id in {c for per in by_run.values() for c in per}:
        start = max((order.index(c) for c in changed.get(cell_id, []) if c in order), default=0)
        have = [r["run_id"] for r in run_rows[start:] if cell_id in by_run.get(r["run_id"], {})]
        chosen[cell_id] = have[-runs:]
    docs = []
    for r in run_rows:
        mine = {c: by_run[r["run_id"]][c] for c, ids in chosen.items() if r["run_id"] in ids}
        if mine:
            docs.append(_document(json.loads(r["gate"]), mine))
    if not docs:
        raise HistoryError(f"{spec}: no cells of branch {branch!r} to compare with")
    notes = [
        f"{spec}: {len(docs)} run(s) of {branch} since each cell's last confirmed change "
        f"(at most {runs} per cell)"
    ]
    return side_from_documents(docs, spec, notes)


def _document(run: dict[str, Any], cells: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bench_version": "history",
        "max_samples": MAX_SAMPLES,
        "runs": [run],
        "cells": cells,
    }

"""Series out of the store, the first stage run over them, and the suspects and judged changes
kept in the ``bench_changes`` table.

A series is one (branch, cell, metric): its points in commit order, one per commit (where a
commit was measured more than once, the median of its runs' medians and the widest interval).
A suspect is recorded once per pair of commits, with the commits of its window, and is never
judged twice: a later detection that finds it again, or finds a suspect whose window holds a
change already confirmed, adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.history.detect import suspects
from bench.history.store import Store
from bench.runfolder import utc_now

SUSPECT, MOVED = "suspect", "moved"


@dataclass(frozen=True)
class Series:
    branch: str
    cell_id: str
    metric: str
    commits: list[str]
    values: list[float]
    intervals: list[tuple[float, float]]


def series_of(rows: Sequence[dict[str, Any]]) -> list[Series]:
    """Group point rows (in series order, as ``Store.point_rows`` gives them) into series."""
    grouped: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    for row in rows:
        per_commit = grouped[(row["branch"], row["cell_id"], row["metric"])]
        per_commit.setdefault(row["commit"], []).append(row)
    found = []
    for (branch, cell_id, metric), per_commit in grouped.items():
        commits, values, intervals = [], [], []
        for commit, points in per_commit.items():
            commits.append(commit)
            values.append(float(np.median([p["median"] for p in points])))
            intervals.append((min(p["ci_lo"] for p in points), max(p["ci_hi"] for p in points)))
        found.append(Series(branch, cell_id, metric, commits, values, intervals))
    return found


def change_id(branch: str, cell_id: str, metric: str, before: str, after: str) -> str:
    text = "\0".join((branch, cell_id, metric, before, after))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def rows(store: Store, branch: str | None = None, status: str | None = None) -> list[dict]:
    from sqlalchemy import select

    from bench.history.schema import changes

    query = select(changes).order_by(changes.c.detected_at, changes.c.change_id)
    if branch:
        query = query.where(changes.c.branch == branch)
    if status:
        query = query.where(changes.c.status == status)
    with store.reading() as conn:
        found = [dict(r._mapping) for r in conn.execute(query)]
    for row in found:
        row["detail"] = json.loads(row["detail"])
    return found


def record_suspect(
    store: Store,
    series: Series,
    index: int,
    window: tuple[int, int],
    ratio: float | None,
    score: float = 0.0,
) -> bool:
    """Keep a suspect at ``series.commits[index]`` (``ratio``: the suspected change, None for
    a pair given by hand); False when that pair is known already."""
    from sqlalchemy import select

    from bench.history.schema import changes

    lo, hi = max(window[0], 1), window[1]
    before, after = series.commits[index - 1], series.commits[index]
    key = change_id(series.branch, series.cell_id, series.metric, before, after)
    detail = {
        "ratio": ratio,
        "score": score,
        # the commits the change may be at, with the one before the first: what pinning reads
        "window": series.commits[lo - 1 : hi + 1],
        "at": after,
    }
    with store.writing() as conn:
        if conn.execute(select(changes.c.change_id).where(changes.c.change_id == key)).first():
            return False
        conn.execute(
            changes.insert(),
            [
                {
                    "change_id": key,
                    "branch": series.branch,
                    "cell_id": series.cell_id,
                    "metric": series.metric,
                    "before_commit": before,
                    "after_commit": after,
                    "status": SUSPECT,
                    "detected_at": utc_now(),
                    "detail": json.dumps(detail),
                }
            ],
        )
    return True


def detect(store: Store, branch: str | None, metrics: Sequence[str]) -> list[dict]:
    """Run the first stage over every series of ``metrics`` (on ``branch``, or every branch)
    and record new suspects; the new suspects' rows."""
    confirmed = defaultdict(set)
    for row in rows(store, branch, "confirmed"):
        confirmed[(row["branch"], row["cell_id"], row["metric"])].add(row["after_commit"])
    new = []
    for metric in metrics:
        for s in series_of(store.point_rows(metric, branch)):
            known = confirmed[(s.branch, s.cell_id, s.metric)]
            for found in suspects(s.values, s.intervals):
                if found.index < 1 or known & set(s.commits[found.lo : found.hi + 1]):
                    continue
                if record_suspect(
                    store, s, found.index, (found.lo, found.hi), found.ratio, found.score
                ):
                    new.append((s, found))
    return new


def record_judgement(
    store: Store,
    suspect: dict[str, Any],
    status: str,
    pair: tuple[str, str] | None,
    judged: Any,
    comparisons: list[Any],
) -> None:
    """The second stage's outcome: the suspect's row takes the status; a change pinned to
    another pair than the suspect's gets a row of its own (the suspect's then says ``moved``)."""
    from sqlalchemy import select, update

    from bench.history.schema import changes

    now = utc_now()
    numbers = {
        "ratio": getattr(judged, "ratio", None),
        "ci_lo": getattr(judged, "ci_lo", None),
        "ci_hi": getattr(judged, "ci_hi", None),
        "verdict": getattr(judged, "verdict", None),
        "judged_at": now,
    }
    detail = {
        **suspect["detail"],
        "reason": getattr(judged, "reason", ""),
        "comparisons": comparisons,
    }
    moved = pair is not None and pair != (suspect["before_commit"], suspect["after_commit"])
    with store.writing() as conn:
        if moved:
            assert pair is not None
            key = change_id(suspect["branch"], suspect["cell_id"], suspect["metric"], *pair)
            detail["pinned"] = key
            there = conn.execute(select(changes.c.change_id).where(changes.c.change_id == key))
            values = {"status": status, **numbers, "detail": json.dumps(detail)}
            if there.first():
                conn.execute(update(changes).where(changes.c.change_id == key).values(**values))
            else:
                conn.execute(
                    changes.insert(),
                    [
                        {
                            "change_id": key,
                            "branch": suspect["branch"],
                            "cell_id": suspect["cell_id"],
                            "metric": suspect["metric"],
                            "before_commit": pair[0],
                            "after_commit": pair[1],
                            "detected_at": suspect["detected_at"],
                            **values,
                        }
                    ],
                )
        conn.execute(
            update(changes)
            .where(changes.c.change_id == suspect["change_id"])
            .values(status=MOVED if moved else status, **numbers, detail=json.dumps(detail))
        )

"""Reading the history: ``bench.history.load(...) -> DataFrame`` and ``bench history show``.

One row per point: the commit, branch, commit time, run, machine, cell, every axis of the
cell's key, the metric, its median with the run's 95% interval, the sample count and the
spread between the run's processes, in series order (the commits' order).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bench.history.store import HistoryError, Store, resolve_url

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = (
    "commit", "branch", "commit_time", "run_id", "machine", "scenario", "cell_id", "metric",
    "unit", "median", "ci_lo", "ci_hi", "n", "process_spread",
)  # fmt: skip

_EXPR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(<=|>=|==|!=|<|>|=)\s*(\S.*?)\s*$")
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
    "==": operator.eq, "=": operator.eq, "!=": operator.ne,
}  # fmt: skip


def frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    flat = []
    for row in rows:
        entry = {c: row.get(c) for c in COLUMNS}
        for name, value in (row.get("key") or {}).items():
            entry.setdefault(name, value)
        flat.append(entry)
    df = pd.DataFrame(flat)
    return df.reindex(columns=list(dict.fromkeys([*COLUMNS, *df.columns])))


def where(df: pd.DataFrame, expressions: Sequence[str]) -> pd.DataFrame:
    """Rows where every ``FIELD OP VALUE`` holds (numbers compared as numbers)."""
    for text in expressions:
        match = _EXPR.match(text)
        if not match:
            raise HistoryError(f"--where {text!r}: expected FIELD OP VALUE, e.g. framework=jax")
        name, op, value = match.groups()
        if name not in df.columns:
            raise HistoryError(
                f"--where {text!r}: no field {name!r}; fields: {', '.join(map(str, df.columns))}"
            )
        column = df[name]
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None and column.dtype.kind in "iuf":
            keep = _OPS[op](column, number)
        elif op in ("=", "==", "!="):
            keep = column.astype(str).str.lower() == value.lower()
            keep = ~keep if op == "!=" else keep
        else:
            raise HistoryError(f"--where {text!r}: {name} is not a number field; use = or !=")
        df = df[keep.fillna(False).astype(bool)]
    return df


def commits_between(df: pd.DataFrame, commits: str) -> pd.DataFrame:
    """Rows from commit A through commit B (``A..B``; either end may be left out; a prefix of
    a hash is enough), in series order."""
    first, sep, last = commits.partition("..")
    if not sep:
        first = last = commits
    order = list(dict.fromkeys(df["commit"]))

    def at(prefix: str, default: int) -> int:
        if not prefix:
            return default
        found = [i for i, c in enumerate(order) if str(c).startswith(prefix)]
        if not found:
            raise HistoryError(f"--commits {commits!r}: no commit {prefix!r} in the history")
        return found[0]

    lo, hi = at(first, 0), at(last, len(order) - 1)
    keep = set(order[lo : hi + 1])
    return df[df["commit"].isin(keep)]


def load(
    db: str | None = None,
    *,
    results_dir: str = "results",
    metric: str | None = None,
    branch: str | None = None,
    where_: Sequence[str] = (),
    commits: str | None = None,
) -> pd.DataFrame:
    """The history's points as a data frame (columns: ``COLUMNS`` then the cells' axes)."""
    store = Store.open(resolve_url(db, results_dir), write=False)
    try:
        df = frame(store.point_rows(metric, branch))
    finally:
        store.close()
    if commits and len(df):
        df = commits_between(df, commits)
    return where(df, where_) if len(df) else df

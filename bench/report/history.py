"""The history's points as a terminal table (``bench history show``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd


def _number(value: object) -> str:
    if value is None or value != value:  # NaN
        return "-"
    return f"{float(value):.4g}"  # type: ignore[arg-type]


def points_table(df: pd.DataFrame) -> Table:
    table = Table(title=f"{len(df)} points", title_justify="left")
    for name in ("commit", "branch", "cell", "metric", "median", "95% interval", "n", "spread"):
        table.add_column(name, justify="right" if name in ("median", "n", "spread") else "left")
    for row in df.itertuples(index=False):
        spread = row.process_spread
        table.add_row(
            str(row.commit)[:12],
            str(row.branch),
            str(row.cell_id),
            str(row.metric),
            f"{_number(row.median)} {row.unit}",
            f"[{_number(row.ci_lo)}, {_number(row.ci_hi)}]",
            str(row.n),
            "-" if spread is None or spread != spread else f"{spread:.1%}",
        )
    return table

"""The history's trend page: each series over commits, with its intervals and its changes.

One self-contained HTML file (``bench history report``): per (branch, cell, metric) an SVG
chart of the run medians in commit order, each with its 95% interval as a bar, confirmed
changes as solid lines at the commit they were pinned to (labelled with their ratio), and
suspects awaiting a re-run as dashed lines. Drawn by hand like the other plots
(``bench.report.svg``): the same history gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from bench.report.svg import FONT, Frame, _f, _open, _Scale, compact, ticks

CONFIRMED, SUSPECT = "#D55E00", "#7f7f7f"


def trend_svg(series: Any, marks: Sequence[dict[str, Any]], unit: str) -> str:
    """One series (``bench.history.changes.Series``) and its change rows as an SVG chart."""
    frame = Frame(width=860, height=300, right=30)
    n = len(series.values)
    lows = [lo for lo, _ in series.intervals] or list(series.values)
    highs = [hi for _, hi in series.intervals] or list(series.values)
    ylo, yhi = min(lows), max(highs)
    pad = (yhi - ylo) * 0.08 or abs(yhi) * 0.05 or 1.0
    ylo, yhi = ylo - pad, yhi + pad
    x0, x1 = frame.left, frame.width - frame.right
    y0, y1 = frame.height - frame.bottom, frame.top
    sx = _Scale(-0.5, max(n - 0.5, 0.5), False, x0, x1)
    sy = _Scale(ylo, yhi, False, y0, y1)
    title = f"{series.cell_id} · {series.metric} · {series.branch}"
    out = _open(frame, title, f"{n} commits of {title}, medians with 95% intervals")
    out.append(
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#fafafa" '
        'stroke="#d0d0d0"/>'
    )
    for t in ticks(ylo, yhi, False):
        py = sy(t)
        out.append(f'<line x1="{x0}" y1="{_f(py)}" x2="{x1}" y2="{_f(py)}" stroke="#e6e6e6"/>')
        out.append(
            f'<text x="{x0 - 6}" y="{_f(py + 4)}" text-anchor="end" fill="#555">'
            f"{escape(compact(t))}</text>"
        )
    step = max(1, n // 8)
    for i in range(0, n, step):
        out.append(
            f'<text x="{_f(sx(i))}" y="{y0 + 16}" text-anchor="middle" fill="#555" '
            f'font-size="11">{escape(series.commits[i][:7])}</text>'
        )
    out.append(
        f'<text x="{_f((x0 + x1) / 2)}" y="{frame.height - 10}" text-anchor="middle" '
        f'fill="#333">commit (oldest first)</text>'
    )
    out.append(
        f'<text transform="translate(16 {_f((y0 + y1) / 2)}) rotate(-90)" '
        f'text-anchor="middle" fill="#333">{escape(f"{series.metric} ({unit})")}</text>'
    )
    out += _marks(series, marks, sx, y0, y1)
    for i, (value, (lo, hi)) in enumerate(zip(series.values, series.intervals, strict=False)):
        px = _f(sx(i))
        out.append(
            f'<line x1="{px}" y1="{_f(sy(lo))}" x2="{px}" y2="{_f(sy(hi))}" stroke="#0072B2" '
            'stroke-opacity="0.45"/>'
        )
        out.append(f'<circle cx="{px}" cy="{_f(sy(value))}" r="2.5" fill="#0072B2"/>')
    out.append("</svg>")
    return "\n".join(out)


def _marks(series: Any, marks: Sequence[dict[str, Any]], sx: Any, y0: float, y1: float) -> list:
    out = []
    for row in marks:
        if row["after_commit"] not in series.commits:
            continue
        px = _f(sx(series.commits.index(row["after_commit"]) - 0.5))
        confirmed = row["status"] == "confirmed"
        color = CONFIRMED if confirmed else SUSPECT
        dash = "" if confirmed else ' stroke-dasharray="4 4"'
        out.append(
            f'<line x1="{px}" y1="{y1}" x2="{px}" y2="{y0}" stroke="{color}" '
            f'stroke-width="2"{dash}/>'
        )
        ratio = row.get("ratio") if confirmed else row["detail"].get("ratio")
        label = ("x" + format(ratio, ".3f")) if ratio and ratio == ratio else row["status"]
        if not confirmed:
            label += " (suspect)"
        out.append(
            f'<text x="{px}" y="{y1 + 14}" dx="4" fill="{color}" font-size="11">'
            f"{escape(label)}</text>"
        )
    return out


def page(
    series: Sequence[Any], rows: Sequence[dict[str, Any]], units: dict[str, str], where: str
) -> str:
    """The whole trend page."""
    shown = [r for r in rows if r["status"] in ("confirmed", "suspect")]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>bench history: trends</title>",
        f"<style>body{{font-family:{FONT.split('=', 1)[1].strip(chr(34))};margin:2em;"
        "color:#1a1a1a}"
        " svg{display:block;margin:1em 0;max-width:100%;height:auto}</style>",
        "</head><body>",
        "<h1>Results across commits</h1>",
        f"<p>{escape(where)}: {len(series)} series. Points are run medians with their 95% "
        "intervals; solid lines are changes confirmed by an interleaved re-run, at the commit "
        "they were pinned to; dashed lines are suspects awaiting one.</p>",
    ]
    for s in series:
        mine = [
            r for r in shown
            if (r["branch"], r["cell_id"], r["metric"]) == (s.branch, s.cell_id, s.metric)
        ]  # fmt: skip
        parts.append(trend_svg(s, mine, units.get(s.metric, "")))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

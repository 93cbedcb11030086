"""Plots as hand-written SVG: line/scatter charts on log or linear axes, range and bar charts.

Why by hand rather than matplotlib: the reading commands must work from the core install (a CI
job that only renders a report should not pull in a 40 MB plotting stack and its font cache),
the output must be byte-for-byte reproducible for golden tests (matplotlib embeds version
strings and ids), and SVG text stays selectable and searchable in the browser. The charts a
benchmark report needs are few and simple: points, lines, bars, log axes.

Every coordinate is printed with one decimal, every number label with fixed rules, so the same
data always gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies), then more.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#7f7f7f",
    "#000000",
    "#8c564b",
    "#bcbd22",
)
MARKERS = ("circle", "square", "diamond", "triangle")
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\""
CHAR_W = 7.4  # a generous glyph width at 12 px (DejaVu Sans is wide): labels must not clip


def _f(v: float) -> str:
    return f"{v:.1f}"


def compact(value: float) -> str:
    """Tick labels: 1.5k, 20k, 1.2M, 0.05."""
    a = abs(value)
    if a >= 1e9:
        return f"{value / 1e9:g}G"
    if a >= 1e6:
        return f"{value / 1e6:g}M"
    if a >= 1e3:
        return f"{value / 1e3:g}k"
    if a == 0:
        return "0"
    return f"{value:.3g}"


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str = ""  # shown beside the point when the series asks for labels


@dataclass
class Series:
    name: str
    points: list[Point]
    color: str = PALETTE[0]
    line: bool = True
    marker: str = "circle"
    labels: bool = False
    dashed: bool = False
    muted: bool = False  # background points (drawn first, lighter)
    legend: bool = True  # an entry in the legend (off for a series another entry explains)


@dataclass
class Axis:
    label: str
    log: bool = False
    ticks: list[float] | None = None  # explicit tick positions (e.g. the batch sizes measured)
    base: int = 10


@dataclass
class Frame:
    width: int = 720
    height: int = 360
    left: int = 70
    right: int = 190  # room for the legend
    top: int = 34
    bottom: int = 48
    extras: list[str] = field(default_factory=list)


def _domain(values: Sequence[float], log: bool) -> tuple[float, float]:
    vals = [v for v in values if v > 0] if log else list(values)
    if not vals:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = min(vals), max(vals)
    if log:
        if lo == hi:
            return lo / 2, hi * 2
        pad = (hi / lo) ** 0.06
        return lo / pad, hi * pad
    if lo == hi:
        return (lo - 1, hi + 1) if lo == 0 else (min(0.0, lo * 0.9), hi * 1.1)
    pad = (hi - lo) * 0.06
    # non-negative quantities (rates, costs) start at zero so bar lengths compare honestly
    return (0.0 if lo >= 0 else lo - pad), hi + pad


def _nice_step(span: float, target: int = 5) -> float:
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def ticks(lo: float, hi: float, log: bool) -> list[float]:
    if not log:
        step = _nice_step(hi - lo)
        start = math.ceil(lo / step) * step
        out = []
        v = start
        while v <= hi + step * 1e-9:
            out.append(round(v, 12))
            v += step
        return out
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for mantissas in ((1,), (1, 3), (1, 2, 5), (1, 2, 3, 5, 7)):
        out = [m * 10.0**e for e in range(a, b + 1) for m in mantissas if lo <= m * 10.0**e <= hi]
        if len(out) >= 3:
            return out
    return out or [lo, hi]


class _Scale:
    def __init__(self, lo: float, hi: float, log: bool, a: float, b: float, base: int = 10):
        self.lo, self.hi, self.log, self.a, self.b = lo, hi, log, a, b
        self.base = base

    def __call__(self, v: float) -> float:
        if self.log:
            t = (math.log(v) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        else:
            t = (v - self.lo) / (self.hi - self.lo)
        return self.a + t * (self.b - self.a)


def _marker(
    kind: str, x: float, y: float, color: str, size: float = 4.5, opacity: str = "1"
) -> str:
    fill = f'fill="{color}" fill-opacity="{opacity}" stroke="#fff" stroke-width="1"'
    if kind == "square":
        s = size * 0.9
        return f'<rect x="{_f(x - s)}" y="{_f(y - s)}" width="{_f(2 * s)}" height="{_f(2 * s)}" {fill}/>'
    if kind == "diamond":
        s = size * 1.2
        pts = f"{_f(x)},{_f(y - s)} {_f(x + s)},{_f(y)} {_f(x)},{_f(y + s)} {_f(x - s)},{_f(y)}"
        return f'<polygon points="{pts}" {fill}/>'
    if kind == "triangle":
        s = size * 1.2
        pts = f"{_f(x)},{_f(y - s)} {_f(x + s)},{_f(y + s * 0.8)} {_f(x - s)},{_f(y + s * 0.8)}"
        return f'<polygon points="{pts}" {fill}/>'
    return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{_f(size)}" {fill}/>'


def _open(frame: Frame, title: str, description: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {frame.width} {frame.height}" '
        f'width="{frame.width}" height="{frame.height}" role="img" class="plot" {FONT} '
        'font-size="12">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(description)}</desc>",
        f'<rect x="0" y="0" width="{frame.width}" height="{frame.height}" fill="#ffffff"/>',
        f'<text x="{frame.left}" y="20" font-size="14" font-weight="600" fill="#1a1a1a">'
        f"{escape(title)}</text>",
    ]


def _legend(frame: Frame, entries: Sequence[tuple[str, str, str, bool, bool]]) -> list[str]:
    """Entries (name, colour, marker, line, dashed) in a column right of the plot area."""
    out = []
    x = frame.width - frame.right + 16
    y = frame.top + 10
    max_chars = int((frame.right - 40) / CHAR_W)
    for name, color, marker, line, dashed in entries:
        if line:
            dash = ' stroke-dasharray="4 3"' if dashed else ""
            out.append(
                f'<line x1="{_f(x - 6)}" y1="{_f(y)}" x2="{_f(x + 10)}" y2="{_f(y)}" '
                f'stroke="{color}" stroke-width="2"{dash}/>'
            )
        out.append(_marker(marker, x + 2, y, color, 4))
        text = name if len(name) <= max_chars else name[: max_chars - 1] + "…"
        out.append(f'<text x="{_f(x + 16)}" y="{_f(y + 4)}" fill="#333">{escape(text)}</text>')
        y += 18
    return out


def xy_plot(
    title: str,
    series: Sequence[Series],
    x: Axis,
    y: Axis,
    description: str = "",
    frame: Frame | None = None,
) -> str:
    """Points and lines on two axes, each linear or logarithmic, with a legend; ``frame``: a
    size other than the default (a wider legend column for longer names)."""
    frame = frame or Frame()
    xs = [p.x for s in series for p in s.points] + list(x.ticks or [])
    ys = [p.y for s in series for p in s.points]
    xlo, xhi = _domain(xs, x.log)
    ylo, yhi = _domain(ys, y.log)
    sx = _Scale(xlo, xhi, x.log, frame.left, frame.width - frame.right)
    sy = _Scale(ylo, yhi, y.log, frame.height - frame.bottom, frame.top)
    out = _open(frame, title, description or title)
    x0, x1 = frame.left, frame.width - frame.right
    y0, y1 = frame.height - frame.bottom, frame.top
    out.append(
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#fafafa" '
        'stroke="#d0d0d0"/>'
    )
    for t in x.ticks or ticks(xlo, xhi, x.log):
        if not xlo <= t <= xhi:
            continue
        px = sx(t)
        # explicit ticks are the values measured (batch sizes): print them exactly
        text = f"{t:g}" if x.ticks else compact(t)
        out.append(f'<line x1="{_f(px)}" y1="{y1}" x2="{_f(px)}" y2="{y0}" stroke="#e6e6e6"/>')
        out.append(
            f'<text x="{_f(px)}" y="{y0 + 16}" text-anchor="middle" fill="#555">'
            f"{escape(text)}</text>"
        )
    for t in ticks(ylo, yhi, y.log):
        py = sy(t)
        out.append(f'<line x1="{x0}" y1="{_f(py)}" x2="{x1}" y2="{_f(py)}" stroke="#e6e6e6"/>')
        out.append(
            f'<text x="{x0 - 6}" y="{_f(py + 4)}" text-anchor="end" fill="#555">'
            f"{escape(compact(t))}</text>"
        )
    scale = lambda a: " (log scale)" if a.log else ""  # noqa: E731
    out.append(
        f'<text x="{_f((x0 + x1) / 2)}" y="{frame.height - 10}" text-anchor="middle" '
        f'fill="#333">{escape(x.label + scale(x))}</text>'
    )
    out.append(
        f'<text transform="translate(16 {_f((y0 + y1) / 2)}) rotate(-90)" text-anchor="middle" '
        f'fill="#333">{escape(y.label + scale(y))}</text>'
    )
    ordered = [s for s in series if s.muted] + [s for s in series if not s.muted]
    for s in ordered:
        pts = [
            (sx(p.x), sy(p.y), p)
            for p in s.points
            if (p.x > 0 or not x.log) and (p.y > 0 or not y.log)
        ]
        if s.line and len(pts) > 1:
            path = " ".join(f"{_f(a)},{_f(b)}" for a, b, _ in pts)
            dash = ' stroke-dasharray="5 4"' if s.dashed else ""
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="2"{dash}/>'
            )
        for a, b, p in pts:
            out.append(
                _marker(
                    s.marker, a, b, s.color, 3.5 if s.muted else 4.5, "0.45" if s.muted else "1"
                )
            )
            if s.labels and p.label:
                anchor, dx = ("end", -7) if a > (x0 + x1) / 2 else ("start", 7)
                out.append(
                    f'<text x="{_f(a + dx)}" y="{_f(b - 6)}" text-anchor="{anchor}" '
                    f'font-size="11" fill="{s.color}">{escape(p.label)}</text>'
                )
    out += _legend(
        frame, [(s.name, s.color, s.marker, s.line, s.dashed) for s in series if s.legend]
    )
    out.append("</svg>")
    return "\n".join(out)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    color: str = PALETTE[0]
    note: str = ""  # printed after the value


def bar_plot(title: str, bars: Sequence[Bar], unit: str, description: str = "") -> str:
    """Horizontal bars, one per labelled row, with the value printed at the end of each bar."""
    label_chars = max((len(b.label) for b in bars), default=10)
    left = int(min(max(label_chars * CHAR_W + 16, 120), 380))
    row = 24
    frame = Frame(height=44 + row * max(len(bars), 1) + 36, left=left, right=140, top=34, bottom=36)
    out = _open(frame, title, description or title)
    x0, x1 = frame.left, frame.width - frame.right
    top = frame.top
    hi = max((b.value for b in bars), default=1.0) or 1.0
    lo = 0.0
    for t in ticks(lo, hi, False):
        px = x0 + (t - lo) / (hi - lo) * (x1 - x0)
        out.append(
            f'<line x1="{_f(px)}" y1="{top}" x2="{_f(px)}" y2="{top + row * len(bars)}" '
            'stroke="#e6e6e6"/>'
        )
        out.append(
            f'<text x="{_f(px)}" y="{top + row * len(bars) + 16}" text-anchor="middle" '
            f'fill="#555">{escape(compact(t))}</text>'
        )
    for i, b in enumerate(bars):
        y = top + i * row
        w = max((b.value - lo) / (hi - lo) * (x1 - x0), 1.0)
        out.append(
            f'<text x="{x0 - 8}" y="{_f(y + row / 2 + 4)}" text-anchor="end" fill="#333">'
            f"{escape(b.label)}</text>"
        )
        out.append(
            f'<rect x="{x0}" y="{_f(y + 4)}" width="{_f(w)}" height="{row - 8}" '
            f'fill="{b.color}" rx="2"/>'
        )
        text = f"{compact(b.value)} {b.note}".strip()
        out.append(
            f'<text x="{_f(x0 + w + 6)}" y="{_f(y + row / 2 + 4)}" fill="#333">'
            f"{escape(text)}</text>"
        )
    out.append(
        f'<text x="{_f((x0 + x1) / 2)}" y="{frame.height - 8}" text-anchor="middle" '
        f'fill="#333">{escape(unit)}</text>'
    )
    out.append("</svg>")
    return "\n".join(out)


@dataclass(frozen=True)
class Spread:
    """One row of a percentile chart: the range min..max with marks at the percentiles."""

    label: str
    low: float
    high: float
    marks: tuple[tuple[str, float], ...]  # (name, value), e.g. ("p50", 0.8)
    color: str = PALETTE[0]


SPREAD_MARKS = {"p50": "circle", "p90": "square", "p95": "triangle", "p99": "diamond"}


def spread_plot(title: str, rows: Sequence[Spread], unit: str, description: str = "") -> str:
    """Step-time distributions on a log axis: a thin min..max line, a thick p50..p99 band, and
    a marker per percentile, one row per cell; long tails show at a glance."""
    label_chars = max((len(r.label) for r in rows), default=10)
    left = int(min(max(label_chars * CHAR_W + 16, 120), 380))
    row = 26
    frame = Frame(height=44 + row * max(len(rows), 1) + 40, left=left, right=120, top=34, bottom=40)
    values = [v for r in rows for v in (r.low, r.high)]
    lo, hi = _domain(values, True)
    x0, x1 = frame.left, frame.width - frame.right
    sx = _Scale(lo, hi, True, x0, x1)
    top = frame.top
    out = _open(frame, title, description or title)
    bottom = top + row * len(rows)
    for t in ticks(lo, hi, True):
        px = sx(t)
        out.append(f'<line x1="{_f(px)}" y1="{top}" x2="{_f(px)}" y2="{bottom}" stroke="#e6e6e6"/>')
        out.append(
            f'<text x="{_f(px)}" y="{bottom + 16}" text-anchor="middle" fill="#555">'
            f"{escape(compact(t))}</text>"
        )
    for i, r in enumerate(rows):
        y = top + i * row + row / 2
        out.append(
            f'<text x="{x0 - 8}" y="{_f(y + 4)}" text-anchor="end" fill="#333">'
            f"{escape(r.label)}</text>"
        )
        out.append(
            f'<line x1="{_f(sx(r.low))}" y1="{_f(y)}" x2="{_f(sx(r.high))}" y2="{_f(y)}" '
            f'stroke="{r.color}" stroke-opacity="0.5" stroke-width="1.5"/>'
        )
        marks = dict(r.marks)
        if "p50" in marks and "p99" in marks:
            out.append(
                f'<line x1="{_f(sx(marks["p50"]))}" y1="{_f(y)}" x2="{_f(sx(marks["p99"]))}" '
                f'y2="{_f(y)}" stroke="{r.color}" stroke-width="6" stroke-opacity="0.35"/>'
            )
        for name, value in r.marks:
            out.append(_marker(SPREAD_MARKS.get(name, "circle"), sx(value), y, r.color, 4))
    legend_y = bottom + 30
    x = x0
    for name, marker in SPREAD_MARKS.items():
        out.append(_marker(marker, x, legend_y - 4, "#555", 4))
        out.append(f'<text x="{_f(x + 8)}" y="{_f(legend_y)}" fill="#333">{name}</text>')
        x += 52
    out.append(
        f'<text x="{_f(x + 10)}" y="{_f(legend_y)}" fill="#333">line: min to max, '
        f"{escape(unit)} (log scale)</text>"
    )
    out.append("</svg>")
    return "\n".join(out)

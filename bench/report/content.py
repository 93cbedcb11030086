"""What a report says, independent of how it is written: sections of paragraphs, tables and
plots, built from loaded runs. ``html.py`` and ``markdown.py`` only lay these out, so the HTML
report and the markdown job summary always carry the same numbers.

Cells: where one host measured the same cell in several runs, the latest run's record is used
throughout (as ``bench recommend`` does), and the report says how many were set aside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.axes import BY_NAME, key_label, value_text
from bench.axes import label as axis_label
from bench.backends import registry
from bench.metrics import fields as metric_fields
from bench.metrics import find_field, value_of
from bench.read.compare import run_labels
from bench.read.recommend import latest_per_host, objectives, pareto, recommend
from bench.read.runset import CellView, RunSet, axes_of
from bench.report import svg
from bench.report.format import fmt_bytes, fmt_value
from bench.report.recommend import explain, ranking_rows
from bench.runfolder import STATUSES
from bench.text import join_words

PROBLEM_STATUSES = ("skipped", "failed", "oom", "timeout", "invalid")


@dataclass
class Paragraph:
    text: str
    kind: str = ""  # "" or "muted"


@dataclass
class Bullets:
    items: list[str]


@dataclass
class TableBlock:
    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool]  # right-aligned columns
    status_column: int | None = None  # a column whose text is a cell status (coloured)


@dataclass
class PlotBlock:
    name: str  # file stem for the markdown report's plot files
    title: str
    svg: str


@dataclass
class Heading:
    text: str


Block = Paragraph | Bullets | TableBlock | PlotBlock | Heading


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    title: str
    subtitle: str
    sections: list[Section]

    @property
    def plots(self) -> list[PlotBlock]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, PlotBlock)]


# -- helpers ---------------------------------------------------------------------------------


def _groups(cells: Sequence[CellView]) -> dict[tuple[str, str], list[CellView]]:
    out: dict[tuple[str, str], list[CellView]] = {}
    for cell in cells:
        ident = (str(cell.key.get("model", "?")), str(cell.key.get("workload", "?")))
        out.setdefault(ident, []).append(cell)
    return {k: out[k] for k in sorted(out)}


def _slug(*parts: str) -> str:
    text = "-".join(parts).lower()
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")


def _varying(cells: Sequence[CellView], axes: Sequence[str]) -> list[str]:
    return [a for a in axes if len({str(c.key.get(a)) for c in cells}) > 1]


class Namer:
    """Short names for cells and series within a group: only what tells them apart."""

    def __init__(self, cells: Sequence[CellView]):
        axes = [a for a in axes_of(c.key for c in cells) if a not in ("model", "workload")]
        self.series_axes = [a for a in _varying(cells, axes) if a != "batch_size"]
        if not self.series_axes:
            self.series_axes = [a for a in ("framework", "device") if a in axes]
        self.with_host = len({c.host.label for c in cells}) > 1

    def series(self, cell: CellView) -> str:
        text = key_label(cell.key, self.series_axes)
        return f"{text} @{cell.host.label}" if self.with_host else text

    def cell(self, cell: CellView) -> str:
        if cell.key.get("workload") == "serve":  # one request per example: no batch to name
            return self.series(cell)
        return f"{self.series(cell)} {axis_label('batch_size', cell.key.get('batch_size'))}"


def _colors(names: Sequence[str]) -> dict[str, str]:
    ordered = list(dict.fromkeys(names))
    return {n: svg.PALETTE[i % len(svg.PALETTE)] for i, n in enumerate(ordered)}


def _ok(cells: Sequence[CellView]) -> list[CellView]:
    return [c for c in cells if c.ok]


def _order(cells: Sequence[CellView], namer: Namer) -> list[CellView]:
    return sorted(cells, key=lambda c: (namer.series(c), float(c.key.get("batch_size") or 0)))


def _reasons(cells: Sequence[CellView], metric_names: Sequence[str]) -> list[str]:
    """Distinct reasons the cells give for not having these metrics."""
    found: dict[str, None] = {}
    for cell in cells:
        for name in metric_names:
            entry = cell.metrics.get(name)
            if isinstance(entry, dict) and "unavailable" in entry:
                found[f"{name}: {entry['unavailable']}"] = None
    return list(found)


def _missing_paragraph(what: str, cells: Sequence[CellView], names: Sequence[str]) -> Paragraph:
    reasons = _reasons(cells, names)
    why = "; ".join(reasons) if reasons else f"these runs record no {' or '.join(names)}"
    return Paragraph(f"No cell has {what}: {why}.", "muted")


# -- sections --------------------------------------------------------------------------------


def _summary(runset: RunSet, cells: Sequence[CellView], superseded: int, objective: str) -> Section:
    section = Section("summary", "Summary")
    statuses = [c.status for c in cells]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in STATUSES if s in statuses)
    hosts = sorted({h.label for h in runset.hosts})
    text = (
        f"{len(runset.runs)} run(s) on {len(hosts)} host(s) ({', '.join(hosts)}); "
        f"{len(cells)} cells: {counts or 'none'}."
    )
    if superseded:
        text += (
            f" {superseded} earlier record(s) of cells measured again on the same host are "
            "set aside for the latest run's."
        )
    section.blocks.append(Paragraph(text))
    rec = recommend(runset, objective)
    goal = rec.objective
    section.blocks.append(
        Paragraph(
            f"Recommendation for {goal.name} ({goal.field}, "
            f"{'higher' if goal.maximize else 'lower'} is better); rerun `bench recommend` with "
            f"--where to add constraints such as p99_ms<=50. A lead is beyond noise when its "
            f"whole 95% CI lies beyond the {rec.noise_rule}."
        )
    )
    for choice in rec.choices:
        verdict = "recommended" if choice.winner is not None else "nothing qualifies"
        section.blocks.append(Heading(f"{choice.model} {choice.workload}: {verdict}"))
        if choice.common:
            section.blocks.append(Paragraph(f"Every cell: {choice.common}.", "muted"))
        section.blocks.append(Bullets(explain(choice)))
        rows = ranking_rows(choice)
        if rows:
            partner = find_field(goal.partner)[1].column
            section.blocks.append(
                TableBlock(
                    ["rank", "cell", goal.unit, partner, "winner's lead [95% CI]", "noise"],
                    [list(r) for r in rows],
                    [False, False, True, True, False, False],
                )
            )
    return section


def _offline(cells: Sequence[CellView]) -> list[CellView]:
    """Cells whose step time and batch size mean something: not serve cells (see _serving)."""
    return [c for c in cells if c.key.get("workload") != "serve"]


def _throughput(cells: Sequence[CellView]) -> Section:
    cells = _offline(cells)
    section = Section("throughput", "Throughput vs batch size")
    section.blocks.append(
        Paragraph(
            "Examples per second (batch size / median step time) per device and framework; "
            "both axes logarithmic. A flattening line means a bigger batch no longer buys speed."
        )
    )
    for (model, workload), group in _groups(cells).items():
        ok = _ok(group)
        if not ok:
            continue
        namer = Namer(ok)
        by_series: dict[str, list[CellView]] = {}
        for cell in _order(ok, namer):
            by_series.setdefault(namer.series(cell), []).append(cell)
        colors = _colors(list(by_series))
        series = [
            svg.Series(
                name,
                [
                    svg.Point(float(c.key["batch_size"]), c.number("examples_per_s") or 0.0)
                    for c in members
                ],
                colors[name],
                marker=svg.MARKERS[i % len(svg.MARKERS)],
            )
            for i, (name, members) in enumerate(by_series.items())
        ]
        batches = sorted({float(c.key["batch_size"]) for c in ok})
        title = f"{model} {workload}: throughput vs batch size"
        section.blocks.append(
            PlotBlock(
                _slug("throughput", model, workload),
                title,
                svg.xy_plot(
                    title,
                    series,
                    svg.Axis("batch size", log=True, ticks=batches, base=2),
                    svg.Axis("examples/s", log=True),
                ),
            )
        )
    return section


def _percentiles(cells: Sequence[CellView]) -> Section:
    cells = _offline(cells)
    section = Section("percentiles", "Step-time percentiles")
    section.blocks.append(
        Paragraph(
            "Each row is one cell's timed steps: the thin line spans min to max, the band p50 "
            "to p99. A long band is a heavy tail: the p99 latency a batch job or SLO sees."
        )
    )
    plots: list[Block] = []
    tables: list[Block] = []
    for (model, workload), group in _groups(cells).items():
        ok = [c for c in _ok(group) if c.number("p50_ms") is not None]
        if not ok:
            continue
        namer = Namer(ok)
        ordered = _order(ok, namer)
        colors = _colors([namer.series(c) for c in ordered])
        rows = []
        table = []
        for cell in ordered:
            steps = cell.metrics.get("step_time_s", {})
            marks = tuple(
                (p, v * 1e3) for p in ("p50", "p90", "p95", "p99") if (v := value_of(steps, p))
            )
            low, high = value_of(steps, "min"), value_of(steps, "max")
            rows.append(
                svg.Spread(
                    namer.cell(cell),
                    (low or marks[0][1] / 1e3) * 1e3,
                    (high or marks[-1][1] / 1e3) * 1e3,
                    marks,
                    colors[namer.series(cell)],
                )
            )
            cv = value_of(steps, "cv")
            table.append(
                [
                    namer.cell(cell),
                    str(steps.get("n", "-")),
                    *(
                        fmt_value(cell.number(f"{p}_ms"), "ms")
                        for p in ("p50", "p90", "p95", "p99")
                    ),
                    fmt_value(None if high is None else high * 1e3, "ms"),
                    "-" if cv is None else f"{cv:.2f}",
                    str(steps.get("outliers", "-")),
                    ", ".join(cell.flags),
                ]
            )
        title = f"{model} {workload}: step time (ms)"
        plots.append(
            PlotBlock(
                _slug("percentiles", model, workload), title, svg.spread_plot(title, rows, "ms")
            )
        )
        tables.append(Heading(f"{model} {workload}"))
        tables.append(
            TableBlock(
                [
                    "cell",
                    "n",
                    "p50 ms",
                    "p90 ms",
                    "p95 ms",
                    "p99 ms",
                    "max ms",
                    "CV",
                    "outliers",
                    "flags",
                ],
                table,
                [False, True, True, True, True, True, True, True, True, False],
            )
        )
    section.blocks += plots + tables
    return section


def _bars(
    name: str,
    title: str,
    cells: Sequence[CellView],
    namer: Namer,
    field_name: str,
    unit: str,
) -> PlotBlock | None:
    measured = [c for c in _order(cells, namer) if c.number(field_name) is not None]
    if not measured:
        return None
    colors = _colors([namer.series(c) for c in measured])
    bars = [
        svg.Bar(namer.cell(c), c.number(field_name) or 0.0, colors[namer.series(c)])
        for c in measured
    ]
    return PlotBlock(name, title, svg.bar_plot(title, bars, unit))


def _method(cell: CellView, metric: str) -> str:
    entry = cell.metrics.get(metric)
    if not isinstance(entry, dict):
        return "-"
    return str(entry.get("unavailable") or entry.get("method") or "-")


def _price(cell: CellView) -> str:
    entry = cell.metrics.get("price_per_hour_usd")
    value = value_of(entry)
    if value is None or not isinstance(entry, dict):
        return "-"
    return f"${value:.4g}/h ({entry.get('price_entry', '?')})"


def _cost_energy(cells: Sequence[CellView]) -> Section:
    section = Section("cost-energy", "Cost and energy per million examples")
    ok = _ok(cells)
    has_cost = any(c.number("cost_usd_per_million") is not None for c in ok)
    has_energy = any(c.number("energy_kwh_per_million") is not None for c in ok)
    if not has_cost:
        section.blocks.append(_missing_paragraph("a cost", ok, ["cost_per_million_examples_usd"]))
    if not has_energy:
        section.blocks.append(_missing_paragraph("an energy reading", ok, ["energy_per_example_j"]))
    if not (has_cost or has_energy):
        return section
    section.blocks.append(
        Paragraph(
            "Cost: the device's price per hour over the examples it processes in that hour "
            "(dated list prices, sources below each table). Energy: counter-based joules of the "
            "timed phase per example, as kWh per million examples."
        )
    )
    plots: list[Block] = []
    tables: list[Block] = []
    for (model, workload), group in _groups(ok).items():
        namer = Namer(group)
        for field_name, label, unit, stem in (
            ("cost_usd_per_million", "cost per 1M examples", "USD per 1M examples", "cost"),
            ("energy_kwh_per_million", "energy per 1M examples", "kWh per 1M examples", "energy"),
        ):
            plot = _bars(
                _slug(stem, model, workload),
                f"{model} {workload}: {label}",
                group,
                namer,
                field_name,
                unit,
            )
            if plot is not None:
                plots.append(plot)
        # Per-cell method strings repeat the price entry with each throughput: the distinct
        # price and energy sources are listed once under the table instead.
        columns: list[tuple[str, Callable[[CellView], str]]] = []
        if has_cost:
            columns += [
                ("USD / 1M examples", lambda c: fmt_value(c.number("cost_usd_per_million"), "USD")),
                (
                    "examples / USD",
                    lambda c: fmt_value(value_of(c.metrics.get("examples_per_usd")), "examples/s"),
                ),
                ("price", _price),
            ]
        if has_energy:
            columns += [
                (
                    "kWh / 1M examples",
                    lambda c: fmt_value(c.number("energy_kwh_per_million"), "kWh"),
                ),
                ("avg W", lambda c: fmt_value(value_of(c.metrics.get("avg_power_w")), "W")),
            ]
        ordered = _order(group, namer)
        tables.append(Heading(f"{model} {workload}"))
        tables.append(
            TableBlock(
                ["cell", *(h for h, _ in columns)],
                [[namer.cell(c), *(f(c) for _, f in columns)] for c in ordered],
                [False, *(h != "price" for h, _ in columns)],
            )
        )
        sources = []
        if has_cost:
            sources += [
                f"price: {m}"
                for m in dict.fromkeys(_method(c, "price_per_hour_usd") for c in ordered)
                if m != "-"
            ]
        if has_energy:
            sources += [
                f"energy: {m}"
                for m in dict.fromkeys(_method(c, "energy_j") for c in ordered)
                if m != "-"
            ]
        if sources:
            tables.append(Bullets(sources))
    section.blocks += plots + tables
    return section


def _mfu(cells: Sequence[CellView]) -> Section:
    section = Section("mfu", "Model FLOPs utilisation (MFU)")
    ok = _ok(cells)
    if not any(c.number("mfu_pct") is not None for c in ok):
        section.blocks.append(_missing_paragraph("an MFU", ok, ["mfu"]))
        return section
    section.blocks.append(
        Paragraph(
            "Achieved FLOP/s (analytic FLOPs per example x examples/s) over the device's peak: how "
            "much of the hardware the model uses. Low MFU at small batches is dispatch overhead."
        )
    )
    plots: list[Block] = []
    tables: list[Block] = []
    for (model, workload), group in _groups(ok).items():
        namer = Namer(group)
        plot = _bars(
            _slug("mfu", model, workload),
            f"{model} {workload}: MFU (%)",
            group,
            namer,
            "mfu_pct",
            "% of peak FLOP/s",
        )
        if plot is None:
            continue
        plots.append(plot)
        rows = []
        ordered = _order(group, namer)
        for c in ordered:
            entry = c.metrics.get("mfu") or {}
            achieved = entry.get("achieved_flops_per_s") if isinstance(entry, dict) else None
            peak = entry.get("peak_flops_per_s") if isinstance(entry, dict) else None
            rows.append(
                [
                    namer.cell(c),
                    fmt_value(c.number("mfu_pct"), "%"),
                    fmt_value(achieved / 1e12 if isinstance(achieved, int | float) else None),
                    fmt_value(peak / 1e12 if isinstance(peak, int | float) else None),
                ]
            )
        tables.append(Heading(f"{model} {workload}"))
        tables.append(
            TableBlock(
                ["cell", "MFU %", "achieved TFLOP/s", "peak TFLOP/s"],
                rows,
                [False, True, True, True],
            )
        )
        # the peak's source, once per distinct one rather than on every row
        peaks = dict.fromkeys(_method(c, "peak_flops_per_s") for c in ordered)
        peaks.pop("-", None)
        if peaks:
            tables.append(Bullets([f"peak: {m}" for m in peaks]))
    section.blocks += plots + tables
    return section


def _frontier_plot(
    name: str,
    title: str,
    cells: Sequence[CellView],
    front: Sequence[CellView],
    namer: Namer,
    x: tuple[str, str],
    y: tuple[str, str],
) -> PlotBlock:
    def point(c: CellView, label: bool) -> svg.Point:
        return svg.Point(
            c.number(x[0]) or 0.0, c.number(y[0]) or 0.0, namer.cell(c) if label else ""
        )

    others = [c for c in cells if c not in front]
    frontier = sorted(front, key=lambda c: c.number(x[0]) or 0.0)
    series = [
        svg.Series(
            "other cells", [point(c, False) for c in others], "#9a9a9a", line=False, muted=True
        ),
        svg.Series(
            "Pareto frontier",
            [point(c, True) for c in frontier],
            svg.PALETTE[3],
            labels=True,
            marker="diamond",
        ),
    ]
    return PlotBlock(
        name, title, svg.xy_plot(title, series, svg.Axis(x[1], log=True), svg.Axis(y[1], log=True))
    )


def _pareto(cells: Sequence[CellView]) -> Section:
    section = Section("pareto", "Pareto frontiers")
    section.blocks.append(
        Paragraph(
            "A cell is on the frontier when no other cell is better on both axes: every other "
            "cell is a worse deal than some frontier cell. Throughput vs p99 latency for "
            "latency-bound work; cost vs throughput for budget-bound work."
        )
    )
    goals = objectives()
    throughput, cost = goals["throughput"], goals["cost"]
    plots: list[Block] = []
    notes: list[str] = []
    for (model, workload), group in _groups(_ok(cells)).items():
        namer = Namer(group)
        scored = [c for c in group if c.number("p99_ms") is not None]
        if scored:
            front = pareto(scored, throughput)
            plots.append(
                _frontier_plot(
                    _slug("pareto-latency", model, workload),
                    f"{model} {workload}: throughput vs p99 latency",
                    scored,
                    front,
                    namer,
                    ("p99_ms", "p99 step time (ms)"),
                    ("examples_per_s", "examples/s"),
                )
            )
            notes.append(
                f"{model} {workload}, throughput vs p99: "
                + "; ".join(
                    f"{namer.cell(c)} ({fmt_value(c.number('examples_per_s'), 'examples/s')}"
                    f" examples/s, p99 {fmt_value(c.number('p99_ms'), 'ms')} ms)"
                    for c in front
                )
            )
        costed = [c for c in group if c.number("cost_usd_per_million") is not None]
        if costed:
            front = pareto(costed, cost)
            notes.append(
                f"{model} {workload}, cost vs throughput: "
                + "; ".join(
                    f"{namer.cell(c)} ({fmt_value(c.number('cost_usd_per_million'), 'USD')} USD"
                    f" per 1M, {fmt_value(c.number('examples_per_s'), 'examples/s')} examples/s)"
                    for c in front
                )
            )
            plots.append(
                _frontier_plot(
                    _slug("pareto-cost", model, workload),
                    f"{model} {workload}: cost vs throughput",
                    costed,
                    front,
                    namer,
                    ("examples_per_s", "examples/s"),
                    ("cost_usd_per_million", "USD per 1M examples"),
                )
            )
    section.blocks += plots
    if notes:
        section.blocks += [Heading("Frontier cells"), Bullets(notes)]
    if not any(c.number("cost_usd_per_million") is not None for c in _ok(cells)):
        section.blocks.append(
            Paragraph("No cost vs throughput frontier: no cell has a cost.", "muted")
        )
    return section


def _parity(cells: Sequence[CellView]) -> Section:
    """Speed-up against agreement with the float32 CPU reference, one point per predict cell."""
    from bench.read.parity import parity_points

    section = Section("parity", "Prediction parity: speed against agreement")
    section.blocks.append(
        Paragraph(
            "Every predict cell of a run starts from the same float32 weights and predicts the "
            "same evaluation set; these are how far its outputs are from the float32 CPU "
            "reference, next to the speed its precision, framework or converter bought. "
            "Speed-up: throughput over the same cell in float32 on the CPU (its baseline, 1x)."
        )
    )
    points = parity_points(cells)
    by_group: dict[tuple[str, str], list] = {}
    for p in points:
        by_group.setdefault((str(p.cell.key.get("model")), "predict"), []).append(p)
    plots: list[Block] = []
    tables: list[Block] = []
    for (model, workload), group in sorted(by_group.items()):
        namer = Namer([p.cell for p in group])
        classify = any(p.cell.number("top1_agreement") is not None for p in group)
        y_field, y_label = (
            ("top1_agreement", "top-1 agreement")
            if classify
            else ("parity_max_abs", "max |output - reference|")
        )
        plotted = [p for p in group if p.speedup is not None and p.cell.number(y_field) is not None]
        if plotted:
            names = [namer.series(p.cell) for p in plotted]
            colors = _colors(names)
            series = [
                svg.Series(
                    name,
                    [
                        svg.Point(p.speedup, p.cell.number(y_field) or 0.0, namer.cell(p.cell))
                        for p in plotted
                        if namer.series(p.cell) == name
                    ],
                    colors[name],
                    line=False,
                    labels=True,
                )
                for name in colors
            ]
            title = f"{model} {workload}: speed-up vs {y_label}"
            plots.append(
                PlotBlock(
                    _slug("parity", model, workload),
                    title,
                    svg.xy_plot(
                        title,
                        series,
                        svg.Axis("speed-up over float32 on the CPU (x)", log=True),
                        svg.Axis(y_label, log=not classify),
                    ),
                )
            )
        rows = [
            [
                namer.cell(p.cell),
                fmt_value(p.cell.number("examples_per_s"), "examples/s"),
                f"{p.speedup:.2f}x" if p.speedup is not None else "- (no float32 CPU cell)",
                _sci(p.cell.number("parity_max_abs")),
                _sci(p.cell.number("parity_mean_abs")),
                fmt_value(p.cell.number("top1_agreement")) if classify else "-",
            ]
            for p in sorted(
                group, key=lambda p: (namer.series(p.cell), p.cell.key.get("batch_size") or 0)
            )
        ]
        tables.append(Heading(f"{model} {workload}"))
        tables.append(
            TableBlock(
                ["cell", "examples/s", "speed-up", "max |diff|", "mean |diff|", "top-1 agree"],
                rows,
                [False, True, True, True, True, True],
            )
        )
        methods = dict.fromkeys(_method(p.cell, "parity_max_abs") for p in group)
        methods.pop("-", None)
        if methods:
            tables.append(Bullets([f"parity: {m}" for m in methods]))
    if not points:
        section.blocks.append(
            _missing_paragraph("prediction parity", _ok(cells), ["parity_max_abs"])
        )
    section.blocks += plots + tables
    return section


def _sci(value: float | None) -> str:
    return "-" if value is None else ("0" if value == 0 else f"{value:.2e}")


def _serve_cells(cells: Sequence[CellView]) -> list[CellView]:
    return [c for c in _ok(cells) if c.key.get("workload") == "serve" and c.record.get("serve")]


# Short forms, as in cell ids, so legends stay within their column: "tensorflow mb32 to2".
_SERVE_PARTS = {"max_batch_size": "mb{}", "batch_timeout_ms": "to{:g}", "target_qps": "q{}"}
_SERVE_AXES = ("framework", "device", "precision", "arrivals", *_SERVE_PARTS)


def _serve_names(cells: Sequence[CellView]) -> list[str]:
    """What tells serve cells apart: the axes that vary among them, short, and the host."""
    varying = _varying(cells, _SERVE_AXES) or ["framework"]
    hosts = len({c.host.label for c in cells}) > 1
    names = []
    for c in cells:
        parts = [
            _SERVE_PARTS.get(a, "{}").format(c.key[a]) for a in varying if c.key.get(a) is not None
        ]
        names.append(" ".join(parts) + (f" @{c.host.label}" if hosts else ""))
    return names


def _serving(cells: Sequence[CellView]) -> Section:
    """Latency vs offered rate per configuration, with the SLO line; realised batch size vs
    rate; and per cell the rate it can serve within the SLO (``workload: serve``)."""
    section = Section("serving", "Online serving: latency under load")
    section.blocks.append(
        Paragraph(
            "Each point is one offered rate, measured open loop: latency runs from a request's "
            "scheduled arrival to its result on the host, so queueing shows. The dashed line is "
            "the SLO; a configuration serves the rates left of where its line crosses it. Rates "
            "with dropped requests at the SLO percentile are left out of the latency plot. "
            "Configurations are named as in cell ids: mb = max_batch_size, to = "
            "batch_timeout_ms."
        )
    )
    by_model: dict[str, list[CellView]] = {}
    for cell in cells:
        by_model.setdefault(str(cell.key.get("model")), []).append(cell)
    for model, group in by_model.items():
        names = _serve_names(group)
        colors = _colors(names)
        slo = group[0].record["serve"]["slo"]
        pct = f"p{slo['percentile']:g}"
        lat_series, batch_series, rows = [], [], []
        for i, (cell, name) in enumerate(zip(group, names, strict=True)):
            probes = [p for p in cell.record["serve"]["probes"] if p.get("offered_qps")]
            marker = svg.MARKERS[i % len(svg.MARKERS)]
            lat = [
                svg.Point(p["offered_qps"], p["slo_latency_s"] * 1e3)
                for p in probes
                if p.get("slo_latency_s")
            ]
            sizes = [
                svg.Point(p["offered_qps"], p["batch_size"]["mean"])
                for p in probes
                if "batch_size" in p
            ]
            if lat:
                lat_series.append(svg.Series(name, lat, colors[name], marker=marker))
            if sizes:
                batch_series.append(svg.Series(name, sizes, colors[name], marker=marker))
            rows.append(
                [
                    name,
                    fmt_value(cell.number("max_qps"), "requests/s"),
                    fmt_value(cell.number("latency_p99_ms"), "ms"),
                    fmt_value(cell.number("mean_batch"), "requests"),
                    fmt_value(cell.number("queue_ms"), "ms"),
                    fmt_value(cell.number("compute_ms"), "ms"),
                    fmt_value(cell.number("lateness_p99_ms"), "ms"),
                    str(len({p["offered_qps"] for p in probes}) or 1),
                    cell.reason or ", ".join(cell.flags),
                ]
            )
        if lat_series:
            xs = [p.x for s in lat_series for p in s.points]
            line = [svg.Point(min(xs), slo["latency_ms"]), svg.Point(max(xs), slo["latency_ms"])]
            lat_series.append(svg.Series(f"SLO {pct} {slo['latency_ms']:g} ms", line, "#000000",
                                         dashed=True))  # fmt: skip
            title = f"{model} serve: {pct} latency vs offered rate"
            section.blocks.append(
                PlotBlock(
                    _slug("serving-latency", model), title,
                    svg.xy_plot(title, lat_series, svg.Axis("offered requests/s", log=True),
                                svg.Axis(f"{pct} latency (ms)", log=True)),
                )
            )  # fmt: skip
        if batch_series:
            title = f"{model} serve: realised batch size vs offered rate"
            section.blocks.append(
                PlotBlock(
                    _slug("serving-batch", model), title,
                    svg.xy_plot(title, batch_series, svg.Axis("offered requests/s", log=True),
                                svg.Axis("mean requests per batch")),
                )
            )  # fmt: skip
        section.blocks.append(Heading(f"{model} serve ({pct} <= {slo['latency_ms']:g} ms)"))
        section.blocks.append(
            TableBlock(
                ["configuration", "max QPS", "p99 ms", "mean batch", "queue ms", "compute ms",
                 "generator late p99 ms", "rates", "note"],
                rows,
                [False, True, True, True, True, True, True, True, False],
            )
        )  # fmt: skip
    return section


def _input_bound(cells: Sequence[CellView], letters: dict[str, str]) -> Section:
    section = Section("input-bound", "Input-bound cells")
    flagged = [c for c in cells if "input_bound" in c.flags]
    if not flagged:
        section.blocks.append(
            Paragraph(
                "No cell is flagged input_bound. The flag marks cells whose input pipeline, not "
                "the device, limits the step time; runs that do not measure input stalls never "
                "set it.",
                "muted",
            )
        )
        return section
    section.blocks.append(
        TableBlock(
            ["run", "host", "cell", "examples/s", "input"],
            [
                [
                    letters[c.run_id],
                    c.host.label,
                    c.cell_id,
                    fmt_value(c.number("examples_per_s"), "examples/s"),
                    str(c.key.get("input")),
                ]
                for c in flagged
            ],
            [False, False, False, True, False],
        )
    )
    return section


def _profiles(cells: Sequence[CellView], letters: dict[str, str]) -> Section:
    """Where the time goes, per profiled cell (``measure.profile``): the breakdown read from
    the trace of the steps run after the timed phase."""
    from bench.report.cell import TOP_OP_HEADERS, profile_lines, top_op_rows

    section = Section("profiles", "Where the time goes (profiled cells)")
    section.blocks.append(
        Paragraph(
            "Steps traced under the framework's profiler after each cell's timed phase: the ops "
            "with the most self time and their share of all op time, and the share of the "
            "traced wall time the device (on a CPU, its compute threads) was running ops. "
            "Traced steps run slower than timed ones (the profiler records every op), so read "
            "shares, not absolute times. Trace folders are relative to each run's folder; "
            "docs/profiling.md says how to open them in XProf or TensorBoard.",
            "muted",
        )
    )
    for c in cells:
        if not c.record.get("profile"):
            continue
        section.blocks.append(Heading(f"{c.cell_id} (run {letters[c.run_id]}, {c.host.label})"))
        section.blocks.append(Bullets(profile_lines(dict(c.record))))
        rows = top_op_rows(dict(c.record))
        if rows:
            section.blocks.append(
                TableBlock(
                    list(TOP_OP_HEADERS), [list(r) for r in rows], [False, False, True, True, False]
                )
            )
    return section


def _problems(cells: Sequence[CellView], letters: dict[str, str]) -> Section:
    section = Section("problems", "Skipped, failed and invalid cells")
    bad = [c for c in cells if c.status in PROBLEM_STATUSES]
    unstable = [c for c in cells if c.ok and "unstable" in c.flags]
    if not bad:
        section.blocks.append(Paragraph("Every cell ran and passed its checks.", "muted"))
    else:
        order = {s: i for i, s in enumerate(PROBLEM_STATUSES)}
        bad.sort(key=lambda c: (order[c.status], c.run_index, c.cell_id))
        section.blocks.append(
            TableBlock(
                ["run", "host", "cell", "status", "reason"],
                [
                    [letters[c.run_id], c.host.label, c.cell_id, c.status, c.reason or "-"]
                    for c in bad
                ],
                [False] * 5,
                status_column=3,
            )
        )
    if unstable:
        section.blocks.append(
            Bullets(
                [
                    f"{c.cell_id} ({letters[c.run_id]}) is flagged unstable: its step time never "
                    "settled within measure.max_seconds"
                    for c in unstable
                ]
            )
        )
    return section


def _all_cells(cells: Sequence[CellView], letters: dict[str, str]) -> Section:
    section = Section("cells", "All cells")
    axes = [a for a in axes_of(c.key for c in cells)]
    shown = _varying(cells, axes) or [a for a in ("framework", "device") if a in axes]
    fixed = [a for a in axes if a not in shown]
    if fixed and cells:
        section.blocks.append(
            Paragraph(f"Same in every cell: {key_label(cells[0].key, fixed, ', ')}")
        )
    # One column per metric field the registry shows in comparisons, where some cell has it.
    columns: list[tuple[str, Callable[[CellView], str]]] = [
        (f.column or f.name, lambda c, f=f: fmt_value(c.number(f.name), f.unit))
        for _, f in metric_fields()
        if f.compare
    ]
    columns = [(h, f) for h, f in columns if any(f(c) != "-" for c in cells)]
    ordered = sorted(
        cells,
        key=lambda c: (
            *(str(c.key.get(a)) for a in shown if a != "batch_size"),
            float(c.key.get("batch_size") or 0),
            c.host.label,
        ),
    )
    rows = [
        [
            letters[c.run_id],
            c.host.label,
            *(value_text(a, c.key.get(a)) for a in shown),
            c.status,
            *(f(c) if c.ok else "" for _, f in columns),
        ]
        for c in ordered
    ]
    headers = [
        "run",
        "host",
        *(BY_NAME[a].header if a in BY_NAME else a for a in shown),
        "status",
        *(h for h, _ in columns),
    ]
    numbers = [a in BY_NAME and BY_NAME[a].where == "number" for a in shown]
    numeric = [False, False, *numbers, False, *(True for _ in columns)]
    section.blocks.append(TableBlock(headers, rows, numeric, status_column=2 + len(shown)))
    return section


def _env_rows(runset: RunSet) -> list[tuple[str, Callable[[dict[str, Any], Any], str]]]:
    def env(meta: dict[str, Any]) -> dict[str, Any]:
        return meta.get("environment") or {}

    def pkg(name: str) -> Callable[[dict[str, Any], Any], str]:
        return lambda m, h: str((env(m).get("packages") or {}).get(name) or "-")

    def accelerators(meta: dict[str, Any], host: Any) -> str:
        found = env(meta).get("accelerators") or []
        if not found:
            return "none"
        return "; ".join(
            " ".join(
                str(a.get(k))
                for k in ("name", "accelerator_type", "driver_version", "memory_bytes")
                if a.get(k) is not None
            )
            for a in found
        )

    def git(meta: dict[str, Any], host: Any) -> str:
        state = env(meta).get("git") or {}
        commit = state.get("commit")
        if not commit:
            return "-"
        return f"{str(commit)[:12]}{' (dirty)' if state.get('dirty') else ''}"

    return [
        (
            "scenario",
            lambda m, h: (
                f"{m.get('scenario', {}).get('name', '?')} "
                f"({m.get('scenario', {}).get('path', '?')})"
            ),
        ),
        ("status", lambda m, h: str(m.get("status", "?"))),
        (
            "started / finished",
            lambda m, h: f"{m.get('started_at', '?')} / {m.get('finished_at') or '-'}",
        ),
        ("host", lambda m, h: f"{h.label} ({h.hostname})"),
        ("CPU", lambda m, h: str((env(m).get("host") or {}).get("cpu_model", "?"))),
        (
            "cores (usable / logical)",
            lambda m, h: (
                f"{(env(m).get('host') or {}).get('cpu_count_usable', '?')} / "
                f"{(env(m).get('host') or {}).get('cpu_count_logical', '?')}"
            ),
        ),
        ("memory", lambda m, h: fmt_bytes((env(m).get("host") or {}).get("memory_bytes"))),
        ("accelerators", accelerators),
        ("OS", lambda m, h: str((env(m).get("os") or {}).get("platform", "?"))),
        ("Python", lambda m, h: str((env(m).get("python") or {}).get("version", "?"))),
        ("bench", lambda m, h: str(m.get("bench_version", "?"))),
        *((name, pkg(registry.spec(name).packages[0])) for name in registry.names()),
        ("numpy", pkg("numpy")),
        ("git commit", git),
        ("overrides", lambda m, h: " ".join(m.get("scenario", {}).get("overrides") or []) or "-"),
    ]


def _environment(runset: RunSet, letters: dict[str, str]) -> Section:
    section = Section("environment", "Environment of each run")
    headers = ["", *(f"{letters[r.run_id]}: {r.run_id}" for r in runset.runs)]
    rows = [
        [name, *(read(run.meta, host) for run, host in zip(runset.runs, runset.hosts, strict=True))]
        for name, read in _env_rows(runset)
    ]
    section.blocks.append(TableBlock(headers, rows, [False] * len(headers)))
    return section


def _any_parity(cells: Sequence[CellView]) -> bool:
    from bench.read.parity import has_parity

    return any(has_parity(c) for c in cells)


def build(runset: RunSet, objective: str = "throughput") -> Report:
    """Every section of the report, from the runs given (in the order given)."""
    cells, superseded = latest_per_host(runset.cells, runset)
    letters = dict(zip((r.run_id for r in runset.runs), run_labels(len(runset.runs)), strict=True))
    runs = [f"{letters[r.run_id]} = {r.run_id}" for r in runset.runs]
    subtitle = f"{len(runset.runs)} run(s): {join_words(runs)}"
    names = sorted({str(c.key.get("model")) for c in cells})
    sections = [
        _summary(runset, cells, superseded, objective),
        _throughput(cells),
        _percentiles(cells),
        _cost_energy(cells),
        _mfu(cells),
        _pareto(cells),
        *([_serving(serving)] if (serving := _serve_cells(cells)) else []),
        # Only where some predict cell measured parity: reports of older runs stay as they were.
        *([_parity(cells)] if _any_parity(cells) else []),
        _input_bound(cells, letters),
        # Only where some cell was profiled: reports of other runs stay as they were.
        *([_profiles(cells, letters)] if any(c.record.get("profile") for c in cells) else []),
        _problems(cells, letters),
        _all_cells(cells, letters),
        _environment(runset, letters),
    ]
    return Report(f"bench report: {', '.join(names) or 'no cells'}", subtitle, sections)

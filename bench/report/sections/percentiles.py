"""Step-time percentiles: per model and workload, a spread plot and a table of each cell's
timed steps (serve cells have no step time of their own: the serving section shows them)."""

from __future__ import annotations

from bench.metrics import value_of
from bench.read.runset import CellView
from bench.report import svg
from bench.report.document import Block, Heading, Paragraph, PlotBlock, TableBlock
from bench.report.format import fmt_value
from bench.report.sections.base import Context, ReportSection
from bench.report.sections.common import Namer, colors, groups, in_order, offline, ok_cells, slug

PERCENTILES = ("p50", "p90", "p95", "p99")
HEADERS = ["cell", "n", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms", "CV", "outliers", "flags"]
NUMERIC = [False, True, True, True, True, True, True, True, True, False]


def _spread(cell: CellView, namer: Namer, color: str) -> svg.Spread:
    """min to max as the line, the percentiles as the band (a missing end: the band's end)."""
    steps = cell.metrics.get("step_time_s", {})
    marks = tuple((p, v * 1e3) for p in PERCENTILES if (v := value_of(steps, p)))
    low, high = value_of(steps, "min"), value_of(steps, "max")
    return svg.Spread(
        namer.cell(cell),
        (low or marks[0][1] / 1e3) * 1e3,
        (high or marks[-1][1] / 1e3) * 1e3,
        marks,
        color,
    )


def _row(cell: CellView, namer: Namer) -> list[str]:
    steps = cell.metrics.get("step_time_s", {})
    high = value_of(steps, "max")
    cv = value_of(steps, "cv")
    return [
        namer.cell(cell),
        str(steps.get("n", "-")),
        *(fmt_value(cell.number(f"{p}_ms"), "ms") for p in PERCENTILES),
        fmt_value(None if high is None else high * 1e3, "ms"),
        "-" if cv is None else f"{cv:.2f}",
        str(steps.get("outliers", "-")),
        ", ".join(cell.flags),
    ]


def render(ctx: Context) -> list[Block]:
    intro = Paragraph(
        "Each row is one cell's timed steps: the thin line spans min to max, the band p50 "
        "to p99. A long band is a heavy tail: the p99 latency a batch job or SLO sees."
    )
    plots: list[Block] = []
    tables: list[Block] = []
    for (model, workload), group in groups(offline(ctx.cells)).items():
        ok = [c for c in ok_cells(group) if c.number("p50_ms") is not None]
        if not ok:
            continue
        namer = Namer(ok)
        ordered = in_order(ok, namer)
        palette = colors([namer.series(c) for c in ordered])
        spreads = [_spread(c, namer, palette[namer.series(c)]) for c in ordered]
        title = f"{model} {workload}: step time (ms)"
        plots.append(
            PlotBlock(
                slug("percentiles", model, workload), title, svg.spread_plot(title, spreads, "ms")
            )
        )
        tables.append(Heading(f"{model} {workload}"))
        rows = [_row(c, namer) for c in ordered]
        tables.append(TableBlock(list(HEADERS), rows, list(NUMERIC)))
    return [intro, *plots, *tables]


SECTION = ReportSection("percentiles", "Step-time percentiles", render)

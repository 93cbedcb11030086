"""Pareto frontiers: throughput vs p99 latency, and cost vs throughput, per model and workload,
with the frontier cells named."""

from __future__ import annotations

from collections.abc import Sequence

from bench.read.recommend import objectives, pareto
from bench.read.runset import CellView
from bench.report import svg
from bench.report.document import Block, Bullets, Heading, Paragraph, PlotBlock
from bench.report.format import fmt_value
from bench.report.sections.base import Context, ReportSection
from bench.report.sections.common import Namer, groups, ok_cells, per_example, slug


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


def _latency_front(
    model: str, workload: str, scored: list[CellView], namer: Namer
) -> tuple[PlotBlock, str]:
    """Throughput vs p99: the plot, and the frontier cells in a sentence."""
    front = pareto(scored, objectives()["throughput"])
    plot = _frontier_plot(
        slug("pareto-latency", model, workload),
        f"{model} {workload}: throughput vs p99 latency",
        scored,
        front,
        namer,
        ("p99_ms", "p99 step time (ms)"),
        ("examples_per_s", "examples/s"),
    )
    note = f"{model} {workload}, throughput vs p99: " + "; ".join(
        f"{namer.cell(c)} ({fmt_value(c.number('examples_per_s'), 'examples/s')}"
        f" examples/s, p99 {fmt_value(c.number('p99_ms'), 'ms')} ms)"
        for c in front
    )
    return plot, note


def _cost_front(
    model: str, workload: str, costed: list[CellView], namer: Namer
) -> tuple[PlotBlock, str]:
    """Cost vs throughput: the plot, and the frontier cells in a sentence."""
    front = pareto(costed, objectives()["cost"])
    note = f"{model} {workload}, cost vs throughput: " + "; ".join(
        f"{namer.cell(c)} ({fmt_value(c.number('cost_usd_per_million'), 'USD')} USD"
        f" per 1M, {fmt_value(c.number('examples_per_s'), 'examples/s')} examples/s)"
        for c in front
    )
    plot = _frontier_plot(
        slug("pareto-cost", model, workload),
        f"{model} {workload}: cost vs throughput",
        costed,
        front,
        namer,
        ("examples_per_s", "examples/s"),
        ("cost_usd_per_million", "USD per 1M examples"),
    )
    return plot, note


def render(ctx: Context) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            "A cell is on the frontier when no other cell is better on both axes: every other "
            "cell is a worse deal than some frontier cell. Throughput vs p99 latency for "
            "latency-bound work; cost vs throughput for budget-bound work."
        )
    ]
    notes: list[str] = []
    # Generate cells have no examples/s: their trade-offs are in their own section.
    cells = per_example(ok_cells(ctx.cells))
    for (model, workload), group in groups(cells).items():
        namer = Namer(group)
        scored = [c for c in group if c.number("p99_ms") is not None]
        if scored:
            plot, note = _latency_front(model, workload, scored, namer)
            blocks.append(plot)
            notes.append(note)
        costed = [c for c in group if c.number("cost_usd_per_million") is not None]
        if costed:
            plot, note = _cost_front(model, workload, costed, namer)
            blocks.append(plot)
            notes.append(note)
    if notes:
        blocks += [Heading("Frontier cells"), Bullets(notes)]
    if not any(c.number("cost_usd_per_million") is not None for c in cells):
        blocks.append(Paragraph("No cost vs throughput frontier: no cell has a cost.", "muted"))
    return blocks


def applies(ctx: Context) -> bool:
    """Every report but one of generate cells only (they have no examples/s)."""
    return not ctx.cells or bool(per_example(ctx.cells))


SECTION = ReportSection("pareto", "Pareto frontiers", render, applies)

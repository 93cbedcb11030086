"""Throughput vs batch size: one log-log plot per model and workload, a line per series."""

from __future__ import annotations

from bench.read.runset import CellView
from bench.report import svg
from bench.report.document import Block, Paragraph, PlotBlock
from bench.report.sections.base import Context, ReportSection
from bench.report.sections.common import Namer, colors, groups, in_order, offline, ok_cells, slug


def _plot(model: str, workload: str, ok: list[CellView]) -> PlotBlock:
    namer = Namer(ok)
    by_series: dict[str, list[CellView]] = {}
    for cell in in_order(ok, namer):
        by_series.setdefault(namer.series(cell), []).append(cell)
    palette = colors(list(by_series))
    series = [
        svg.Series(
            name,
            [
                svg.Point(float(c.key["batch_size"]), c.number("examples_per_s") or 0.0)
                for c in members
            ],
            palette[name],
            marker=svg.MARKERS[i % len(svg.MARKERS)],
        )
        for i, (name, members) in enumerate(by_series.items())
    ]
    batches = sorted({float(c.key["batch_size"]) for c in ok})
    title = f"{model} {workload}: throughput vs batch size"
    return PlotBlock(
        slug("throughput", model, workload),
        title,
        svg.xy_plot(
            title,
            series,
            svg.Axis("batch size", log=True, ticks=batches, base=2),
            svg.Axis("examples/s", log=True),
        ),
    )


def render(ctx: Context) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            "Examples per second (batch size / median step time) per device and framework; "
            "both axes logarithmic. A flattening line means a bigger batch no longer buys speed."
        )
    ]
    for (model, workload), group in groups(offline(ctx.cells)).items():
        ok = ok_cells(group)
        if ok:
            blocks.append(_plot(model, workload, ok))
    return blocks


SECTION = ReportSection("throughput", "Throughput vs batch size", render)

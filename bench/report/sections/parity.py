"""Prediction parity: speed-up against agreement with the float32 CPU reference, one point per
predict cell. Only in reports of runs where some predict cell measured parity: reports of older
runs stay as they were."""

from __future__ import annotations

from bench.read.parity import ParityPoint, has_parity, parity_points
from bench.report import svg
from bench.report.document import Block, Bullets, Heading, Paragraph, PlotBlock, TableBlock
from bench.report.format import fmt_value
from bench.report.sections.base import Context, ReportSection
from bench.report.sections.common import (
    Namer,
    colors,
    method,
    missing_paragraph,
    ok_cells,
    slug,
)


def _sci(value: float | None) -> str:
    return "-" if value is None else ("0" if value == 0 else f"{value:.2e}")


def _plot(
    model: str, workload: str, group: list[ParityPoint], namer: Namer, classify: bool
) -> PlotBlock | None:
    """Speed-up (x) against top-1 agreement for a classifier, else against the largest
    difference; None when no point has both."""
    y_field, y_label = (
        ("top1_agreement", "top-1 agreement")
        if classify
        else ("parity_max_abs", "max |output - reference|")
    )
    plotted = [p for p in group if p.speedup is not None and p.cell.number(y_field) is not None]
    if not plotted:
        return None
    palette = colors([namer.series(p.cell) for p in plotted])
    series = [
        svg.Series(
            name,
            [
                svg.Point(p.speedup, p.cell.number(y_field) or 0.0, namer.cell(p.cell))
                for p in plotted
                if namer.series(p.cell) == name
            ],
            palette[name],
            line=False,
            labels=True,
        )
        for name in palette
    ]
    title = f"{model} {workload}: speed-up vs {y_label}"
    return PlotBlock(
        slug("parity", model, workload),
        title,
        svg.xy_plot(
            title,
            series,
            svg.Axis("speed-up over float32 on the CPU (x)", log=True),
            svg.Axis(y_label, log=not classify),
        ),
    )


def _table(group: list[ParityPoint], namer: Namer, classify: bool) -> TableBlock:
    ordered = sorted(group, key=lambda p: (namer.series(p.cell), p.cell.key.get("batch_size") or 0))
    rows = [
        [
            namer.cell(p.cell),
            fmt_value(p.cell.number("examples_per_s"), "examples/s"),
            f"{p.speedup:.2f}x" if p.speedup is not None else "- (no float32 CPU cell)",
            _sci(p.cell.number("parity_max_abs")),
            _sci(p.cell.number("parity_mean_abs")),
            fmt_value(p.cell.number("top1_agreement")) if classify else "-",
        ]
        for p in ordered
    ]
    return TableBlock(
        ["cell", "examples/s", "speed-up", "max |diff|", "mean |diff|", "top-1 agree"],
        rows,
        [False, True, True, True, True, True],
    )


def render(ctx: Context) -> list[Block]:
    intro = Paragraph(
        "Every predict cell of a run starts from the same float32 weights and predicts the "
        "same evaluation set; these are how far its outputs are from the float32 CPU "
        "reference, next to the speed its precision, framework or converter bought. "
        "Speed-up: throughput over the same cell in float32 on the CPU (its baseline, 1x)."
    )
    points = parity_points(ctx.cells)
    if not points:
        cells = ok_cells(ctx.cells)
        return [intro, missing_paragraph("prediction parity", cells, ["parity_max_abs"])]
    by_group: dict[tuple[str, str], list[ParityPoint]] = {}
    for p in points:
        by_group.setdefault(
            (str(p.cell.key.get("model")), str(p.cell.key.get("workload"))), []
        ).append(p)
    plots: list[Block] = []
    tables: list[Block] = []
    for (model, workload), group in sorted(by_group.items()):
        namer = Namer([p.cell for p in group])
        classify = any(p.cell.number("top1_agreement") is not None for p in group)
        plot = _plot(model, workload, group, namer, classify)
        if plot is not None:
            plots.append(plot)
        tables += [Heading(f"{model} {workload}"), _table(group, namer, classify)]
        methods = dict.fromkeys(method(p.cell, "parity_max_abs") for p in group)
        methods.pop("-", None)
        if methods:
            tables.append(Bullets([f"parity: {m}" for m in methods]))
    return [intro, *plots, *tables]


def applies(ctx: Context) -> bool:
    return any(has_parity(c) for c in ctx.cells)


SECTION = ReportSection("parity", "Prediction parity: speed against agreement", render, applies)

"""Model FLOPs utilisation: achieved FLOP/s over the device's peak, per cell, with the peak's
source once per distinct one."""

from __future__ import annotations

from bench.read.runset import CellView
from bench.report.document import Block, Bullets, Heading, Paragraph, TableBlock
from bench.report.format import fmt_value
from bench.report.sections.base import Context, ReportSection
from bench.report.sections.common import (
    Namer,
    bars,
    groups,
    in_order,
    method,
    missing_paragraph,
    ok_cells,
    slug,
)


def _tflops(entry: object, name: str) -> str:
    value = entry.get(name) if isinstance(entry, dict) else None
    return fmt_value(value / 1e12 if isinstance(value, int | float) else None)


def _row(cell: CellView, namer: Namer) -> list[str]:
    entry = cell.metrics.get("mfu") or {}
    return [
        namer.cell(cell),
        fmt_value(cell.number("mfu_pct"), "%"),
        _tflops(entry, "achieved_flops_per_s"),
        _tflops(entry, "peak_flops_per_s"),
    ]


def render(ctx: Context) -> list[Block]:
    ok = ok_cells(ctx.cells)
    if not any(c.number("mfu_pct") is not None for c in ok):
        return [missing_paragraph("an MFU", ok, ["mfu"])]
    intro = Paragraph(
        "Achieved FLOP/s (analytic FLOPs per example x examples/s) over the device's peak: how "
        "much of the hardware the model uses. Low MFU at small batches is dispatch overhead."
    )
    plots: list[Block] = []
    tables: list[Block] = []
    for (model, workload), group in groups(ok).items():
        namer = Namer(group)
        title = f"{model} {workload}: MFU (%)"
        plot = bars(
            slug("mfu", model, workload), title, group, namer, "mfu_pct", "% of peak FLOP/s"
        )
        if plot is None:
            continue
        plots.append(plot)
        ordered = in_order(group, namer)
        tables.append(Heading(f"{model} {workload}"))
        tables.append(
            TableBlock(
                ["cell", "MFU %", "achieved TFLOP/s", "peak TFLOP/s"],
                [_row(c, namer) for c in ordered],
                [False, True, True, True],
            )
        )
        # the peak's source, once per distinct one rather than on every row
        peaks = dict.fromkeys(method(c, "peak_flops_per_s") for c in ordered)
        peaks.pop("-", None)
        if peaks:
            tables.append(Bullets([f"peak: {m}" for m in peaks]))
    return [intro, *plots, *tables]


SECTION = ReportSection("mfu", "Model FLOPs utilisation (MFU)", render)

"""Input-bound cells: those whose input pipeline, not the device, limits the step time."""

from __future__ import annotations

from bench.report.document import Block, Paragraph, TableBlock
from bench.report.format import fmt_value
from bench.report.sections.base import Context, ReportSection


def render(ctx: Context) -> list[Block]:
    flagged = [c for c in ctx.cells if "input_bound" in c.flags]
    if not flagged:
        return [
            Paragraph(
                "No cell is flagged input_bound. The flag marks cells whose input pipeline, not "
                "the device, limits the step time; runs that do not measure input stalls never "
                "set it.",
                "muted",
            )
        ]
    rows = [
        [
            ctx.letters[c.run_id],
            c.host.label,
            c.cell_id,
            fmt_value(c.number("examples_per_s"), "examples/s"),
            str(c.key.get("input")),
        ]
        for c in flagged
    ]
    return [
        TableBlock(
            ["run", "host", "cell", "examples/s", "input"], rows, [False, False, False, True, False]
        )
    ]


SECTION = ReportSection("input-bound", "Input-bound cells", render)

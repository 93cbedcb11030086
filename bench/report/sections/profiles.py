"""Where the time goes, per profiled cell (``measure.profile``): the breakdown read from the
trace of the steps run after the timed phase. Only in reports of runs with a profiled cell:
reports of other runs stay as they were."""

from __future__ import annotations

from bench.report.cell import TOP_OP_HEADERS, profile_lines, top_op_rows
from bench.report.document import Block, Bullets, Heading, Paragraph, TableBlock
from bench.report.sections.base import Context, ReportSection


def render(ctx: Context) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            "Steps traced under the framework's profiler after each cell's timed phase: the ops "
            "with the most self time and their share of all op time, and the share of the "
            "traced wall time the device (on a CPU, its compute threads) was running ops. "
            "Traced steps run slower than timed ones (the profiler records every op), so read "
            "shares, not absolute times. Trace folders are relative to each run's folder; "
            "docs/profiling.md says how to open them in XProf or TensorBoard.",
            "muted",
        )
    ]
    for c in ctx.cells:
        if not c.record.get("profile"):
            continue
        blocks.append(Heading(f"{c.cell_id} (run {ctx.letters[c.run_id]}, {c.host.label})"))
        blocks.append(Bullets(profile_lines(dict(c.record))))
        rows = top_op_rows(dict(c.record))
        if rows:
            blocks.append(
                TableBlock(
                    list(TOP_OP_HEADERS), [list(r) for r in rows], [False, False, True, True, False]
                )
            )
    return blocks


def applies(ctx: Context) -> bool:
    return any(c.record.get("profile") for c in ctx.cells)


SECTION = ReportSection("profiles", "Where the time goes (profiled cells)", render, applies)

"""Skipped, failed and invalid cells, with their reasons; cells that never settled."""

from __future__ import annotations

from bench.report.document import Block, Bullets, Paragraph, TableBlock
from bench.report.sections.base import Context, ReportSection

# The statuses the table lists, in its order.
PROBLEM_STATUSES = ("skipped", "failed", "oom", "timeout", "invalid")


def render(ctx: Context) -> list[Block]:
    letters = ctx.letters
    bad = [c for c in ctx.cells if c.status in PROBLEM_STATUSES]
    unstable = [c for c in ctx.cells if c.ok and "unstable" in c.flags]
    blocks: list[Block] = []
    if not bad:
        blocks.append(Paragraph("Every cell ran and passed its checks.", "muted"))
    else:
        order = {s: i for i, s in enumerate(PROBLEM_STATUSES)}
        bad.sort(key=lambda c: (order[c.status], c.run_index, c.cell_id))
        blocks.append(
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
        blocks.append(
            Bullets(
                [
                    f"{c.cell_id} ({letters[c.run_id]}) is flagged unstable: its step time never "
                    "settled within measure.max_seconds"
                    for c in unstable
                ]
            )
        )
    return blocks


SECTION = ReportSection("problems", "Skipped, failed and invalid cells", render)

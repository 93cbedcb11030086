"""All cells: one row per cell, a column per axis that varies and per metric field the registry
shows in comparisons (where some cell has it)."""

from __future__ import annotations

from collections.abc import Callable

from bench.axes import BY_NAME, key_label, value_text
from bench.metrics import fields as metric_fields
from bench.read.runset import CellView, axes_of
from bench.report.document import Block, Paragraph, TableBlock
from bench.report.format import fmt_value
from bench.report.sections.base import Context, ReportSection
from bench.report.sections.common import varying

Column = tuple[str, Callable[[CellView], str]]


def _metric_columns(cells: list[CellView]) -> list[Column]:
    """One column per metric field the registry shows in comparisons, where some cell has it."""
    columns: list[Column] = [
        (f.column or f.name, lambda c, f=f: fmt_value(c.number(f.name), f.unit))
        for _, f in metric_fields()
        if f.compare
    ]
    return [(h, f) for h, f in columns if any(f(c) != "-" for c in cells)]


def render(ctx: Context) -> list[Block]:
    cells = ctx.cells
    axes = [a for a in axes_of(c.key for c in cells)]
    shown = varying(cells, axes) or [a for a in ("framework", "device") if a in axes]
    fixed = [a for a in axes if a not in shown]
    blocks: list[Block] = []
    if fixed and cells:
        blocks.append(Paragraph(f"Same in every cell: {key_label(cells[0].key, fixed, ', ')}"))
    columns = _metric_columns(cells)
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
            ctx.letters[c.run_id],
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
    blocks.append(TableBlock(headers, rows, numeric, status_column=2 + len(shown)))
    return blocks


SECTION = ReportSection("cells", "All cells", render)

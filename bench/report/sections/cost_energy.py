"""Cost and energy per million examples: bar plots per model and workload, a table of each
cell's figures, and the distinct price and energy sources once under each table."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bench.metrics import value_of
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
    per_example,
    slug,
)

Column = tuple[str, Callable[[CellView], str]]

# (field, plot label, unit, file stem) of the two bar plots per group
PLOTS = (
    ("cost_usd_per_million", "cost per 1M examples", "USD per 1M examples", "cost"),
    ("energy_kwh_per_million", "energy per 1M examples", "kWh per 1M examples", "energy"),
)


def _price(cell: CellView) -> str:
    entry = cell.metrics.get("price_per_hour_usd")
    value = value_of(entry)
    if value is None or not isinstance(entry, dict):
        return "-"
    return f"${value:.4g}/h ({entry.get('price_entry', '?')})"


def _columns(has_cost: bool, has_energy: bool) -> list[Column]:
    # Per-cell method strings repeat the price entry with each throughput: the distinct
    # price and energy sources are listed once under the table instead (see _sources).
    columns: list[Column] = []
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
    return columns


def _sources(cells: Sequence[CellView], has_cost: bool, has_energy: bool) -> list[str]:
    sources = []
    if has_cost:
        sources += [
            f"price: {m}"
            for m in dict.fromkeys(method(c, "price_per_hour_usd") for c in cells)
            if m != "-"
        ]
    if has_energy:
        sources += [
            f"energy: {m}" for m in dict.fromkeys(method(c, "energy_j") for c in cells) if m != "-"
        ]
    return sources


def _plots(model: str, workload: str, group: list[CellView], namer: Namer) -> list[Block]:
    found: list[Block] = []
    for field_name, label, unit, stem in PLOTS:
        title = f"{model} {workload}: {label}"
        plot = bars(slug(stem, model, workload), title, group, namer, field_name, unit)
        if plot is not None:
            found.append(plot)
    return found


def render(ctx: Context) -> list[Block]:
    # Generate cells' cost is per million output tokens: in their own section (generation).
    ok = per_example(ok_cells(ctx.cells))
    has_cost = any(c.number("cost_usd_per_million") is not None for c in ok)
    has_energy = any(c.number("energy_kwh_per_million") is not None for c in ok)
    blocks: list[Block] = []
    if not has_cost:
        blocks.append(missing_paragraph("a cost", ok, ["cost_per_million_examples_usd"]))
    if not has_energy:
        blocks.append(missing_paragraph("an energy reading", ok, ["energy_per_example_j"]))
    if not (has_cost or has_energy):
        return blocks
    blocks.append(
        Paragraph(
            "Cost: the device's price per hour over the examples it processes in that hour "
            "(dated list prices, sources below each table). Energy: counter-based joules of the "
            "timed phase per example, as kWh per million examples."
        )
    )
    columns = _columns(has_cost, has_energy)
    plots: list[Block] = []
    tables: list[Block] = []
    for (model, workload), group in groups(ok).items():
        namer = Namer(group)
        plots += _plots(model, workload, group, namer)
        ordered = in_order(group, namer)
        tables.append(Heading(f"{model} {workload}"))
        tables.append(
            TableBlock(
                ["cell", *(h for h, _ in columns)],
                [[namer.cell(c), *(f(c) for _, f in columns)] for c in ordered],
                [False, *(h != "price" for h, _ in columns)],
            )
        )
        sources = _sources(ordered, has_cost, has_energy)
        if sources:
            tables.append(Bullets(sources))
    return [*blocks, *plots, *tables]


def applies(ctx: Context) -> bool:
    """Every report but one of generate cells only (they count tokens, not examples)."""
    return not ctx.cells or bool(per_example(ctx.cells))


SECTION = ReportSection("cost-energy", "Cost and energy per million examples", render, applies)

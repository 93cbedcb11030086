"""What several sections share: grouping cells by model and workload, short names and colours
for cells within a group, bar plots, and the sentences for what no cell measured."""

from __future__ import annotations

from collections.abc import Sequence

from bench.axes import BY_NAME, key_label
from bench.axes import label as axis_label
from bench.read.runset import CellView, axes_of
from bench.report import svg
from bench.report.document import Paragraph, PlotBlock
from bench.workloads.registry import find as find_workload
from bench.workloads.registry import is_offline


def throughput_of(workload: object) -> str:
    """The metric a workload's throughput is (``WorkloadSpec.throughput``); examples/s for a
    name no workload has (another bench's records)."""
    spec = find_workload(workload)
    return spec.throughput if spec is not None else "examples_per_s"


def groups(cells: Sequence[CellView]) -> dict[tuple[str, str], list[CellView]]:
    """Cells by (model, workload), in sorted order: one plot or table each."""
    out: dict[tuple[str, str], list[CellView]] = {}
    for cell in cells:
        ident = (str(cell.key.get("model", "?")), str(cell.key.get("workload", "?")))
        out.setdefault(ident, []).append(cell)
    return {k: out[k] for k in sorted(out)}


def slug(*parts: str) -> str:
    """A file stem and HTML id from free text."""
    text = "-".join(parts).lower()
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")


def varying(cells: Sequence[CellView], axes: Sequence[str]) -> list[str]:
    """The axes, of ``axes``, whose value differs between some of the cells."""
    return [a for a in axes if len({str(c.key.get(a)) for c in cells}) > 1]


class Namer:
    """Short names for cells and series within a group: only what tells them apart."""

    def __init__(self, cells: Sequence[CellView]):
        axes = [a for a in axes_of(c.key for c in cells) if a not in ("model", "workload")]
        self.series_axes = [a for a in varying(cells, axes) if a != "batch_size"]
        if not self.series_axes:
            self.series_axes = [a for a in ("framework", "device") if a in axes]
        self.with_host = len({c.host.label for c in cells}) > 1

    def series(self, cell: CellView) -> str:
        text = key_label(cell.key, self.series_axes)
        return f"{text} @{cell.host.label}" if self.with_host else text

    def cell(self, cell: CellView) -> str:
        if BY_NAME["batch_size"].is_fixed(cell.key):  # one request per example: no batch
            return self.series(cell)
        return f"{self.series(cell)} {axis_label('batch_size', cell.key.get('batch_size'))}"


def colors(names: Sequence[str]) -> dict[str, str]:
    """One palette colour per distinct name, in first-seen order."""
    ordered = list(dict.fromkeys(names))
    return {n: svg.PALETTE[i % len(svg.PALETTE)] for i, n in enumerate(ordered)}


def ok_cells(cells: Sequence[CellView]) -> list[CellView]:
    return [c for c in cells if c.ok]


def in_order(cells: Sequence[CellView], namer: Namer) -> list[CellView]:
    """By series, then by batch size: the order of a plot's points and a table's rows."""
    return sorted(cells, key=lambda c: (namer.series(c), float(c.key.get("batch_size") or 0)))


def per_example(cells: Sequence[CellView]) -> list[CellView]:
    """Cells whose throughput counts examples (every workload but generate, whose cells count
    output tokens and have their own section): what examples/s and cost per million examples
    mean something for."""
    return [c for c in cells if throughput_of(c.key.get("workload")) == "examples_per_s"]


def offline(cells: Sequence[CellView]) -> list[CellView]:
    """Cells whose step time and batch size mean something: not serve cells (see serving)."""
    return [c for c in cells if is_offline(c.key.get("workload"))]


def _reasons(cells: Sequence[CellView], metric_names: Sequence[str]) -> list[str]:
    """Distinct reasons the cells give for not having these metrics."""
    found: dict[str, None] = {}
    for cell in cells:
        for name in metric_names:
            entry = cell.metrics.get(name)
            if isinstance(entry, dict) and "unavailable" in entry:
                found[f"{name}: {entry['unavailable']}"] = None
    return list(found)


def missing_paragraph(what: str, cells: Sequence[CellView], names: Sequence[str]) -> Paragraph:
    """Why no cell has ``what``: the reasons the cells recorded, or that none measured it."""
    reasons = _reasons(cells, names)
    why = "; ".join(reasons) if reasons else f"these runs record no {' or '.join(names)}"
    return Paragraph(f"No cell has {what}: {why}.", "muted")


def bars(
    name: str,
    title: str,
    cells: Sequence[CellView],
    namer: Namer,
    field_name: str,
    unit: str,
) -> PlotBlock | None:
    """One bar per cell that has ``field_name``; None when none has it."""
    measured = [c for c in in_order(cells, namer) if c.number(field_name) is not None]
    if not measured:
        return None
    palette = colors([namer.series(c) for c in measured])
    shown = [
        svg.Bar(namer.cell(c), c.number(field_name) or 0.0, palette[namer.series(c)])
        for c in measured
    ]
    return PlotBlock(name, title, svg.bar_plot(title, shown, unit))


def method(cell: CellView, metric: str) -> str:
    """How the cell measured ``metric``, or why it could not; "-" without an entry."""
    entry = cell.metrics.get(metric)
    if not isinstance(entry, dict):
        return "-"
    return str(entry.get("unavailable") or entry.get("method") or "-")

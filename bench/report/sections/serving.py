"""Online serving (``workload: serve``): latency vs offered rate per configuration, with the SLO
line; realised batch size vs rate; and per cell the rate it can serve within the SLO and
whether it met its own SLO (``bench.read.slo``). Only in reports of runs with serve cells."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.read.runset import CellView
from bench.read.slo import Slo, describe_all, distinct, verdict
from bench.report import svg
from bench.report.document import Block, Heading, Paragraph, PlotBlock, TableBlock
from bench.report.format import fmt_value
from bench.report.sections.base import Context, ReportSection
from bench.report.sections.common import colors, ok_cells, slug, varying
from bench.workloads.registry import adds_section

# Short forms, as in cell ids, so legends stay within their column: "tensorflow mb32 to2".
_SERVE_PARTS = {"max_batch_size": "mb{}", "batch_timeout_ms": "to{:g}", "target_qps": "q{}"}
_SERVE_AXES = ("framework", "device", "precision", "arrivals", *_SERVE_PARTS, "endpoint")

HEADERS = [
    "configuration",
    "max QPS",
    "p99 ms",
    "SLO",  # the cell's own SLO and whether it met it at its reported rate: p95<=50ms ✓
    "mean batch",
    "queue ms",
    "compute ms",
    "generator late p99 ms",
    "rates",
]
# Endpoint cells (a model server over the network) add their errors and the server's
# overhead against the in-process cell at the same rate (docs/endpoints.md).
REMOTE_HEADERS = ["errors %", "server overhead ms"]


def serve_cells(cells: Sequence[CellView]) -> list[CellView]:
    return [
        c
        for c in ok_cells(cells)
        if adds_section(c.key.get("workload"), "serving") and c.record.get("serve")
    ]


def _names(cells: Sequence[CellView]) -> list[str]:
    """What tells serve cells apart: the axes that vary among them, short, and the host."""
    shown = varying(cells, _SERVE_AXES) or ["framework"]
    hosts = len({c.host.label for c in cells}) > 1
    names = []
    for c in cells:
        parts = [
            _SERVE_PARTS.get(a, "{}").format(c.key[a]) for a in shown if c.key.get(a) is not None
        ]
        names.append(" ".join(parts) + (f" @{c.host.label}" if hosts else ""))
    return names


def _row(cell: CellView, name: str, probes: list[dict[str, Any]], remote: bool) -> list[str]:
    return [
        name,
        fmt_value(cell.number("max_qps"), "requests/s"),
        fmt_value(cell.number("latency_p99_ms"), "ms"),
        verdict(cell.record) or "-",
        fmt_value(cell.number("mean_batch"), "requests"),
        fmt_value(cell.number("queue_ms"), "ms"),
        fmt_value(cell.number("compute_ms"), "ms"),
        fmt_value(cell.number("lateness_p99_ms"), "ms"),
        str(len({p["offered_qps"] for p in probes}) or 1),
        *(
            [
                fmt_value(cell.number("error_pct"), "%"),
                fmt_value(cell.number("server_overhead_ms"), "ms"),
            ]
            if remote
            else []
        ),
        cell.reason or ", ".join(cell.flags),
    ]


def _latency_plot(model: str, series: list[svg.Series], slos: list[Slo]) -> PlotBlock:
    """Each configuration's SLO-percentile latency against the offered rate, with each SLO as
    a dashed line across the measured rates (cells of several runs may state different ones)."""
    pct = slos[0].name if len({s.percentile for s in slos}) == 1 else "SLO-percentile"
    xs = [p.x for s in series for p in s.points]
    thresholds = [
        svg.Series(
            f"SLO {s.name} {s.latency_ms:g} ms",
            [svg.Point(min(xs), s.latency_ms), svg.Point(max(xs), s.latency_ms)],
            "#000000",
            dashed=True,
        )
        for s in slos
    ]
    title = f"{model} serve: {pct} latency vs offered rate"
    x_axis = svg.Axis("offered requests/s", log=True)
    y_axis = svg.Axis(f"{pct} latency (ms)", log=True)
    plot = svg.xy_plot(title, [*series, *thresholds], x_axis, y_axis)
    return PlotBlock(slug("serving-latency", model), title, plot)


def _batch_plot(model: str, series: list[svg.Series]) -> PlotBlock:
    title = f"{model} serve: realised batch size vs offered rate"
    x_axis = svg.Axis("offered requests/s", log=True)
    plot = svg.xy_plot(title, series, x_axis, svg.Axis("mean requests per batch"))
    return PlotBlock(slug("serving-batch", model), title, plot)


def _model_blocks(model: str, group: list[CellView]) -> list[Block]:
    """One model's plots and table: a point per offered rate, a row per configuration."""
    names = _names(group)
    palette = colors(names)
    slos = distinct([c.record for c in group])
    lat_series, batch_series, rows = [], [], []
    remote = any(c.key.get("endpoint", "in_process") != "in_process" for c in group)
    for i, (cell, name) in enumerate(zip(group, names, strict=True)):
        probes = [p for p in cell.record["serve"]["probes"] if p.get("offered_qps")]
        marker = svg.MARKERS[i % len(svg.MARKERS)]
        lat = [
            svg.Point(p["offered_qps"], p["slo_latency_s"] * 1e3)
            for p in probes
            if p.get("slo_latency_s")
        ]
        sizes = [
            svg.Point(p["offered_qps"], p["batch_size"]["mean"])
            for p in probes
            if "batch_size" in p
        ]
        if lat:
            lat_series.append(svg.Series(name, lat, palette[name], marker=marker))
        if sizes:
            batch_series.append(svg.Series(name, sizes, palette[name], marker=marker))
        rows.append(_row(cell, name, probes, remote))
    blocks: list[Block] = []
    if lat_series:
        blocks.append(_latency_plot(model, lat_series, slos))
    if batch_series:
        blocks.append(_batch_plot(model, batch_series))
    blocks.append(Heading(f"{model} serve ({describe_all(slos) or 'no SLO recorded'})"))
    extra = REMOTE_HEADERS if remote else []
    numeric = [h not in ("configuration", "SLO") for h in HEADERS]
    numeric += [*(True for _ in extra), False]
    blocks.append(TableBlock([*HEADERS, *extra, "note"], rows, numeric))
    return blocks


def render(ctx: Context) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            "Each point is one offered rate, measured open loop: latency runs from a request's "
            "scheduled arrival to its result on the host, so queueing shows. The dashed line is "
            "the SLO; a configuration serves the rates left of where its line crosses it. Rates "
            "with dropped requests at the SLO percentile are left out of the latency plot. The "
            "SLO column says whether a cell met its own SLO at the rate it reports (its max "
            "QPS under a search, else its one rate): ✓ met, ✗ missed. "
            "Configurations are named as in cell ids: mb = max_batch_size, to = "
            "batch_timeout_ms."
        )
    ]
    by_model: dict[str, list[CellView]] = {}
    for cell in serve_cells(ctx.cells):
        by_model.setdefault(str(cell.key.get("model")), []).append(cell)
    for model, group in by_model.items():
        blocks += _model_blocks(model, group)
    return blocks


def applies(ctx: Context) -> bool:
    return bool(serve_cells(ctx.cells))


SECTION = ReportSection("serving", "Online serving: latency under load", render, applies)

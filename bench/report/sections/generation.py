"""Text generation (``workload: generate``): per model, time to first token and time per output
token (p50 and p99) against the offered request rate, a line per configuration, with the SLO's
limits as dashed lines; output tokens/s against the slot count per framework, scheduler and
precision; and a table of each cell's headline numbers with whether it met its own SLO
(``bench.read.slo``). Only in reports of runs with generate cells."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bench.read.runset import CellView
from bench.read.slo import Slo, describe_all, distinct, verdict
from bench.report import svg
from bench.report.document import Block, Heading, Paragraph, PlotBlock, TableBlock
from bench.report.format import fmt_value
from bench.report.sections.base import Context, ReportSection
from bench.report.sections.common import colors, ok_cells, slug, varying
from bench.workloads.registry import adds_section

ANCHOR = "generation"
# What tells generate configurations apart, in the order names read: "jax continuous 4 slots".
_NAME_AXES = (
    "framework", "device", "precision", "scheduler", "slots", "cache_len", "arrivals",
    "target_qps", "endpoint",
)  # fmt: skip
_PARTS = {"slots": "s{}", "cache_len": "c{}", "target_qps": "q{}"}
# A legend column of 28 characters: "tensorflow continuous s16" whole.
_WIDE = {"width": 800, "right": 250}
# Each series of the tokens/s plot is one of these (and whatever else varies but the slots).
_SERIES_AXES = ("framework", "scheduler", "precision")
# (probe entry, word, the SLO limit that bounds it) of the two latency plots.
_LATENCIES = (("ttft_s", "TTFT", "ttft_ms"), ("tpot_s", "TPOT", "tpot_ms"))

HEADERS = [
    "configuration",
    "max QPS",
    "TTFT p50 ms",
    "TTFT p99 ms",
    "TPOT p50 ms",
    "TPOT p99 ms",
    "out tok/s",
    "goodput rps",
    "USD / 1M out tok",
    "SLO",  # the cell's own SLO and whether it met it at its reported load
    "rates",
    "note",
]
OVERHEAD_HEADERS = ["configuration", "TTFT overhead ms", "TPOT overhead ms"]
_FIELDS = (
    ("max_qps", "requests/s"),
    ("ttft_p50_ms", "ms"),
    ("ttft_p99_ms", "ms"),
    ("tpot_p50_ms", "ms"),
    ("tpot_p99_ms", "ms"),
    ("output_tokens_per_s", "tokens/s"),
    ("goodput_rps", "requests/s"),
    ("cost_usd_per_million", "USD"),  # per million output tokens on a generate cell
)


def generate_cells(cells: Sequence[CellView]) -> list[CellView]:
    return [
        c
        for c in ok_cells(cells)
        if adds_section(c.key.get("workload"), ANCHOR)
        and isinstance(c.record.get("generate"), dict)
    ]


def _names(cells: Sequence[CellView], axes: Sequence[str], fallback: Sequence[str]) -> list[str]:
    """Each cell by the ``axes`` that vary among ``cells`` (``fallback`` when none does), and
    its host where there are several."""
    shown = varying(cells, axes) or list(fallback)
    hosts = len({c.host.label for c in cells}) > 1
    names = []
    for c in cells:
        parts = [_PARTS.get(a, "{}").format(c.key[a]) for a in shown if c.key.get(a) is not None]
        names.append(" ".join(parts) + (f" @{c.host.label}" if hosts else ""))
    return names


def _rate_probes(cell: CellView) -> list[Mapping[str, Any]]:
    """The probes at an offered rate (the offline one bounds a search: it has no rate), by rate."""
    probes = cell.record["generate"].get("probes")
    found = [
        p
        for p in (probes if isinstance(probes, list) else [])
        if isinstance(p, Mapping) and _positive(p.get("offered_qps")) is not None
    ]
    return sorted(found, key=lambda p: p["offered_qps"])


def _positive(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) and value > 0 else None


def _ms(probe: Mapping[str, Any], entry: str, stat: str) -> float | None:
    """A probe's percentile in ms; None where a failed request landed on it (no number)."""
    spread = probe.get(entry)
    seconds = _positive(spread.get(stat)) if isinstance(spread, Mapping) else None
    return None if seconds is None else seconds * 1e3


def _slo_lines(slos: Sequence[Slo], limit: str, word: str, xs: list[float]) -> list[svg.Series]:
    return [
        svg.Series(
            f"SLO {word} {slo.name} {bound:g} ms",
            [svg.Point(min(xs), bound), svg.Point(max(xs), bound)],
            "#000000",
            dashed=True,
        )
        for slo in slos
        if (bound := getattr(slo, limit)) is not None
    ]


def _latency_plot(
    model: str, what: tuple[str, str, str], group: Sequence[CellView], slos: Sequence[Slo]
) -> PlotBlock | None:
    """One latency's p99 (solid, in the legend) and p50 (dashed, the same colour) against the
    offered rate per configuration, with the SLO limit on it (dashed, black) across the rates
    measured. Cells measured offline only have no rate, so no line."""
    entry, word, limit = what
    rated = [c for c in group if _rate_probes(c)]
    names = _names(rated, _NAME_AXES, ("framework",))
    palette = colors(names)
    series: list[svg.Series] = []
    for i, (cell, name) in enumerate(zip(rated, names, strict=True)):
        marker = svg.MARKERS[i % len(svg.MARKERS)]
        for stat, dashed in (("p99", False), ("p50", True)):
            points = [
                svg.Point(p["offered_qps"], ms)
                for p in _rate_probes(cell)
                if (ms := _ms(p, entry, stat)) is not None
            ]
            if points:
                series.append(
                    svg.Series(
                        name, points, palette[name], marker=marker, dashed=dashed, legend=not dashed
                    )
                )
    if not series:
        return None
    xs = [p.x for s in series for p in s.points]
    title = f"{model} generate: {word} vs offered rate"
    plot = svg.xy_plot(
        title,
        [*series, *_slo_lines(slos, limit, word, xs)],
        svg.Axis("offered requests/s", log=True),
        svg.Axis(f"{word} ms: p99 solid, p50 dashed", log=True),
        frame=svg.Frame(**_WIDE),
    )
    return PlotBlock(slug("generation", word, model), title, plot)


def _slots_plot(model: str, group: Sequence[CellView]) -> PlotBlock | None:
    """Output tokens/s at the reported load against the slot count, a line per framework,
    scheduler and precision (and whatever else varies but the slots)."""
    scored = [c for c in group if c.number("output_tokens_per_s") is not None]
    if not scored:
        return None
    axes = [a for a in _NAME_AXES if a != "slots"]
    names = _names(scored, axes, _SERIES_AXES)
    by_series: dict[str, list[svg.Point]] = {}
    for cell, name in zip(scored, names, strict=True):
        point = svg.Point(float(cell.key["slots"]), cell.number("output_tokens_per_s") or 0.0)
        by_series.setdefault(name, []).append(point)
    palette = colors(list(by_series))
    series = [
        svg.Series(
            name, sorted(points, key=lambda p: p.x), palette[name],
            marker=svg.MARKERS[i % len(svg.MARKERS)],
        )
        for i, (name, points) in enumerate(by_series.items())
    ]  # fmt: skip
    slots = sorted({float(c.key["slots"]) for c in scored})
    title = f"{model} generate: output tokens/s vs slots"
    plot = svg.xy_plot(
        title,
        series,
        svg.Axis("slots (sequences decoded together)", log=True, ticks=slots, base=2),
        svg.Axis("output tokens/s", log=True),
        frame=svg.Frame(**_WIDE),
    )
    return PlotBlock(slug("generation-slots", model), title, plot)


def _row(cell: CellView, name: str) -> list[str]:
    return [
        name,
        *(fmt_value(cell.number(f), unit) for f, unit in _FIELDS),
        verdict(cell.record) or "-",
        str(len(_rate_probes(cell)) or "offline"),
        cell.reason or ", ".join(cell.flags),
    ]


def _model_blocks(model: str, group: list[CellView]) -> list[Block]:
    """One model's plots and its table, a row per configuration."""
    group = sorted(group, key=lambda c: [str(c.key.get(a)) for a in _NAME_AXES])
    names = _names(group, _NAME_AXES, ("framework",))
    slos = distinct([c.record for c in group])
    blocks: list[Block] = []
    for what in _LATENCIES:
        plot = _latency_plot(model, what, group, slos)
        if plot is not None:
            blocks.append(plot)
    slots = _slots_plot(model, group)
    if slots is not None:
        blocks.append(slots)
    blocks.append(Heading(f"{model} generate ({describe_all(slos) or 'no SLO recorded'})"))
    numeric = [h not in ("configuration", "SLO", "note") for h in HEADERS]
    rows = [_row(c, n) for c, n in zip(group, names, strict=True)]
    blocks.append(TableBlock(HEADERS, rows, numeric))
    served = [
        (c, n) for c, n in zip(group, names, strict=True)
        if c.key.get("endpoint", "in_process") != "in_process"
    ]  # fmt: skip
    if served:
        blocks.append(
            Paragraph(
                "The server's overhead: an endpoint cell's median TTFT and TPOT minus those "
                "of its in-process twin (the same configuration but the endpoint) at the same "
                "offered rate; '-' where the run has no such twin at that rate."
            )
        )
        overhead = [
            [n, fmt_value(c.number("server_ttft_overhead_ms"), "ms"),
             fmt_value(c.number("server_tpot_overhead_ms"), "ms")]
            for c, n in served
        ]  # fmt: skip
        blocks.append(TableBlock(OVERHEAD_HEADERS, overhead, [False, True, True]))
    return blocks


def render(ctx: Context) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            "Each point is one offered request rate, measured open loop: time to first token "
            "(TTFT) runs from a request's scheduled arrival to its first token on the host, so "
            "queueing shows; time per output token (TPOT) is each request's (last token - first "
            "token) / (tokens - 1). Solid lines are the p99, dashed ones the p50; the black "
            "dashed line is the SLO's limit. A rate whose percentile landed on a failed request "
            "has no point. Output tokens/s are at each cell's reported load (its highest rate "
            "meeting the SLO under a search, else its one load). The SLO column says whether a "
            "cell met every limit of its own SLO there: ✓ met, ✗ missed; cost is per million "
            "output tokens."
        )
    ]
    by_model: dict[str, list[CellView]] = {}
    for cell in generate_cells(ctx.cells):
        by_model.setdefault(str(cell.key.get("model")), []).append(cell)
    for model, group in by_model.items():
        blocks += _model_blocks(model, group)
    return blocks


def applies(ctx: Context) -> bool:
    return bool(generate_cells(ctx.cells))


SECTION = ReportSection(ANCHOR, "Text generation: TTFT, TPOT and tokens/s", render, applies)

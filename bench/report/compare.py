"""Rendering of a ``bench.read.compare.Comparison``: terminal table, markdown, CSV and JSON.

Long format, one row per (group, metric): with a value, a ratio and an interval per run, a
wide table would not fit a terminal past two metrics. Every renderer takes its rows from
``rows()`` so the four formats always agree.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from rich import box
from rich.console import Group as RichGroup
from rich.table import Table
from rich.text import Text

from bench.axes import AXES, BY_NAME, key_label, value_text
from bench.read.compare import Comparison, Group, Ratio
from bench.report.format import fmt_ci, fmt_ratio, fmt_value, md_cell, md_escape

VERDICT_STYLE = {"better": "green", "worse": "red", "same": ""}
STATUS_STYLE = {
    "ok": "green",
    "skipped": "yellow",
    "missing": "yellow",
    "failed": "red",
    "oom": "red",
    "timeout": "red",
    "invalid": "magenta",
}


# Axis columns whose values are numbers, right-aligned.
NUMERIC_HEADERS = {a.header for a in AXES if a.where == "number"}


@dataclass(frozen=True)
class Row:
    group: int
    first: bool  # first row of its group: axis values are shown
    axes: tuple[str, ...]
    metric: str
    unit: str
    values: tuple[str, ...]  # per run, formatted (or a status)
    ratios: tuple[tuple[str, str, str], ...]  # per run after the first: ratio, CI, verdict
    statuses: tuple[str, ...]  # per run: ok / failed / missing ...


def varying_axes(cmp: Comparison) -> tuple[list[str], list[str]]:
    """Matching axes with more than one value among the groups, and the constant ones."""
    varying = [a for a in cmp.by if len({g.match[a] for g in cmp.groups}) > 1]
    return varying, [a for a in cmp.by if a not in varying]


def _ratio_cells(ratio: Ratio | None) -> tuple[str, str, str]:
    if ratio is None:
        return "-", "", ""
    return fmt_ratio(ratio.value), fmt_ci(ratio.ci_lo, ratio.ci_hi), ratio.verdict or ""


def _group_rows(index: int, group: Group, axes: list[str], n_runs: int) -> list[Row]:
    axis_values = tuple(value_text(a, group.match[a]) for a in axes)
    statuses = tuple(s.status for s in group.sides)
    rows = []
    if any(s != "ok" for s in statuses):
        rows.append(
            Row(
                index,
                True,
                axis_values,
                "status",
                "",
                statuses,
                (("", "", ""),) * (n_runs - 1),
                statuses,
            )
        )
    # With fewer than two measured sides there is nothing to compare: the status row and the
    # throughput say enough, and rows of "missing" would bury the groups that do compare.
    comparable = statuses.count("ok") >= 2 or n_runs == 1
    metrics = group.metrics if comparable else group.metrics[:1]
    for metric in metrics:
        values = tuple(
            fmt_value(v, metric.unit) if status == "ok" else status
            for v, status in zip(metric.values, statuses, strict=True)
        )
        rows.append(
            Row(
                index,
                not rows,
                axis_values,
                metric.label,
                metric.unit,
                values,
                tuple(_ratio_cells(r) for r in metric.ratios),
                statuses,
            )
        )
    return rows


def rows(cmp: Comparison) -> list[Row]:
    axes, _ = varying_axes(cmp)
    out: list[Row] = []
    for index, group in enumerate(cmp.groups):
        out.extend(_group_rows(index, group, axes, len(cmp.runs)))
    return out


def legend(cmp: Comparison) -> list[str]:
    """What the run letters mean, what was matched, and how to read the ratios."""
    lines = [
        f"{r.label} = {r.run_id}  ({r.scenario} on {r.host}: {r.host_description})"
        for r in cmp.runs
    ]
    _, fixed = varying_axes(cmp)
    matched = ", ".join(cmp.by) or "nothing"
    lines.append(f"matched on: {matched}")
    if fixed and cmp.groups:
        first = cmp.groups[0].match
        lines.append(f"same in every row: {key_label(first, fixed, ', ')}")
    for axis, values in cmp.differing.items():
        per_run = ", ".join(
            f"{r.label}: {value_text(axis, v)}" for r, v in zip(cmp.runs, values, strict=True)
        )
        lines.append(f"compared across runs: {axis} ({per_run})")
    if len(cmp.runs) > 1:
        base = cmp.runs[0].label
        lines.append(
            f"ratios are run / {base}; 95% CI from a seeded bootstrap of the raw step times; "
            "better/worse only where the whole CI lies beyond the noise threshold"
        )
        lines.append(cmp.noise_rule)
    return lines


def notes(cmp: Comparison) -> list[str]:
    """Reasons for cells that are not ok, unstable flags, and metrics nobody measured."""
    out = []
    for group in cmp.groups:
        for side in group.sides:
            label = cmp.runs[side.run].label
            if side.status not in ("ok", "missing"):
                out.append(f"{label} {side.cell_id}: {side.status}: {side.reason or 'no reason'}")
            elif side.flags:
                out.append(f"{label} {side.cell_id}: flagged {', '.join(side.flags)}")
    for field, reason in cmp.omitted.items():
        out.append(f"not shown, unavailable in every cell: {field} ({reason})")
    return out


def _headers(cmp: Comparison) -> tuple[list[str], list[str]]:
    axes, _ = varying_axes(cmp)
    base = cmp.runs[0].label if cmp.runs else "A"
    per_run = []
    for r in cmp.runs[1:]:
        per_run += [f"{r.label}/{base}", "95% CI", f"{r.label} vs {base}"]
    axis_names = [BY_NAME[a].header if a in BY_NAME else a for a in axes]
    return axis_names, ["metric", "unit", *(r.label for r in cmp.runs), *per_run]


def to_table(cmp: Comparison) -> RichGroup:
    """The terminal table with its legend and notes; colours mark better/worse and statuses."""
    axis_names, rest = _headers(cmp)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for name in axis_names:
        justify = "right" if name in NUMERIC_HEADERS else "left"
        table.add_column(name, justify=justify, no_wrap=True)
    table.add_column(rest[0], no_wrap=True)
    table.add_column(rest[1], no_wrap=True)
    for name in rest[2:]:
        table.add_column(name, justify="left" if " vs " in name else "right", no_wrap=True)
    all_rows = rows(cmp)
    for i, row in enumerate(all_rows):
        last_of_group = i + 1 == len(all_rows) or all_rows[i + 1].group != row.group
        values = [
            Text(v, style=STATUS_STYLE.get(s, ""))
            if s != "ok" or row.metric == "status"
            else Text(v)
            for v, s in zip(row.values, row.statuses, strict=True)
        ]
        ratio_cells = []
        for ratio, ci, verdict in row.ratios:
            style = VERDICT_STYLE.get(verdict, "")
            ratio_cells += [Text(ratio, style=style), Text(ci, style=style), Text(verdict, style)]
        table.add_row(
            *(row.axes if row.first else ("",) * len(row.axes)),
            row.metric,
            row.unit,
            *values,
            *ratio_cells,
            end_section=last_of_group and i + 1 < len(all_rows),
        )
    parts: list = [Text("\n".join(legend(cmp)), style="dim"), Text(""), table]
    found = notes(cmp)
    if found:
        parts += [Text(""), Text("\n".join(found), style="dim")]
    if not cmp.groups:
        parts.append(Text("no cells to compare (check --where)", style="yellow"))
    return RichGroup(*parts)


def to_markdown(cmp: Comparison) -> str:
    axis_names, rest = _headers(cmp)
    headers = [*axis_names, *rest]
    aligns = ["---:" if h in NUMERIC_HEADERS else "---" for h in axis_names] + ["---", "---"]
    aligns += ["---:"] * len(cmp.runs)
    aligns += ["---:", "---:", "---"] * (len(cmp.runs) - 1)
    lines = ["\n".join(f"- {md_escape(line)}" for line in legend(cmp)), ""]
    lines.append("| " + " | ".join(md_cell(h) for h in headers) + " |")
    lines.append("| " + " | ".join(aligns) + " |")
    for row in rows(cmp):
        ratio_cells = []
        for ratio, ci, verdict in row.ratios:
            shown = md_cell(ratio)
            bold = f"**{shown}**" if verdict in ("better", "worse") else shown
            ratio_cells += [bold, md_cell(ci), md_cell(verdict)]
        cells = [
            *(row.axes if row.first else ("",) * len(row.axes)),
            row.metric,
            row.unit,
            *row.values,
        ]
        lines.append("| " + " | ".join([*(md_cell(c) for c in cells), *ratio_cells]) + " |")
    found = notes(cmp)
    if found:
        lines += ["", *(f"- {md_escape(n)}" for n in found)]
    return "\n".join(lines) + "\n"


def to_csv(cmp: Comparison) -> str:
    """One line per (group, metric, run): plain numbers for spreadsheets and scripts."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            *cmp.by,
            "metric",
            "unit",
            "run",
            "run_id",
            "status",
            "value",
            "ratio",
            "ci95_lo",
            "ci95_hi",
            "verdict",
            "noise_threshold",
            "noise_source",
        ]
    )
    for group in cmp.groups:
        axes = [group.match[a] for a in cmp.by]
        for metric in group.metrics:
            for i, (side, value) in enumerate(zip(group.sides, metric.values, strict=True)):
                ratio = metric.ratios[i - 1] if i > 0 else None
                writer.writerow(
                    [
                        *axes,
                        metric.field,
                        metric.unit,
                        cmp.runs[i].label,
                        cmp.runs[i].run_id,
                        side.status,
                        "" if value is None else repr(value),
                        "" if ratio is None else repr(ratio.value),
                        "" if ratio is None or ratio.ci_lo is None else repr(ratio.ci_lo),
                        "" if ratio is None or ratio.ci_hi is None else repr(ratio.ci_hi),
                        "" if ratio is None else ratio.verdict or "",
                        "" if ratio is None or ratio.noise is None else repr(ratio.noise.band),
                        "" if ratio is None or ratio.noise is None else ratio.noise.source,
                    ]
                )
        if not group.metrics:
            for i, side in enumerate(group.sides):
                writer.writerow(
                    [
                        *axes,
                        "status",
                        "",
                        cmp.runs[i].label,
                        cmp.runs[i].run_id,
                        side.status,
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                    ]
                )
    return buffer.getvalue()


def to_json(cmp: Comparison) -> str:
    return json.dumps(cmp.to_dict(), indent=2) + "\n"

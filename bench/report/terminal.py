"""Terminal rendering (rich) of runs, cells, devices and models. Measuring code never renders;
this module only reads records."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bench.axes import AXES, BY_NAME, value_text
from bench.metrics import FieldDef, Metric, read_field, value_of
from bench.metrics import fields as metric_fields
from bench.read.runset import run_derived
from bench.read.scaling import resolved_replicas
from bench.read.slo import slo_met, slo_of, verdict
from bench.runfolder import ResultsError, Run
from bench.workloads.registry import find as find_workload

STATUS_STYLE = {
    "ok": "green",
    "skipped": "yellow",
    "failed": "red",
    "oom": "red",
    "timeout": "red",
    "invalid": "magenta",
}
# Derived from the key and the record: the replicas a cell ran on ("all" resolved) and both
# readings of its batch, so no table leaves the global/per-device question open. They stand
# where the batch_size axis would, and replace the replicas axis.
SPLIT_COLUMNS = ("replicas", "global batch", "per-device batch")
SPLIT_AXES = {"batch_size": SPLIT_COLUMNS, "replicas": ()}
# Every other axis of the registry gets a key column, in registry order.
KEY_COLUMNS = tuple(a.name for a in AXES if a.name not in SPLIT_AXES)
COLUMNS = tuple(c for a in AXES for c in SPLIT_AXES.get(a.name, (a.name,)))


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:,.0f}"


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def fmt_number(value: float | None, unit: str) -> str:
    """A metric field in a results table, by its unit."""
    if value is None:
        return "-"
    if unit == "ms":
        return fmt_ms(value / 1e3)
    if unit == "fraction":
        return f"{value:.2f}"
    return fmt_rate(value)


def cell_line(record: dict[str, Any]) -> Text:
    """One line per finished cell for the live log under the progress bar."""
    status = record["status"]
    line = Text()
    line.append({"ok": "✓ ", "skipped": "- "}.get(status, "✗ "), style=STATUS_STYLE.get(status, ""))
    line.append(record["cell_id"])
    metrics = record.get("metrics", {})
    if status == "ok":
        line.append(f"  {_headline(record)}", style="dim")
        wait = value_of(metrics.get("input_wait_fraction"))
        if wait is not None:
            line.append(f"  input wait {wait:.0%}", style="dim")
        for flag in record.get("flags", []):
            line.append(f"  {flag_note(record, flag)}", style="yellow")
    else:
        line.append(f"  {status}: {record.get('reason', '')}", style=STATUS_STYLE.get(status, ""))
    return line


def _headline(record: dict[str, Any]) -> str:
    """A finished cell's two numbers for the live log: examples/s and the median step; a
    cell of a workload whose throughput is not examples (generate) its own throughput and
    its TTFT p99."""
    metrics = record.get("metrics", {})
    spec = find_workload(record.get("key", {}).get("workload"))
    if spec is not None and spec.throughput == "output_tokens_per_s":
        tokens = value_of(metrics.get("output_tokens_per_s"))
        ttft = value_of(metrics.get("ttft_s"), "p99")
        return f"{fmt_rate(tokens)} tok/s  TTFT p99 {fmt_ms(ttft)} ms"
    rate = value_of(metrics.get("examples_per_s"))
    median = value_of(metrics.get("step_time_s"), "median")
    return f"{fmt_rate(rate)} ex/s  median {fmt_ms(median)} ms"


def split_of(record: dict[str, Any]) -> dict[str, str]:
    """Replicas (resolved, "all->4" when asked as "all"), global and per-device batch."""
    key = record["key"]
    parallel = record.get("parallelism") or {}
    requested = key.get("replicas", 1)
    n = resolved_replicas(record)
    replicas = str(requested) if not n else f"{requested}->{n}" if requested == "all" else str(n)
    per_device = parallel.get("per_device_batch_size")
    if per_device is None and n and key["batch_size"] % n == 0:
        per_device = key["batch_size"] // n
    return {
        "replicas": replicas,
        "global batch": str(parallel.get("global_batch_size", key["batch_size"])),
        "per-device batch": "-" if per_device is None else str(per_device),
    }


def flag_note(record: dict[str, Any], flag: str) -> str:
    """A flag with the number behind it: ``input_bound (61% of synthetic)``."""
    detail = record.get("metrics", {}).get(flag, {})
    if flag == "input_bound" and "share_of_synthetic" in detail:
        return f"{flag} ({detail['share_of_synthetic']:.0%} of synthetic)"
    if flag == "input_bound" and "input_wait_fraction" in detail:
        return f"{flag} (waits {detail['input_wait_fraction']:.0%} of step time)"
    return flag


def key_text(key: dict[str, Any], axis: str) -> str:
    """An axis value for a table; "-" where an axis does not apply (the pipeline of a cell that
    reads no tf.data pipeline; ``xla`` for JAX, which always compiles with XLA)."""
    known = BY_NAME.get(axis)
    if known is not None and (not known.applies_to(key) or known.is_fixed(key)):
        return "-"
    return value_text(axis, key.get(axis))


def _header(column: str) -> str:
    return BY_NAME[column].header if column in BY_NAME else column


def _distinct(values: list[dict[str, str]], name: str) -> set[str]:
    """The values a column would show, "-" (does not apply) aside."""
    return {v[name] for v in values} - {"-"}


def _metric_numbers(
    records: list[dict[str, Any]], shown: list[tuple[Metric, FieldDef]]
) -> list[dict[str, float | None]]:
    """Per record, the ``shown`` fields, the run-derived ones (scaling) included."""
    derived = run_derived(records)
    out = []
    for record in records:
        metrics = {**record.get("metrics", {}), **derived.get(record["cell_id"], {})}
        key = record.get("key", {})
        out.append(
            {
                f.name: read_field(metrics, m, f, key.get("device"), key.get("workload"))
                for m, f in shown
            }
        )
    return out


def cells_table(run: Run, planned: list[str] | None = None) -> RenderableType:
    """Axes that vary get a column each; the constant ones go in the caption to save width.

    The global and per-device batch always show (a column when they vary, else the caption);
    the metric columns are the registry's ``terminal`` fields (``bench.metrics``), those that
    exist only where they apply (scaling efficiency: a cell on more than one replica whose
    single-replica reference is in the run) only when some cell has them.
    """
    records = [run.cells[c] for c in (planned or list(run.cells)) if c in run.cells]
    values = [{**{k: key_text(r["key"], k) for k in KEY_COLUMNS}, **split_of(r)} for r in records]
    varying = [k for k in COLUMNS if len(_distinct(values, k)) > 1]
    # Records from before an axis existed lack it: "-", so the caption says nothing of it.
    fixed = {k: next(iter(_distinct(values, k))) for k in COLUMNS if len(_distinct(values, k)) == 1}
    caption = "  ".join(f"{_header(k)}={v}" for k, v in fixed.items())
    shown, numbers = _metric_columns(records)
    # Multi-host: each process's own median step time, in process order (the aggregate above is
    # bounded by the slowest).
    per_host = any(r.get("hosts") for r in records)
    # Input columns only when some cell measured its input (numpy or tfdata cells).
    inputs = any("input_wait_fraction" in r.get("metrics", {}) for r in records)
    # Serve cells that recorded an SLO: whether each met its own (bench.read.slo).
    slos = any(slo_of(r) is not None for r in records)
    reasons, notes = _notes(records)
    table = Table(
        title=f"run {run.run_id}", title_justify="left", caption=caption, caption_justify="left"
    )
    for name in varying:
        numeric = name in SPLIT_COLUMNS
        table.add_column(_header(name), justify="right" if numeric else "left")
    table.add_column("status")
    for _, f in shown:
        table.add_column(f.column or f.name, justify="right")
    if slos:
        table.add_column("SLO")
    if per_host:
        table.add_column("per-host median ms", justify="right")
    if inputs:
        table.add_column("input wait", justify="right")
        table.add_column("pipeline ex/s", justify="right")
    if any(notes):
        table.add_column("notes", overflow="fold", min_width=20)
    for record, value, note, number in zip(records, values, notes, numbers, strict=True):
        row = [
            *(value[k] for k in varying),
            status_text(record["status"]),
            *(fmt_number(number[f.name], f.unit) for _, f in shown),
            *([slo_text(record)] if slos else []),
            *_extra_cells(record, per_host, inputs),
        ]
        table.add_row(*row, *([note] if any(notes) else []))
    if not reasons:
        return table
    return Group(table, _legend(records, reasons))


def slo_text(record: dict[str, Any]) -> Text:
    """The SLO column: ``p95<=50ms ✓`` in green when the cell met its own SLO, ``✗`` in red
    when it missed it, ``-`` without an SLO."""
    met = slo_met(record)
    style = "" if met is None else "green" if met else "red"
    return Text(verdict(record) or "-", style=style)


def _metric_columns(
    records: list[dict[str, Any]],
) -> tuple[list[tuple[Metric, FieldDef]], list[dict[str, float | None]]]:
    """The registry's terminal fields, and each record's numbers for them. A field that exists
    only where it applies (scaling efficiency, vs the run's single-replica cells) shows only
    when some cell has it; so does any field once some cell is ok (a run of generate cells
    has no examples/s or step times: a column of dashes says nothing)."""
    shown = [(m, f) for m, f in metric_fields() if f.terminal]
    numbers = _metric_numbers(records, shown)
    some_ok = any(r.get("status") == "ok" for r in records)
    shown = [
        (m, f)
        for m, f in shown
        if any(n[f.name] is not None for n in numbers) or not (m.applies or some_ok)
    ]
    return shown, numbers


def _extra_cells(record: dict[str, Any], per_host: bool, inputs: bool) -> list[str]:
    """The per-host and input columns of one row, where the table has them."""
    cells = []
    if per_host:
        hosts = record.get("hosts") or []
        cells.append(" / ".join(fmt_ms(h.get("median_step_s")) for h in hosts) or "-")
    if inputs:
        metrics = record.get("metrics", {})
        wait = value_of(metrics.get("input_wait_fraction"))
        cells += [
            "-" if wait is None else f"{wait:.0%}",
            fmt_rate(value_of(metrics.get("pipeline_examples_per_s"))),
        ]
    return cells


def _notes(records: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The distinct reasons, and per record its note: flags, and its reason as [n].

    Reasons are listed once under the table, numbered: a sweep with no TPU has the same long
    reason on every TPU cell, and a column of them leaves no room for the numbers.
    """
    reasons = list(dict.fromkeys(r["reason"] for r in records if r.get("reason")))
    notes = []
    for record in records:
        parts = [flag_note(record, f) for f in record.get("flags", [])]
        if record.get("reason"):
            parts.insert(0, f"[{reasons.index(record['reason']) + 1}]")
        notes.append(", ".join(parts))
    return reasons, notes


def _legend(records: list[dict[str, Any]], reasons: list[str]) -> Text:
    """The numbered reasons, each with its cells' status and how many cells give it."""
    legend = Text()
    for number, reason in enumerate(reasons, 1):
        cells = [r for r in records if r.get("reason") == reason]
        status = cells[0]["status"]
        legend.append(f"[{number}] ", style="bold")
        legend.append(f"{status}", style=STATUS_STYLE.get(status, ""))
        legend.append(f" ({len(cells)} cell{'s' if len(cells) > 1 else ''}): {reason}\n")
    return legend


def runs_table(runs: list[Run | ResultsError]) -> Table:
    table = Table(title="runs", title_justify="left")
    for name in ("run id", "scenario", "status", "cells", "started (UTC)", "host"):
        table.add_column(name)
    for run in runs:
        if isinstance(run, ResultsError):
            table.add_row(Text(str(run), style="red"), "", "", "", "", "")
            continue
        statuses = [r["status"] for r in run.cells.values()]
        planned = len(run.meta.get("cells_planned", [])) or len(statuses)
        counts = f"{statuses.count('ok')} ok / {planned}"
        bad = sum(1 for s in statuses if s not in ("ok", "skipped"))
        if bad:
            counts += f", {bad} failed"
        env = run.meta.get("environment", {})
        table.add_row(
            run.run_id,
            run.meta["scenario"]["name"],
            run.meta.get("status", "?"),
            counts,
            run.meta.get("started_at", "?"),
            env.get("host", {}).get("cpu_model", "?"),
        )
    return table


def devices_table(inventory: dict[str, Any]) -> Table:
    table = Table(title=f"host CPU: {inventory['host']['cpu_model']}", title_justify="left")
    for name in ("framework", "device", "visible", "what it sees / why not"):
        table.add_column(name)
    for framework, answers in inventory["frameworks"].items():
        for answer in answers:
            seen = ", ".join(
                sorted({str(d.get("kind") or d.get("name")) for d in answer["devices"]})
            )
            count = len(answer["devices"])
            detail = f"{count} x {seen}" if answer["present"] else answer["reason"]
            version = f" {answer['version']}" if answer.get("version") else ""
            table.add_row(
                f"{framework}{version}",
                answer["device"],
                Text("yes", style="green") if answer["present"] else Text("no", style="yellow"),
                detail,
            )
    return table

"""Terminal rendering (rich) of runs, cells, devices and models. Measuring code never renders;
this module only reads records."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bench.backends import registry
from bench.metrics import value_of
from bench.read.scaling import resolved_replicas, scaling_efficiency
from bench.results import ResultsError, Run

STATUS_STYLE = {
    "ok": "green",
    "skipped": "yellow",
    "failed": "red",
    "oom": "red",
    "timeout": "red",
    "invalid": "magenta",
}
KEY_COLUMNS = (
    "workload",
    "framework",
    "device",
    "precision",
    "input",
    "pipeline",
    "xla",
    "steps_per_call",
)
# Derived from the key and the record: the replicas a cell ran on ("all" resolved) and both
# readings of its batch, so no table leaves the global/per-device question open.
SPLIT_COLUMNS = ("replicas", "global batch", "per-device batch")


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:,.0f}"


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def cell_line(record: dict[str, Any]) -> Text:
    """One line per finished cell for the live log under the progress bar."""
    status = record["status"]
    line = Text()
    line.append({"ok": "✓ ", "skipped": "- "}.get(status, "✗ "), style=STATUS_STYLE.get(status, ""))
    line.append(record["cell_id"])
    metrics = record.get("metrics", {})
    if status == "ok":
        rate = value_of(metrics.get("examples_per_s"))
        median = value_of(metrics.get("step_time_s"), "median")
        line.append(f"  {fmt_rate(rate)} ex/s  median {fmt_ms(median)} ms", style="dim")
        wait = value_of(metrics.get("input_wait_fraction"))
        if wait is not None:
            line.append(f"  input wait {wait:.0%}", style="dim")
        for flag in record.get("flags", []):
            line.append(f"  {flag_note(record, flag)}", style="yellow")
    else:
        line.append(f"  {status}: {record.get('reason', '')}", style=STATUS_STYLE.get(status, ""))
    return line


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
    reads no tf.data pipeline; ``xla`` for a backend that always compiles with XLA: JAX)."""
    if axis == "pipeline" and axis not in key:
        return "-"
    if axis == "xla":
        spec = registry.find(str(key.get("framework")))
        if spec is not None and spec.always_xla:
            return "-"
    return str(key.get(axis))


def _distinct(values: list[dict[str, str]], name: str) -> set[str]:
    """The values a column would show, "-" (does not apply) aside."""
    return {v[name] for v in values} - {"-"}


def cells_table(run: Run, planned: list[str] | None = None) -> RenderableType:
    """Axes that vary get a column each; the constant ones go in the caption to save width.

    The global and per-device batch always show (a column when they vary, else the caption);
    a scaling-efficiency column appears when some cell ran on more than one replica and its
    single-replica reference is in the run.
    """
    records = [run.cells[c] for c in (planned or list(run.cells)) if c in run.cells]
    splits = [split_of(r) for r in records]
    values = [
        {**{k: key_text(r["key"], k) for k in KEY_COLUMNS}, **split}
        for r, split in zip(records, splits, strict=True)
    ]
    names = (*KEY_COLUMNS[:3], *SPLIT_COLUMNS, *KEY_COLUMNS[3:])
    varying = [k for k in names if len(_distinct(values, k)) > 1]
    # Records from before an axis existed lack it: say nothing rather than "xla=None".
    fixed = {k: next(iter(_distinct(values, k))) for k in names if len(_distinct(values, k)) == 1}
    caption = "  ".join(f"{k}={v}" for k, v in fixed.items() if v != "None")
    efficiency = scaling_efficiency(records)
    kinds = [k for k in ("strong", "weak") if any(k in e for e in efficiency.values())]
    table = Table(
        title=f"run {run.run_id}", title_justify="left", caption=caption, caption_justify="left"
    )
    for name in varying:
        numeric = name in SPLIT_COLUMNS
        table.add_column(
            {"steps_per_call": "steps/call"}.get(name, name),
            justify="right" if numeric else "left",
        )
    table.add_column("status")
    table.add_column("examples/s", justify="right")
    table.add_column("median ms", justify="right")
    table.add_column("p99 ms", justify="right")
    # Strong: vs 1 replica on the same global batch; weak: vs 1 replica on this per-device batch.
    headers = {"strong": "scaling (same global batch)", "weak": "scaling (same per-device batch)"}
    for kind in kinds:
        table.add_column(headers[kind], justify="right")
    # Multi-host: each process's own median step time, in process order (the aggregate above is
    # bounded by the slowest).
    per_host = any(r.get("hosts") for r in records)
    if per_host:
        table.add_column("per-host median ms", justify="right")
    # Input columns only when some cell measured its input (numpy or tfdata cells).
    inputs = any("input_wait_fraction" in r.get("metrics", {}) for r in records)
    if inputs:
        table.add_column("input wait", justify="right")
        table.add_column("pipeline ex/s", justify="right")
    # Reasons are listed once under the table, numbered: a sweep with no TPU has the same long
    # reason on every TPU cell, and a column of them leaves no room for the numbers.
    reasons = list(dict.fromkeys(r["reason"] for r in records if r.get("reason")))
    notes = []
    for record in records:
        parts = [flag_note(record, f) for f in record.get("flags", [])]
        if record.get("reason"):
            parts.insert(0, f"[{reasons.index(record['reason']) + 1}]")
        notes.append(", ".join(parts))
    if any(notes):
        table.add_column("notes", overflow="fold", min_width=20)
    for record, value, note in zip(records, values, notes, strict=True):
        metrics = record.get("metrics", {})
        steps = metrics.get("step_time_s")
        eff = efficiency.get(record["cell_id"], {})
        row = [
            *(value[k] for k in varying),
            status_text(record["status"]),
            fmt_rate(value_of(metrics.get("examples_per_s"))),
            fmt_ms(value_of(steps, "median")),
            fmt_ms(value_of(steps, "p99")),
            *(f"{eff[k]:.2f}" if k in eff else "-" for k in kinds),
        ]
        if per_host:
            hosts = record.get("hosts") or []
            row.append(" / ".join(fmt_ms(h.get("median_step_s")) for h in hosts) or "-")
        if inputs:
            wait = value_of(metrics.get("input_wait_fraction"))
            row += [
                "-" if wait is None else f"{wait:.0%}",
                fmt_rate(value_of(metrics.get("pipeline_examples_per_s"))),
            ]
        table.add_row(*row, *([note] if any(notes) else []))
    if not reasons:
        return table
    legend = Text()
    for number, reason in enumerate(reasons, 1):
        cells = [r for r in records if r.get("reason") == reason]
        status = cells[0]["status"]
        legend.append(f"[{number}] ", style="bold")
        legend.append(f"{status}", style=STATUS_STYLE.get(status, ""))
        legend.append(f" ({len(cells)} cell{'s' if len(cells) > 1 else ''}): {reason}\n")
    return Group(table, legend)


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

"""Terminal rendering (rich) of runs, cells, devices and models. Measuring code never renders;
this module only reads records."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from bench.metrics import value_of
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
    "batch_size",
    "precision",
    "input",
    "xla",
    "steps_per_call",
)


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
        if "unstable" in record.get("flags", []):
            line.append("  unstable", style="yellow")
    else:
        line.append(f"  {status}: {record.get('reason', '')}", style=STATUS_STYLE.get(status, ""))
    return line


def cells_table(run: Run, planned: list[str] | None = None) -> Table:
    """Axes that vary get a column each; the constant ones go in the caption to save width."""
    records = [run.cells[c] for c in (planned or list(run.cells)) if c in run.cells]
    varying = [k for k in KEY_COLUMNS if len({str(r["key"].get(k)) for r in records}) > 1]
    # Records from before an axis existed lack it: say nothing rather than "xla=None".
    fixed = [
        k
        for k in KEY_COLUMNS
        if k not in varying and records and records[0]["key"].get(k) is not None
    ]
    caption = "  ".join(f"{k}={records[0]['key'].get(k)}" for k in fixed)
    table = Table(
        title=f"run {run.run_id}", title_justify="left", caption=caption, caption_justify="left"
    )
    for name in varying:
        table.add_column(
            {"batch_size": "batch", "steps_per_call": "steps/call"}.get(name, name),
            justify="right" if name == "batch_size" else "left",
        )
    table.add_column("status")
    table.add_column("examples/s", justify="right")
    table.add_column("median ms", justify="right")
    table.add_column("p99 ms", justify="right")
    notes = [record.get("reason", "") or ", ".join(record.get("flags", [])) for record in records]
    if any(notes):
        table.add_column("notes", overflow="fold", min_width=20)
    for record, note in zip(records, notes, strict=True):
        metrics = record.get("metrics", {})
        steps = metrics.get("step_time_s")
        row = [
            *(str(record["key"].get(k, "")) for k in varying),
            status_text(record["status"]),
            fmt_rate(value_of(metrics.get("examples_per_s"))),
            fmt_ms(value_of(steps, "median")),
            fmt_ms(value_of(steps, "p99")),
        ]
        table.add_row(*row, *([note] if any(notes) else []))
    return table


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

"""One cell in detail, for ``bench results RUN --cell ID``: its key, status, every metric field
it has, and where its time went when it was profiled (``measure.profile``).

``profile_lines`` and ``top_op_rows`` are plain text and rows, shared with the HTML report's
"Where the time goes" section.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bench.metrics import fields as metric_fields
from bench.metrics import read_field
from bench.report.terminal import STATUS_STYLE, fmt_number, key_text

TOP_OP_HEADERS = ("op", "kind", "ms / step", "share", "from")


def profile_lines(record: dict[str, Any], run_path: str = "") -> list[str]:
    """What the profile block says, one sentence a line: where the trace is, how busy the
    device was, or why there is no breakdown."""
    profile = record.get("profile")
    if not profile:
        return ["not profiled (bench run --profile, or measure.profile: {steps: N})"]
    prefix = f"{run_path.rstrip('/')}/" if run_path else ""
    lines = [f"trace: {prefix}{profile['trace_dir']} ({profile.get('tool', '')})"]
    if "unavailable" in profile:
        return [*lines, f"no trace: {profile['unavailable']}"]
    if profile.get("program"):
        lines.append(f"optimized program: {prefix}{profile['program']}")
    elif profile.get("program_unavailable"):
        lines.append(f"no program text: {profile['program_unavailable']}")
    found = profile.get("breakdown")
    if not found:
        return [*lines, f"no breakdown: {profile.get('breakdown_unavailable', 'not recorded')}"]
    busy = found.get("busy_share")
    busy_text = "-" if busy is None else f"{busy:.0%}"
    lines.append(
        f"busy {busy_text} of {found['traced_wall_s'] * 1e3:.1f} ms wall time over "
        f"{found['traced_steps']} traced steps, on {found['scope']} ({found['lines']} lines); "
        f"{found['ops']} distinct ops"
    )
    return lines


def top_op_rows(record: dict[str, Any]) -> list[tuple[str, ...]]:
    """The profiled top ops: name, kind, self time per traced step (ms), share, source op."""
    found = (record.get("profile") or {}).get("breakdown") or {}
    steps = max(int(found.get("traced_steps") or 1), 1)
    return [
        (
            str(op["op"]),
            str(op.get("kind") or "-"),
            f"{op['self_s'] * 1e3 / steps:.3f}",
            f"{op['share']:.1%}",
            str(op.get("source") or "-"),
        )
        for op in found.get("top_ops", [])
    ]


def cell_detail(record: dict[str, Any], run_path: str = "") -> RenderableType:
    status = record["status"]
    head = Text(f"cell {record['cell_id']}  ")
    head.append(status, style=STATUS_STYLE.get(status, ""))
    if record.get("reason"):
        head.append(f": {record['reason']}")
    key = record.get("key", {})
    axes = Text("  ".join(f"{name}={key_text(key, name)}" for name in key), style="dim")

    metrics = record.get("metrics", {})
    device = key.get("device")
    table = Table(title="metrics", title_justify="left", box=None, show_header=False)
    table.add_column("field")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for m, f in metric_fields():
        value = read_field(metrics, m, f, device, key.get("workload"))
        if value is not None:
            table.add_row(f.name, fmt_number(value, f.unit), f.unit)
    parts: list[RenderableType] = [head, axes, table]
    compiles = metrics.get("compile_count") or {}
    if "unavailable" in compiles:
        parts.append(Text(f"compilations during the timed phase: {compiles['unavailable']}"))
    parts.append(Text("where the time goes", style="bold"))
    parts += [Text(f"  {line}") for line in profile_lines(record, run_path)]
    rows = top_op_rows(record)
    if rows:
        ops = Table(box=None)
        for i, header in enumerate(TOP_OP_HEADERS):
            ops.add_column(header, justify="right" if i in (2, 3) else "left", overflow="fold")
        for row in rows:
            ops.add_row(*row)
        parts.append(ops)
    return Group(*parts)

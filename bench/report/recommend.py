"""Rendering of a ``bench.read.recommend.Recommendation``: the plain-language explanation, the
terminal text, markdown, and the ``deploy.yaml`` a pipeline consumes."""

from __future__ import annotations

from typing import Any

import yaml
from rich.console import Group as RichGroup
from rich.table import Table
from rich.text import Text

from bench.axes import BY_NAME, MODEL
from bench.limits import load_yaml
from bench.metrics import METRICS, find_field
from bench.read.recommend import Binding, Choice, Closest, Recommendation, RunnerUp
from bench.read.runset import CellView, RunSet
from bench.report.format import fmt_ci, fmt_times, fmt_value, md_cell, md_escape
from bench.text import join_words
from bench.workloads.registry import find as find_workload
from bench.workloads.registry import trains


def explain(choice: Choice) -> list[str]:
    """The decision in a few sentences: what won, by how much, whether beyond noise, which
    constraint bound it, and what to watch (unstable or input-bound measurements)."""
    objective, constraints = choice.objective, choice.constraints
    winner: CellView | None = choice.winner
    runners: list[RunnerUp] = list(choice.runners_up)
    binding: list[Binding] = list(choice.binding)
    excluded: dict[str, int] = choice.excluded
    closest: list[Closest] = list(choice.closest)
    lines = []
    skipped = ", ".join(f"{n} {why}" for why, n in excluded.items())
    qualify = (
        f"{choice.n_candidates} of {choice.n_cells} cells qualify"
        + (f" (left out: {skipped})" if skipped else "")
        + "."
    )
    if winner is None:
        if not closest:
            instead = ", ".join(f"`--objective {name}`" for name in choice.instead)
            lines.append(
                f"No cell has a {objective.label} to rank by: {qualify} "
                f"(`{objective.field}` is not recorded by these runs"
                + (f"; these cells rank by {instead}" if instead else "")
                + ")."
            )
            return lines
        lines.append(f"No cell meets {join_words([c.text for c in constraints])}. {qualify}")
        lines.append(
            "Closest: "
            + "; ".join(f"{choice.name(c.cell)} ({', '.join(c.violations)})" for c in closest)
            + "."
        )
        return lines
    value = fmt_value(winner.number(objective.field), objective.unit)
    lines.append(
        f"Best {objective.label}: {choice.name(winner)} at {value} {objective.unit}. {qualify}"
    )
    if not runners:
        lines.append("It is the only cell that qualifies, so there is nothing to beat.")
    else:
        first = runners[0]
        ci = first.margin
        interval = (
            f", 95% CI {fmt_times(ci.ci_lo)}-{fmt_times(ci.ci_hi)}"
            if ci.ci_lo is not None and ci.ci_hi is not None
            else ""
        )
        tied = [r for r in runners if r.margin.within_noise]
        if not tied:
            if ci.within_noise is None:
                lines.append(
                    f"It leads the runner-up, {choice.name(first.cell)}, by {fmt_times(ci.factor)} "
                    "(no raw samples, so whether that is beyond noise is unknown)."
                )
            else:
                noise = ci.noise
                threshold = f": the noise threshold is {noise.describe()}" if noise else ""
                lines.append(
                    f"It leads the runner-up, {choice.name(first.cell)}, by "
                    f"{fmt_times(ci.factor)}{interval}: a real difference, beyond noise{threshold}."
                )
        else:
            names = join_words([choice.name(r.cell) for r in tied])
            who = f"The runner-up, {names}, is" if len(tied) == 1 else f"{names} are"
            lines.append(
                f"{who} within noise of it ({fmt_times(ci.factor)} behind{interval}): "
                + ("either" if len(tied) == 1 else "any of them")
                + " will do; this one leads on the point estimate only."
            )
    for bind in binding:
        if bind.factor is None:
            continue
        lines.append(
            f"{bind.constraint.text} bound the choice: without it {choice.name(bind.cell)} would "
            f"win with {fmt_times(bind.factor)} the {objective.label}, but {bind.violation}."
        )
    if constraints and not any(b.factor is not None for b in binding):
        lines.append("No constraint changed the choice: the best cell overall meets them all.")
    flags = [f for f in winner.flags if f in ("unstable", "input_bound", "throttled")]
    if "unstable" in flags:
        lines.append(
            "Its measurement is flagged unstable (the run length ended before the step time "
            "settled): rerun it with a longer measure.max_seconds before relying on the number."
        )
    if "throttled" in flags:
        lines.append(
            "Its device throttled during the measurement (clocks lowered for power or heat): "
            "sustained production load may run at that speed, or slower."
        )
    if "input_bound" in flags:
        lines.append(
            "It is input-bound: the input pipeline, not the device, sets its speed; a faster "
            "pipeline may change the ranking."
        )
    return lines


def _headline(rec: Recommendation) -> str:
    goal = rec.objective
    direction = "higher" if goal.maximize else "lower"
    constraints = "; ".join(
        filter(None, [", ".join(k.text for k in rec.constraints), *(k.text for k in rec.implicit)])
    )
    constraints = constraints or "none"
    return (
        f"objective: {goal.name} ({goal.field}, {goal.unit}, {direction} is better"
        f"{as_ranked(rec)}); constraints: {constraints}"
    )


def as_ranked(rec: Recommendation) -> str:
    """How workloads whose cells rank by the objective in their own terms read it
    (``bench.read.recommend.for_workload``): ``; generate cells: output tokens/s
    (output_tokens_per_s)``; empty when none does."""
    own = dict.fromkeys(
        (c.workload, c.objective) for c in rec.choices if c.objective != rec.objective
    )
    return "".join(f"; {w} cells: {o.label} ({o.field}, {o.unit})" for w, o in own)


def _runs_legend(runset: RunSet) -> list[str]:
    return [
        f"run {run.run_id} on {host.label} ({host.description})"
        for run, host in zip(runset.runs, runset.hosts, strict=True)
    ]


def _partner_text(choice: Choice, cell: CellView) -> str:
    field = choice.objective.partner
    unit = "ms" if field.endswith("_ms") else "examples/s"
    return fmt_value(cell.number(field), unit)


def ranking_rows(choice: Choice) -> list[tuple[str, ...]]:
    """rank, cell, objective value, partner value, lead of the winner (CI), noise verdict."""
    if choice.winner is None:
        return []
    goal = choice.objective
    rows = [
        (
            "best",
            choice.name(choice.winner),
            fmt_value(choice.winner.number(goal.field), goal.unit),
            _partner_text(choice, choice.winner),
            "",
            "",
        )
    ]
    for i, runner in enumerate(choice.runners_up, 2):
        m = runner.margin
        noise = {True: "within noise", False: "beyond noise", None: "no samples"}[m.within_noise]
        rows.append(
            (
                str(i),
                choice.name(runner.cell),
                fmt_value(runner.cell.number(goal.field), goal.unit),
                _partner_text(choice, runner.cell),
                f"{fmt_times(m.factor)} {fmt_ci(m.ci_lo, m.ci_hi)}".strip(),
                noise,
            )
        )
    return rows


def _partner_header(choice: Choice) -> str:
    return find_field(choice.objective.partner)[1].column


def _choice_title(choice: Choice) -> str:
    return f"{choice.model} {choice.workload}"


def to_text(rec: Recommendation, runset: RunSet) -> RichGroup:
    parts: list[Any] = [
        Text(_headline(rec)),
        Text("\n".join([*_runs_legend(runset), rec.noise_rule]), style="dim"),
    ]
    for note in rec.notes:
        parts.append(Text(f"note: {note}", style="dim"))
    for choice in rec.choices:
        parts.append(Text(""))
        style = "bold green" if choice.winner is not None else "bold red"
        verdict = "recommended" if choice.winner is not None else "nothing meets the constraints"
        parts.append(Text(f"{_choice_title(choice)}: {verdict}", style=style))
        if choice.common:
            parts.append(Text(f"every cell: {choice.common}", style="dim"))
        rows = ranking_rows(choice)
        if rows:
            table = Table(box=None, pad_edge=False, header_style="bold")
            table.add_column("rank")
            table.add_column("cell")
            table.add_column(choice.objective.unit, justify="right")
            table.add_column(_partner_header(choice), justify="right")
            table.add_column("winner's lead [95% CI]")
            table.add_column("")
            for row in rows:
                table.add_row(*row, style="green" if row[0] == "best" else "")
            parts.append(table)
        if choice.pareto:
            front = "; ".join(choice.name(c) for c in choice.pareto)
            parts.append(
                Text(f"Pareto set ({choice.objective.label} vs {_partner_header(choice)}): {front}")
            )
        for line in explain(choice):
            parts.append(Text(f"- {line}"))
    if not rec.choices:
        parts.append(Text("nothing to recommend: no cells", style="red"))
    return RichGroup(*parts)


def to_markdown(rec: Recommendation, runset: RunSet, *, heading: str = "###") -> str:
    """The recommendation as markdown (the report's summary and CI job summaries)."""
    lines = [f"- {md_escape(_headline(rec))}", f"- {md_escape(rec.noise_rule)}"]
    lines += [f"- {md_escape(n)}" for n in rec.notes]
    lines += [f"- warning: {md_escape(w)}" for w in rec.warnings]
    for choice in rec.choices:
        verdict = "recommended" if choice.winner is not None else "nothing meets the constraints"
        lines += ["", f"{heading} {md_escape(_choice_title(choice))}: {verdict}", ""]
        if choice.common:
            lines += [f"Every cell: {md_escape(choice.common)}.", ""]
        rows = ranking_rows(choice)
        if rows:
            header = [
                "rank",
                "cell",
                choice.objective.unit,
                _partner_header(choice),
                "winner's lead [95% CI]",
                "noise",
            ]
            lines.append("| " + " | ".join(md_cell(h) for h in header) + " |")
            lines.append("| --- | --- | ---: | ---: | --- | --- |")
            lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        if choice.pareto:
            front = "; ".join(choice.name(c) for c in choice.pareto)
            lines += [
                f"Pareto set ({choice.objective.label} vs {_partner_header(choice)}): "
                f"{md_cell(front)}",
                "",
            ]
        lines += [f"- {md_escape(line)}" for line in explain(choice)]
    return "\n".join(lines) + "\n"


def _round(value: float | None) -> float | int | None:
    """Four significant digits (whole numbers from 1000 up): what a deployment file needs,
    without float noise."""
    if value is None:
        return None
    if abs(value) >= 1000:
        return round(value)
    rounded = float(f"{value:.4g}")
    return int(rounded) if rounded.is_integer() and abs(rounded) >= 1 else rounded


def _scenario_settings(runset: RunSet, cell: CellView) -> dict[str, Any]:
    run = runset.runs[cell.run_index]
    text = run.meta.get("scenario", {}).get("text") or ""
    try:
        scenario = load_yaml(text) or {}
    except yaml.YAMLError:
        scenario = {}
    if not isinstance(scenario, dict):
        return {}
    wanted = ["model_args"] + (["optimizer"] if trains(cell.key.get("workload")) else [])
    return {k: scenario[k] for k in wanted if k in scenario}


def _throughput_ci(cell: CellView) -> list[float | int | None] | None:
    steps = cell.metrics.get("step_time_s") or {}
    ci = steps.get("ci95_median")
    batch = cell.key.get("batch_size")
    if not (isinstance(ci, list) and len(ci) == 2 and isinstance(batch, int | float)):
        return None
    lo, hi = ci
    if not lo or not hi:
        return None
    return [_round(batch / hi), _round(batch / lo)]


def _workload_expected(cell: CellView, expected: dict[str, Any]) -> dict[str, Any]:
    """``expected`` with the headline numbers of the metrics the cell's workload declares
    (the registry's ``terminal`` fields: a generate cell's output tokens/s, TTFT and TPOT p99,
    a serve cell's max QPS), where measured. A workload whose throughput is not examples/s
    (generate) has no examples/s entries: its own throughput stands instead."""
    spec = find_workload(cell.key.get("workload"))
    if spec is None:
        return expected
    if spec.throughput != "examples_per_s":
        expected = {k: v for k, v in expected.items() if not k.startswith("examples_per_s")}
    for name in spec.metrics:
        for f in METRICS[name].fields if name in METRICS else ():
            if f.terminal and (value := cell.number(f.name)) is not None:
                expected[f.name] = _round(value)
    return expected


def deployment(choice: Choice, runset: RunSet) -> dict[str, Any]:
    """One chosen configuration, as the pipeline reads it."""
    cell = choice.winner
    assert cell is not None
    key = dict(cell.key)
    # The shape pipelines read: the model and the axes every cell id names at the top; the
    # axes an id names only when changed from their default (xla, steps_per_call, replicas)
    # and any key field unknown here under ``settings``.
    top = {k for k in key if k == MODEL or (k in BY_NAME and BY_NAME[k].in_id == "always")}
    out: dict[str, Any] = {k: v for k, v in key.items() if k in top}
    out["settings"] = {k: v for k, v in key.items() if k not in top}
    out.update(_scenario_settings(runset, cell))
    out["host"] = {
        "name": cell.host.hostname,
        "cpu": cell.host.cpu_model,
        "accelerators": list(cell.host.accelerators),
    }
    out["expected"] = {
        "examples_per_s": _round(cell.number("examples_per_s")),
        "examples_per_s_ci95": _throughput_ci(cell),
        "p50_ms": _round(cell.number("p50_ms")),
        "p99_ms": _round(cell.number("p99_ms")),
        "memory_gb": _round(cell.number("memory_gb")),
        "cost_usd_per_million": _round(cell.number("cost_usd_per_million")),
        "energy_kwh_per_million": _round(cell.number("energy_kwh_per_million")),
    }
    out["expected"] = _workload_expected(cell, out["expected"])
    if cell.get("slo") is not None:  # a serve cell: the SLO it was judged by, and its latency
        out["expected"]["slo"] = cell.get("slo")
        out["expected"]["slo_latency_ms"] = _round(cell.number("slo_latency_ms"))
    out["within_noise_of_it"] = [choice.name(r.cell) for r in choice.tied]
    out["source"] = {"run": cell.run_id, "cell": cell.cell_id}
    return out


def to_deploy_yaml(rec: Recommendation, runset: RunSet) -> str:
    """``deploy.yaml``: the chosen configuration per (model, workload) that has one."""
    doc = {
        "objective": rec.objective.name,
        "constraints": [k.text for k in (*rec.constraints, *rec.implicit)],
        "noise": rec.noise_rule,
        "deployments": [deployment(c, runset) for c in rec.choices if c.winner is not None],
    }
    header = (
        "# Written by `bench recommend`: the configuration to deploy per model and workload,\n"
        "# with the numbers measured for it (expected values, not guarantees).\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)

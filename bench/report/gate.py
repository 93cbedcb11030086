"""The gate report as plain text (CI logs), markdown ($GITHUB_STEP_SUMMARY) and JSON (machines).

Pure functions of a ``GateReport``: the same inputs always render the same bytes (verdicts are
seeded, numbers have fixed formats, nothing reads the clock), which is what lets the golden
tests compare whole reports. Plain ASCII in text, so any CI log shows it as written.

Every format has the same three parts: a header (both sides, the method, the thresholds, the
environment and machine checks), the table (per cell and metric: n per side, medians, ratio
and interval, p-value, verdict), and a footer (counts per verdict, why each cell that is not
NO_CHANGE got its verdict, notes, and what the exit code means).
"""

from __future__ import annotations

import json
from typing import Any

from bench.gate.baseline import Side
from bench.gate.decision import Decision, Verdict
from bench.gate.fingerprint import MachineCheck
from bench.gate.policy import describe_policy, percent
from bench.gate.regression import RULE_ADVISORY, RULE_BEYOND_MACHINE, GateReport, GateRow
from bench.report.format import md_cell, md_code, md_escape

EXIT_CODES = (
    "0 no regression (INCONCLUSIVE, INSUFFICIENT_DATA and advisory verdicts included), "
    "1 at least one REGRESSED, 2 usage or input error (nothing was gated)"
)
REPORT_FORMAT = "bench-gate-report"
REPORT_VERSION = 1


# ------------------------------------------------------------------ numbers


def fmt_value(value: float | None, unit: str) -> str:
    """A median with its unit, scaled so that it reads at a glance."""
    if value is None:
        return "-"
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
            if abs(value) >= scale or name == "us":
                return f"{value / scale:.4g} {name}"
    if unit == "bytes":
        return f"{value / 2**20:,.1f} MiB"
    if unit == "examples/s":
        return f"{value:,.0f}/s" if value >= 100 else f"{value:.4g}/s"
    return f"{value:.4g} {unit}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def fmt_interval(d: Decision) -> str:
    if d.ci_lo is None or d.ci_hi is None:
        return "-"
    return f"[{d.ci_lo:.3f}, {d.ci_hi:.3f}]"


def fmt_p(p: float | None) -> str:
    return "-" if p is None else f"{p:.2g}"


# ------------------------------------------------------------------ shared wording


def outcome(report: GateReport) -> str:
    """The one-line result: what the exit code is and why."""
    n = len(report.regressed)
    code = report.exit_code
    if code:
        binding = report.binding
        text = f"FAIL (exit {code}): {len(binding)} REGRESSED"
        if any(report.rule(r) == RULE_BEYOND_MACHINE for r in binding):
            text += ", beyond what the UNSTABLE machine explains"
        if n > len(binding):
            text += f"; {n - len(binding)} more advisory"
        return text
    if n:
        why = " and ".join(report.advisory_reasons)
        return f"PASS (exit 0), advisory: {n} REGRESSED not counted because {why}"
    return "PASS (exit 0): no regression"


def exit_meaning(report: GateReport) -> str:
    code = report.exit_code
    if code:
        what = "at least one cell and metric REGRESSED"
    elif report.regressed:
        what = "verdicts are advisory (--strict-env makes them count)"
    else:
        what = "no cell and metric REGRESSED"
    return f"exit {code}: {what}. Exit codes: {EXIT_CODES}."


def method_text(report: GateReport) -> str:
    p = report.config.default
    return (
        f"ratio of medians (candidate / baseline) with a {p.confidence:.0%} bootstrap interval "
        f"({p.n_boot} resamples, seed {p.seed}) and a one-sided Mann-Whitney U test, "
        f"Holm-adjusted over {report.tests} test(s); REGRESSED needs p < alpha AND the whole "
        f"interval beyond the threshold"
    )


def policy_text(report: GateReport) -> str:
    p = report.config.default
    text = (
        f"threshold {percent(p.threshold)}, alpha {p.alpha:g}, "
        f"at least {p.min_samples} samples per side"
    )
    if report.config.rules:
        text += "; rules: " + "; ".join(r.describe() for r in report.config.rules)
    return text


def environment_text(report: GateReport) -> tuple[str, list[str]]:
    env = report.environment
    if env.match:
        fp = report.baseline.runs[0].fingerprint
        shown = ", ".join(f"{k} {v}" for k, v in fp.items())
        return f"match ({shown})", []
    head = "MISMATCH: " + (
        "verdicts count anyway (--strict-env)"
        if report.strict_env
        else "verdicts are advisory (--strict-env makes them count)"
    )
    return head, [f"{name}: {b} -> {c}" for name, b, c in env.mismatches]


def machine_text(report: GateReport) -> tuple[str, list[str]]:
    m = report.machine
    ratios = ", ".join(
        f"{k.kernel} {k.ratio:.3f} [{k.ci_lo:.3f}, {k.ci_hi:.3f}]" for k in m.kernels
    )
    shown = f"reference kernel, candidate / baseline: {ratios}" if ratios else ""
    if m.unstable:
        head = "UNSTABLE: " + (
            "verdicts count anyway (--strict-env)"
            if report.strict_env
            else "verdicts are advisory unless beyond what the machine explains "
            "(--strict-env makes them count)"
        )
        lines = list(m.reasons)
        if not report.strict_env:
            lines.append(machine_rule_text(report))
        return head + (f"; {shown}" if shown else ""), lines
    if m.status == "unknown":
        return "unknown: no reference kernel to compare", list(m.reasons)
    return f"stable ({shown})", []


def machine_rule_text(report: GateReport) -> str:
    """The rule an UNSTABLE machine leaves: what it can explain at most, and what still fails."""
    m = report.machine
    t = report.config.default.threshold
    source = f" ({m.slowdown_source})" if m.slowdown_source else ""
    return (
        f"largest slowdown the machine check measured: x{m.slowdown:.3f}{source}; a REGRESSED "
        f"cell still fails when its whole interval lies beyond the threshold compounded with it, "
        f"(1 + {percent(t)}) x {m.slowdown:.3f} = {(1 + t) * m.slowdown:.3f} as a slowdown, "
        "or, for a cell whose processes both sides timed the machine before, with that cell's "
        "own slowdown (reference matmul, candidate / baseline"
        + (f", x {m.shared_slowdown:.3f} for others' CPU share" if m.shared_slowdown > 1 else "")
        + ")"
    )


def verdict_text(report: GateReport, row: GateRow) -> str:
    v = row.decision.verdict
    if v == Verdict.REGRESSED:
        rule = report.rule(row)
        if rule == RULE_ADVISORY:
            return f"{v.value} (advisory)"
        if rule == RULE_BEYOND_MACHINE:
            return f"{v.value} (beyond machine)"
    return v.value


def reason_text(report: GateReport, row: GateRow) -> str:
    """Why the row got its verdict and, for a REGRESSED row under an UNSTABLE machine, whether
    the machine explains it."""
    reason = row.decision.reason
    if row.decision.verdict != Verdict.REGRESSED or report.rule(row) not in (
        RULE_ADVISORY,
        RULE_BEYOND_MACHINE,
    ):
        return reason
    if not report.machine.unstable or not report.environment.match:
        return reason
    bound = row.machine_bound(report.machine)
    lo = row.slowdown_lo
    shown = "-" if lo is None else f"{lo:.3f}"
    which = (
        "threshold x largest machine slowdown"
        if row.cell_machine is None
        else f"threshold x this cell's machine slowdown {row.machine_slowdown(report.machine):.3f}"
    )
    if report.rule(row) == RULE_BEYOND_MACHINE:
        return (
            f"{reason}; slowdown at least {shown}, beyond the {bound:.3f} the UNSTABLE machine "
            f"explains ({which}): it counts"
        )
    return (
        f"{reason}; slowdown at least {shown}, within the {bound:.3f} the UNSTABLE machine "
        f"explains ({which}): advisory"
    )


def counts_text(report: GateReport) -> str:
    return ", ".join(f"{n} {v.value}" for v, n in report.counts.items()) or "no cells"


def _why_rows(report: GateReport) -> list[GateRow]:
    return [r for r in report.rows if r.decision.verdict != Verdict.NO_CHANGE]


def _multi_metric(report: GateReport) -> bool:
    return len(report.metrics) > 1


def _side_text(side: Any) -> str:
    runs = ", ".join(side.run_ids)
    return f"{side.label} (run{'s' if len(side.run_ids) > 1 else ''} {runs})"


COLUMNS = (
    "n base",
    "n cand",
    "median base",
    "median cand",
    "ratio",
    "95% interval",
    "p",
    "verdict",
)


def _cells(report: GateReport, row: GateRow) -> list[str]:
    d = row.decision
    unit = row.metric.unit
    return [
        str(d.n_baseline),
        str(d.n_candidate),
        fmt_value(d.median_baseline, unit),
        fmt_value(d.median_candidate, unit),
        fmt_ratio(d.ratio),
        fmt_interval(d),
        fmt_p(d.p_value),
        verdict_text(report, row),
    ]


def _interval_label(report: GateReport) -> str:
    return f"{report.config.default.confidence:.0%} interval"


# ------------------------------------------------------------------ text


def render_text(report: GateReport) -> str:
    lines = [f"bench gate: {outcome(report)}"]
    env_head, env_lines = environment_text(report)
    machine_head, machine_lines = machine_text(report)
    header = [
        ("baseline", _side_text(report.baseline)),
        ("candidate", _side_text(report.candidate)),
        ("metrics", ", ".join(m.name for m in report.metrics)),
        ("method", method_text(report)),
        ("policy", policy_text(report)),
        ("environment", env_head),
        ("machine", machine_head),
    ]
    width = max(len(k) for k, _ in header) + 1
    for name, text in header:
        lines.append(f"{name + ':':<{width}} {text}")
        extra = env_lines if name == "environment" else machine_lines if name == "machine" else []
        lines += [f"{'':<{width}}   {e}" for e in extra]
    lines.append("")

    first = ["cell", *(["metric"] if _multi_metric(report) else [])]
    heads = [*first, *COLUMNS]
    heads[heads.index("95% interval")] = _interval_label(report)
    body = [
        [r.cell_id, *([r.metric.name] if _multi_metric(report) else []), *_cells(report, r)]
        for r in report.rows
    ]
    widths = [max(len(x) for x in col) for col in zip(heads, *body, strict=True)]
    left = {0, 1} if _multi_metric(report) else {0}
    left |= {len(heads) - 1, len(heads) - 3}  # verdict and interval read left to right

    def line(values: list[str]) -> str:
        cells = [
            v.ljust(w) if i in left else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    lines.append(line(heads))
    lines.append("  ".join("-" * w for w in widths))
    lines += [line(values) for values in body]
    lines.append("")
    lines.append(f"verdicts: {counts_text(report)}")
    why = _why_rows(report)
    if why:
        lines.append("why:")
        for r in why:
            what = f"{r.cell_id} {r.metric.name}" if _multi_metric(report) else r.cell_id
            lines.append(f"  {what}: {reason_text(report, r)}")
    if report.machine.notes or report.notes:
        lines.append("notes:")
        lines += [f"  {n}" for n in [*report.machine.notes, *report.notes]]
    lines.append(exit_meaning(report))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ markdown


def _md(text: str) -> str:
    return md_escape(text)  # names, reasons and notes come from run folders: shown as text


def render_markdown(report: GateReport) -> str:
    code = report.exit_code
    icon = ":x:" if code else (":warning:" if report.regressed else ":white_check_mark:")
    lines = [f"### {icon} bench gate: {md_cell(outcome(report))}", ""]
    env_head, env_lines = environment_text(report)
    machine_head, machine_lines = machine_text(report)
    lines += ["| | |", "|:--|:--|"]
    for name, text in (
        ("baseline", _side_text(report.baseline)),
        ("candidate", _side_text(report.candidate)),
        ("metrics", ", ".join(m.name for m in report.metrics)),
        ("method", method_text(report)),
        ("policy", policy_text(report)),
        ("environment", [env_head, *env_lines]),
        ("machine", [machine_head, *machine_lines]),
    ):
        parts = text if isinstance(text, list) else [text]
        lines.append(f"| **{name}** | {'<br>'.join(md_cell(t) for t in parts)} |")
    lines.append("")

    multi = _multi_metric(report)
    heads = ["cell", *(["metric"] if multi else []), *COLUMNS]
    heads[heads.index("95% interval")] = _interval_label(report)
    aligns = [":--", *([":--"] if multi else []), "--:", "--:", "--:", "--:", "--:", ":--", "--:"]
    lines.append("| " + " | ".join(heads) + " |")
    lines.append("|" + "|".join([*aligns, ":--"]) + "|")
    for r in report.rows:
        values = [md_cell(v) for v in _cells(report, r)]
        if r.decision.verdict == Verdict.REGRESSED:
            values[-1] = f"**{values[-1]}**"
        first = [md_code(r.cell_id, in_table=True), *([md_cell(r.metric.name)] if multi else [])]
        lines.append("| " + " | ".join([*first, *values]) + " |")
    lines += ["", f"**Verdicts:** {md_cell(counts_text(report))}", ""]
    why = _why_rows(report)
    if why:
        lines += ["<details><summary>Why, per cell</summary>", ""]
        for r in why:
            what = md_code(r.cell_id) + (f" {md_cell(r.metric.name)}" if multi else "")
            lines.append(f"- {what}: {md_cell(reason_text(report, r))}")
        lines += ["", "</details>", ""]
    notes = [*report.machine.notes, *report.notes]
    if notes:
        lines += ["**Notes**", ""] + [f"- {_md(n)}" for n in notes] + [""]
    lines.append(_md(exit_meaning(report)))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ json


def report_dict(report: GateReport) -> dict[str, Any]:
    """The report as JSON data (``render_json``), for CI steps that read the verdicts."""
    return {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "result": "fail" if report.exit_code else "pass",
        "exit_code": report.exit_code,
        "advisory": report.advisory,
        "advisory_reasons": report.advisory_reasons,
        "summary": outcome(report),
        "baseline": _side_dict(report.baseline),
        "candidate": _side_dict(report.candidate),
        "metrics": [m.name for m in report.metrics],
        "method": method_text(report),
        "policy": {
            **describe_policy(report.config.default),
            "rules": [r.describe() for r in report.config.rules],
        },
        "strict_env": report.strict_env,
        "environment": {
            "match": report.environment.match,
            "mismatches": [
                {"field": f, "baseline": b, "candidate": c}
                for f, b, c in report.environment.mismatches
            ],
        },
        "machine": _machine_dict(report.machine),
        "rows": [_row_dict(report, r) for r in report.rows],
        "counts": {v.value: n for v, n in report.counts.items()},
        "notes": list(report.notes),
        "exit_codes": EXIT_CODES,
    }


def _side_dict(side: Side) -> dict[str, Any]:
    """One side's label and runs, each with the fingerprint its environment was compared by."""
    return {
        "label": side.label,
        "runs": [
            {"run_id": r.run_id, "scenario": r.scenario, "fingerprint": r.fingerprint}
            for r in side.runs
        ],
    }


def _machine_dict(m: MachineCheck) -> dict[str, Any]:
    """The machine check: its status and why, and the reference kernels' ratios."""
    return {
        "status": m.status,
        "reasons": list(m.reasons),
        "notes": list(m.notes),
        "slowdown": m.slowdown,
        "slowdown_source": m.slowdown_source,
        "shared_slowdown": m.shared_slowdown,
        "kernels": [
            {
                "kernel": k.kernel,
                "ratio": k.ratio,
                "ci": [k.ci_lo, k.ci_hi],
                "robust_cv_baseline": k.cv_baseline,
                "robust_cv_candidate": k.cv_candidate,
            }
            for k in m.kernels
        ],
    }


def _row_dict(report: GateReport, r: GateRow) -> dict[str, Any]:
    """One cell and metric: the decision's numbers, its verdict and why, and its policy."""
    return {
        "cell_id": r.cell_id,
        "key": report.candidate.cells[r.cell_id].key,
        "metric": r.metric.name,
        "unit": r.metric.unit,
        "higher_is_better": r.metric.higher_is_better,
        "n_baseline": r.decision.n_baseline,
        "n_candidate": r.decision.n_candidate,
        "median_baseline": r.decision.median_baseline,
        "median_candidate": r.decision.median_candidate,
        "ratio": r.decision.ratio,
        "ci": [r.decision.ci_lo, r.decision.ci_hi],
        "p_value": r.decision.p_value,
        "verdict": r.decision.verdict.value,
        "reason": reason_text(report, r),
        "rule": report.rule(r),
        "machine_slowdown": r.machine_slowdown(report.machine),
        "machine_slowdown_of": "run" if r.cell_machine is None else "cell",
        "policy": {
            "threshold": r.policy.threshold,
            "alpha": r.policy.alpha,
            "min_samples": r.policy.min_samples,
        },
    }


def render_json(report: GateReport) -> str:
    return json.dumps(report_dict(report), indent=2, allow_nan=False) + "\n"


RENDERERS = {"text": render_text, "md": render_markdown, "json": render_json}

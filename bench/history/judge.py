"""The second stage's verdict on one pair of commits: the gate's own rule, both ways.

``after`` is gated against ``before`` as a candidate against its baseline; a REGRESSED row
that counts under the gate's rule (``GateReport.rule``: the interval of the ratio of medians
wholly beyond the threshold, widened to the spread between the runs' processes, and a
Holm-adjusted Mann-Whitney test below alpha) confirms a slowdown, provided both commits ran in
the same environment (the gate's fingerprint). The machine check that makes the gate's verdicts
advisory is not applied: it guards two runs made at different times, and these runs are
interleaved on one machine, so whatever the machine did fell on both sides alike. NO_CHANGE
clears a suspect only within the threshold asked for: where the spread between the runs
widened it, the runs could not tell, and the suspect stays inconclusive. A speed-up is confirmed the
same way with the sides swapped, so both directions meet one rule. NO_CHANGE clears the
suspect; anything else leaves it inconclusive, never reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.gate.baseline import METRICS, Side
from bench.gate.decision import Verdict
from bench.gate.policy import build_config
from bench.gate.regression import RULE_ADVISORY, GateRow, run_gate

CONFIRMED, CLEARED, INCONCLUSIVE = "confirmed", "cleared", "inconclusive"


@dataclass(frozen=True)
class Judgement:
    status: str  # confirmed | cleared | inconclusive
    verdict: str  # the gate's verdict of after against before
    ratio: float | None  # median after / median before
    ci_lo: float | None
    ci_hi: float | None
    reason: str

    @property
    def changed(self) -> bool:
        return self.status == CONFIRMED


def _row(before: Side, after: Side, cell_id: str, metric: str, threshold: float, alpha: float):
    config = build_config(None, {"threshold": [repr(threshold)], "alpha": [repr(alpha)]}, METRICS)
    # strict_env: the machine check's suspension is for two runs made at different times; the
    # runs here are interleaved on one machine, so its drift lands on both sides alike. The
    # environments must still match (checked by the caller).
    report = run_gate(before, after, config, [metric], strict_env=True)
    row: GateRow = next(r for r in report.rows if r.cell_id == cell_id)
    counts = row.decision.verdict == Verdict.REGRESSED and report.rule(row) != RULE_ADVISORY
    return row, counts and report.environment.match, report


def judge(
    before: Side,
    after: Side,
    cell_id: str,
    metric: str = "step_time",
    *,
    threshold: float,
    alpha: float = 0.01,
) -> Judgement:
    """Did ``cell_id``'s ``metric`` change between the runs of ``before`` and of ``after``?"""
    row, slower, report = _row(before, after, cell_id, metric, threshold, alpha)
    d = row.decision
    if slower:
        return Judgement(CONFIRMED, d.verdict.value, d.ratio, d.ci_lo, d.ci_hi, d.reason)
    if d.verdict == Verdict.IMPROVED:
        back, faster, _ = _row(after, before, cell_id, metric, threshold, alpha)
        if faster:
            return Judgement(CONFIRMED, d.verdict.value, d.ratio, d.ci_lo, d.ci_hi, d.reason)
        why = f"{d.reason}; with the sides swapped: {back.decision.verdict.value}"
        return Judgement(INCONCLUSIVE, d.verdict.value, d.ratio, d.ci_lo, d.ci_hi, why)
    if d.verdict in (Verdict.REGRESSED, Verdict.IMPROVED) and not report.environment.match:
        fields = ", ".join(f for f, _, _ in report.environment.mismatches)
        why = f"{d.reason}; but the two commits ran in different environments ({fields})"
        return Judgement(INCONCLUSIVE, d.verdict.value, d.ratio, d.ci_lo, d.ci_hi, why)
    if d.verdict == Verdict.NO_CHANGE and row.configured is not None:
        # within the threshold only because the runs varied more than the change suspected:
        # that clears nothing
        why = (
            f"{d.reason}; the runs of one commit varied by {row.policy.threshold:.0%}, more "
            f"than the {row.configured:.0%} this comparison must tell apart"
        )
        return Judgement(INCONCLUSIVE, d.verdict.value, d.ratio, d.ci_lo, d.ci_hi, why)
    status = CLEARED if d.verdict == Verdict.NO_CHANGE else INCONCLUSIVE
    return Judgement(status, d.verdict.value, d.ratio, d.ci_lo, d.ci_hi, d.reason)

"""The whole gate: a candidate against a baseline, per cell and metric, with one exit code.

Builds on ``bench.gate.decision`` (the per-cell rule and Holm) and adds what a CI job needs around it:

- pairing: cells are paired by cell id; cells on one side only are listed in the notes;
- samples: per-step metrics (step time, throughput) from each cell's raw step times, and a
  generate cell's TTFT, TPOT (one sample per request) and decode tokens/s (one per decode
  step) from its own sample lists (``Gate.sample``), tested the same way;
  per-process metrics (p99, compile time, memory) one value per worker process, so they are
  INSUFFICIENT_DATA, with the reason, unless each side has enough processes per cell
  (``measure.repeats`` in the scenario, or several runs per side);
- between-process noise: where a side measured a cell in several processes, the threshold for
  its per-step metrics is at least the spread between their median step times
  (``_process_spread``), the rule compare and recommend use (``bench.measure.noise``);
- one Holm family over every tested (cell, metric) pair, so the chance that any of them is
  falsely REGRESSED stays at most alpha for the whole gate;
- trust: an environment that differs (``bench.gate.fingerprint``) makes the verdicts advisory:
  reported, never failing. A machine that got slower or noisier (UNSTABLE) makes them advisory
  too, except for a cell whose whole interval lies beyond the threshold compounded with the
  slowdown the machine check measured, ``(1 + T) x slowdown``: the machine cannot explain
  that much, so it still fails (a model twice as deep must fail on a machine that drifted 9%).
  The slowdown is the cell's own where both sides timed the reference matmul before each of
  its processes (``_cell_machine``, times what other processes explain), else the largest
  the run-wide check measured. ``strict_env`` makes every verdict count anyway. ``GateReport.rule`` names the
  rule that decided each REGRESSED row.

Exit codes: 0 no binding regression (INCONCLUSIVE, INSUFFICIENT_DATA and advisory verdicts
included), 1 at least one REGRESSED that counts; 2, a usage or input error, is the CLI's.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.gate.baseline import METRICS, CellData, MetricDef, RunDoc, Side
from bench.gate.decision import Decision, GatePolicy, Verdict, decide, decide_many
from bench.gate.fingerprint import (
    EnvironmentCheck,
    MachineCheck,
    compare_fingerprints,
    machine_check,
)
from bench.gate.policy import GateConfig
from bench.measure.noise import percent, spread
from bench.workloads.registry import find as find_workload

EXIT_PASS, EXIT_REGRESSED = 0, 1
DEFAULT_METRICS = ("step_time",)
VERDICT_ORDER = (
    Verdict.REGRESSED,
    Verdict.IMPROVED,
    Verdict.NO_CHANGE,
    Verdict.INCONCLUSIVE,
    Verdict.INSUFFICIENT_DATA,
)


class GateError(Exception):
    """The two sides cannot be compared at all (nothing in common)."""


# Which rule decided whether a REGRESSED row fails the gate (``GateReport.rule``).
RULE_THRESHOLD = "threshold"  # environment and machine trusted: the gate's own rule
RULE_STRICT = "strict_env"  # --strict-env: counts whatever the environment and machine did
RULE_BEYOND_MACHINE = "beyond_machine"  # UNSTABLE machine, slowdown beyond what it explains
RULE_ADVISORY = "advisory"  # reported, not counted


@dataclass(frozen=True)
class GateRow:
    cell_id: str
    metric: MetricDef
    decision: Decision
    policy: GatePolicy
    # The slowdown factor at the better end of the interval (> 1: worse by at least that).
    slowdown_lo: float | None = None
    # The configured threshold where the spread between processes widened ``policy``'s.
    configured: float | None = None
    # The machine's slowdown as this cell met it (>= 1): its reference matmul timed before
    # each process, median candidate / median baseline; None where a side lacks the reading.
    cell_machine: float | None = None

    def machine_slowdown(self, machine: MachineCheck) -> float:
        """The slowdown the machine explains for this row: the cell's own reading compounded
        with what other processes explain, else the largest the run-wide check measured."""
        if self.cell_machine is None:
            return machine.slowdown
        return self.cell_machine * machine.shared_slowdown

    def machine_bound(self, machine: MachineCheck) -> float:
        """The configured threshold compounded with the machine's slowdown for this row
        (``machine_slowdown``).

        Not the threshold the processes' spread widened: both measure one thing, how far the
        machine moved. A baseline run whose machine slowed 1.5x while it ran has processes
        1.57x apart *and* a kernel 1.5-1.8x slower at its end; compounding the two (1.57 x 1.1
        x 1.79 = 3.1) let a model twice as deep pass as advisory. A REGRESSED row is already
        beyond the widened threshold; it counts when it is also beyond this.
        """
        threshold = self.policy.threshold if self.configured is None else self.configured
        return (1 + threshold) * self.machine_slowdown(machine)


@dataclass(frozen=True)
class GateReport:
    baseline: Side
    candidate: Side
    metrics: tuple[MetricDef, ...]
    config: GateConfig
    rows: tuple[GateRow, ...]
    environment: EnvironmentCheck
    machine: MachineCheck
    strict_env: bool
    notes: tuple[str, ...]

    @property
    def tests(self) -> int:
        """Size of the Holm family: the (cell, metric) pairs that were tested."""
        return sum(1 for r in self.rows if r.decision.p_value is not None)

    @property
    def advisory(self) -> bool:
        """True when the gate's own rule is suspended: the environment or the machine, not the
        code, may explain a change. Under an UNSTABLE machine alone a row may still count
        (``rule``)."""
        return (not self.environment.match or self.machine.unstable) and not self.strict_env

    def rule(self, row: GateRow) -> str:
        """The rule that decides whether ``row``, if REGRESSED, fails the gate."""
        if not self.advisory:
            return RULE_STRICT if self.strict_env and self._suspended else RULE_THRESHOLD
        if self.environment.match and self.beyond_machine(row):
            return RULE_BEYOND_MACHINE
        return RULE_ADVISORY

    def beyond_machine(self, row: GateRow) -> bool:
        """Whether the row's whole interval lies beyond what the machine check can explain."""
        return row.slowdown_lo is not None and row.slowdown_lo > row.machine_bound(self.machine)

    @property
    def _suspended(self) -> bool:
        return not self.environment.match or self.machine.unstable

    @property
    def regressed(self) -> list[GateRow]:
        return [r for r in self.rows if r.decision.verdict == Verdict.REGRESSED]

    @property
    def binding(self) -> list[GateRow]:
        """The REGRESSED rows that fail the gate."""
        return [r for r in self.regressed if self.rule(r) != RULE_ADVISORY]

    @property
    def exit_code(self) -> int:
        return EXIT_REGRESSED if self.binding else EXIT_PASS

    @property
    def counts(self) -> dict[Verdict, int]:
        found = Counter(r.decision.verdict for r in self.rows)
        return {v: found[v] for v in VERDICT_ORDER if found[v]}

    @property
    def advisory_reasons(self) -> list[str]:
        reasons = []
        if not self.environment.match:
            reasons.append("the environment differs")
        if self.machine.unstable:
            reasons.append("the machine is UNSTABLE")
        return reasons


def _insufficient(b: list[float], c: list[float], policy: GatePolicy, reason: str) -> Decision:
    """INSUFFICIENT_DATA with our own reason, and the medians and ratio there are for context.

    ``decide`` with a minimum above both counts returns exactly that, computed the gate's way.
    """
    above = max(2, len(b) + 1, len(c) + 1)
    return replace(decide(b, c, replace(policy, min_samples=above)), reason=reason)


def _per_process_reason(metric: MetricDef, b: CellData, c: CellData, policy: GatePolicy) -> str:
    return (
        f"{metric.name} is one value per process: {b.processes} baseline and {c.processes} "
        f"candidate process(es); gating it needs at least {policy.min_samples} per side "
        f"(measure.repeats: {policy.min_samples} in the scenario, or several runs per side)"
    )


def run_gate(
    baseline: Side,
    candidate: Side,
    config: GateConfig,
    metrics: Sequence[str] | None = None,
    strict_env: bool = False,
) -> GateReport:
    """Compare ``candidate`` with ``baseline``; GateError when no cell is on both sides.

    ``metrics`` (else the policy file's): gated on every cell. Neither given, each cell is
    gated on its workload's own default (``WorkloadSpec.gates``: step time, a generate cell's
    TTFT, TPOT and tokens/s), so a default gate of a generate run tests something."""
    common = [c for c in baseline.cells if c in candidate.cells]
    if not common:
        raise GateError(
            f"no cell is in both the baseline ({baseline.label}) and the candidate "
            f"({candidate.label}): were they made from the same scenario?"
        )
    named = metrics or config.metrics
    own = {c: _default_gates(baseline.cells[c]) for c in common}
    chosen = tuple(METRICS[m] for m in (named or dict.fromkeys(m for c in common for m in own[c])))
    other_model = _other_model(baseline, candidate, common)
    notes = [
        *baseline.notes,
        *candidate.notes,
        *_pairing_notes(baseline, candidate, common, other_model),
    ]

    pairs: dict[str, tuple[list[float], list[float]]] = {}
    policies: dict[str, GatePolicy] = {}
    fixed: dict[str, Decision] = {}
    order: list[tuple[str, MetricDef, str]] = []
    configured: dict[str, float] = {}  # key -> the threshold before the spread widened it
    spreads: dict[str, float] = {}  # cell id -> the spread that widened a threshold
    for cell_id in common:
        b, c = baseline.cells[cell_id], candidate.cells[cell_id]
        for metric in chosen if named else [m for m in chosen if m.name in own[cell_id]]:
            key = f"{cell_id}\t{metric.name}"
            order.append((cell_id, metric, key))
            base = config.policy_for(cell_id, metric.name, metric.higher_is_better)
            policies[key], wider = _widened(base, metric, b, c)
            if wider is not None:
                configured[key], spreads[cell_id] = base.threshold, wider
            if cell_id in other_model:
                fixed[key] = _insufficient([], [], policies[key], other_model[cell_id])
                continue
            found = _samples(metric, b, c, policies[key])
            if isinstance(found, Decision):
                fixed[key] = found
            else:
                pairs[key] = found
    notes += _widened_notes(baseline, candidate, spreads)
    decided = decide_many(pairs, config.default, overrides={k: policies[k] for k in pairs})
    rows = tuple(
        _row(
            cell_id,
            metric,
            fixed[key] if key in fixed else decided[key],
            policies[key],
            configured.get(key),
            _cell_machine(baseline.cells[cell_id], candidate.cells[cell_id]),
        )
        for cell_id, metric, key in order
    )
    environment = compare_fingerprints(
        [r.fingerprint for r in baseline.runs], [r.fingerprint for r in candidate.runs]
    )
    machine = machine_check(
        [(r.run_id, _reference(r)) for r in baseline.runs],
        [(r.run_id, _reference(r)) for r in candidate.runs],
        config.default,
    )
    return GateReport(
        baseline=baseline,
        candidate=candidate,
        metrics=chosen,
        config=config,
        rows=rows,
        environment=environment,
        machine=machine,
        strict_env=strict_env,
        notes=tuple(dict.fromkeys(notes)),
    )


def _default_gates(cell: CellData) -> tuple[str, ...]:
    """The metrics a cell's workload is gated on by default; step time for a workload this
    bench does not know (another bench's baseline)."""
    spec = find_workload(cell.key.get("workload"))
    found = tuple(m for m in (spec.gates if spec is not None else ()) if m in METRICS)
    return found or DEFAULT_METRICS


def _other_model(baseline: Side, candidate: Side, common: list[str]) -> dict[str, str]:
    """Why each common cell of another model on each side is not compared.

    A cell id names every axis but the model: the same id on both sides may be another model,
    whose times say nothing about a regression. Raises GateError where no common cell is of
    the same model.
    """
    other_model = {
        cell_id: f"baseline model {kb.get('model')!r}, candidate model {kc.get('model')!r}: "
        "cells of different models are not compared"
        for cell_id in common
        if (kb := baseline.cells[cell_id].key).get("model")
        != (kc := candidate.cells[cell_id].key).get("model")
    }
    if len(other_model) == len(common):
        raise GateError(
            f"no cell is of the same model in the baseline ({baseline.label}) and the "
            f"candidate ({candidate.label}): {next(iter(other_model.values()))}"
        )
    return other_model


def _pairing_notes(
    baseline: Side, candidate: Side, common: list[str], other_model: dict[str, str]
) -> list[str]:
    """What does not pair up: cells on one side only, cells whose keys differ, and scenario
    files that differ (compared anyway: the notes say so). Cells of another model are not
    compared at all; their rows say so."""
    notes = []
    only_b = [c for c in baseline.cells if c not in candidate.cells]
    only_c = [c for c in candidate.cells if c not in baseline.cells]
    if only_b:
        notes.append(f"{len(only_b)} baseline cell(s) not in the candidate: {', '.join(only_b)}")
    if only_c:
        notes.append(f"{len(only_c)} candidate cell(s) not in the baseline: {', '.join(only_c)}")
    for cell_id in common:
        kb, kc = baseline.cells[cell_id].key, candidate.cells[cell_id].key
        if kb != kc and cell_id not in other_model:
            diff = ", ".join(
                f"{k} {kb.get(k)!r} -> {kc.get(k)!r}"
                for k in sorted(set(kb) | set(kc))
                if kb.get(k) != kc.get(k)
            )
            notes.append(f"{cell_id}: cell keys differ ({diff}); compared anyway")
    scenarios_b = {r.scenario.get("sha256") for r in baseline.runs}
    scenarios_c = {r.scenario.get("sha256") for r in candidate.runs}
    if scenarios_b != scenarios_c:
        notes.append(
            "the scenario files differ (sha256 "
            f"{', '.join(sorted(str(s)[:12] for s in scenarios_b))} -> "
            f"{', '.join(sorted(str(s)[:12] for s in scenarios_c))}): "
            "a changed scenario can change the numbers, which is what the gate then measures"
        )
    return notes


def _widened(
    policy: GatePolicy, metric: MetricDef, b: CellData, c: CellData
) -> tuple[GatePolicy, float | None]:
    """The policy for a per-step metric with its threshold widened to the spread between
    repeated processes where that is wider (see ``_process_spread``), and that spread; the
    policy as it is, and None, otherwise."""
    if metric.per_process:
        return policy, None
    wider = _process_spread(b, c)
    if wider is not None and wider > policy.threshold:
        return replace(policy, threshold=wider), wider
    return policy, None


def _samples(
    metric: MetricDef, b: CellData, c: CellData, policy: GatePolicy
) -> tuple[list[float], list[float]] | Decision:
    """Both sides' samples to test, or the INSUFFICIENT_DATA decision that says why not."""
    sb, why_b = b.samples(metric)
    sc, why_c = c.samples(metric)
    if not sb or not sc:
        why = "; ".join(
            f"{side}: {why}" for side, why in (("baseline", why_b), ("candidate", why_c)) if why
        )
        return _insufficient(sb, sc, policy, why)
    if metric.per_process and min(len(sb), len(sc)) < policy.min_samples:
        return _insufficient(sb, sc, policy, _per_process_reason(metric, b, c, policy))
    return sb, sc


def _widened_notes(baseline: Side, candidate: Side, spreads: dict[str, float]) -> list[str]:
    return [
        f"{cell_id}: threshold widened to {percent(wider)} for per-step metrics, the spread "
        f"between repeated processes (median step times of "
        f"{len(baseline.cells[cell_id].process_medians)} baseline and "
        f"{len(candidate.cells[cell_id].process_medians)} candidate processes)"
        for cell_id, wider in spreads.items()
    ]


def _process_spread(b: CellData, c: CellData) -> float | None:
    """The larger spread between the processes of one side (``max / min - 1`` of their median
    step times), where a side measured the cell in two processes or more.

    Per-step samples show how noisy the steps of one process are, not how far a fresh process
    lands from the last one (thread placement, allocation, the machine's state): on the
    project's 2-core VM the same cell moved 1.2-1.4x between processes, so an unchanged model
    failed a 10% gate one time in ten. Each side is taken on its own: pooled, the two sides
    would count the change under test as noise.
    """
    spreads = [s for side in (b, c) if (s := spread(side.process_medians)) is not None]
    return max(spreads) if spreads else None


def _cell_machine(b: CellData, c: CellData) -> float | None:
    """How much slower the machine was when the candidate measured this cell than when the
    baseline did (>= 1): the median of each side's per-process reference matmul, a point
    estimate. The cell's own interval already carries the uncertainty of the comparison; the
    bound it must clear is what the machine measurably did."""
    if not b.machine_medians or not c.machine_medians:
        return None
    return max(1.0, statistics.median(c.machine_medians) / statistics.median(b.machine_medians))


def _row(
    cell_id: str,
    metric: MetricDef,
    decision: Decision,
    policy: GatePolicy,
    configured: float | None = None,
    cell_machine: float | None = None,
) -> GateRow:
    lo, hi = decision.ci_lo, decision.ci_hi
    slowdown_lo: float | None = None
    if lo is not None and hi is not None:
        if not policy.higher_is_better:
            slowdown_lo = lo
        elif hi > 0:
            slowdown_lo = 1 / hi  # throughput: s = 1 / r, so the interval flips
    return GateRow(cell_id, metric, decision, policy, slowdown_lo, configured, cell_machine)


def _reference(run: RunDoc) -> dict[str, Any] | None:
    return run.reference_kernel.model_dump() if run.reference_kernel else None

"""Which configuration to deploy: the best cell for an objective under constraints, and why.

Pure functions over loaded runs; rendering lives in ``bench.report.recommend``. The objectives
are the metric registry's fields that declare a ``Goal`` (``bench.metrics``).

One decision per (model, workload): training and batch prediction are deployed separately, and
a throughput of one says nothing about the other. Candidates are the ``ok`` cells of every run
given, runs from different machines included: a cell is identified by its host and its key, and
where one host measured the same key in several runs, its latest run is used (an earlier run of
the same machine is an older measurement, not another candidate).

The winner has the best objective value among the candidates meeting every constraint. Whether
its lead is real is judged from the raw step times: the ratio of the winner's and each
runner-up's median step times gets a seeded 95% bootstrap interval, carried over to the
objective (throughput and cost per example are exactly proportional to batch / median step time
at a fixed price; energy per example is taken as proportional too, which ignores power noise;
latency uses the bootstrap of the p99 itself). The lead is *beyond noise* only when its whole
interval lies beyond the noise threshold (``bench.measure.noise``: ``--noise``, else the spread
between repeated processes of the two cells, else the gate's 10%; widened where other processes
shared the machine while they were measured or the machine changed speed): a lead that a rerun can undo is no reason to buy
hardware. Otherwise the runner-up is *within noise*, and the explanation says so instead of
pretending the point estimate decides.

Serve cells are judged by their own recorded SLO (``bench.read.own_slo``): with no latency
constraint typed, each decision among cells that recorded one gets the implicit constraint
*each cell's own SLO*; a latency constraint typed replaces it, with a warning where it judges
otherwise than a recorded SLO.

A constraint *binds* when dropping it (keeping the others) would let a better cell win; the
explanation names that cell and by how much it breaks the constraint. When nothing meets the
constraints, the cells closest to meeting them are named, ranked by how far over the limits
they are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bench.measure.noise import Noise, noise_for, summary
from bench.measure.stats import ratio_of_medians_ci, ratio_of_quantiles_ci
from bench.metrics import METRICS, find_field
from bench.metrics import fields as metric_fields
from bench.metrics import objectives as metric_objectives
from bench.read.constraints import Constraint
from bench.read.own_slo import OwnSlo, overrides, overriding
from bench.read.runset import CellView, RunSet, common_label, naming_axes
from bench.text import join_words
from bench.workloads.registry import find as find_workload


@dataclass(frozen=True)
class Objective:
    """What ``--objective`` optimises: a registry field with a ``Goal`` (``bench.metrics``)."""

    name: str
    field: str  # a bench.read.runset.fields() name
    maximize: bool
    label: str
    unit: str
    partner: str  # the other axis of the Pareto set
    partner_maximize: bool


def for_workload(objective: Objective, workload: str) -> Objective:
    """``objective`` as one workload's cells are ranked by it: throughput is the workload's
    own (a generate cell's output tokens/s, ``WorkloadSpec.throughput``); a field that reads another
    metric there (``FieldDef.by_workload``: a generate cell's cost per million output tokens)
    takes that metric's label and unit, and a partner that is examples/s becomes the
    workload's own throughput (output tokens/s): the Pareto set and the table's second
    column then hold numbers those cells have."""
    _, f = find_field(objective.field)
    own = dict(f.by_workload).get(workload)
    spec = find_workload(workload)
    throughput = spec.throughput if spec is not None else "examples_per_s"
    if objective.field == "examples_per_s" and throughput != "examples_per_s":
        # "throughput" is the workload's own: a generate group ranks by output tokens/s
        # (the objective on that metric, with its own partner).
        mine = [o for o in objectives().values() if find_field(o.field)[0].name == throughput]
        if mine:
            return mine[0]
    partner = objective.partner
    if partner == "examples_per_s" and throughput != "examples_per_s":
        partner = next((g.name for g in METRICS[throughput].fields), partner)
    if own is None and partner == objective.partner:
        return objective
    label, unit = objective.label, objective.unit
    if own is not None and own in METRICS:
        label, unit = METRICS[own].label, METRICS[own].unit
    partner_metric, _ = find_field(partner)
    return replace(
        objective,
        label=label,
        unit=unit,
        partner=partner,
        partner_maximize=partner_metric.better == "higher",
    )


def objectives() -> dict[str, Objective]:
    """Every objective the metric registry declares, by name."""
    found = {f.name: m for m, f in metric_fields()}
    return {
        name: Objective(
            name,
            f.name,
            m.better == "higher",
            goal.label,
            goal.unit,
            goal.partner,
            found[goal.partner].better == "higher",
        )
        for name, (m, f) in metric_objectives().items()
        if (goal := f.objective) is not None
    }


GROUP_FIELDS = ("model", "workload")


@dataclass(frozen=True)
class Margin:
    """How many times better ``winner`` is than another cell on the objective (>= 1)."""

    factor: float
    ci_lo: float | None
    ci_hi: float | None
    noise: Noise | None = None  # the threshold the lead must clear (with an interval)

    @property
    def within_noise(self) -> bool | None:
        """True when the interval reaches into the noise band (at most ``1 + threshold``);
        None when there is no interval."""
        if self.ci_lo is None:
            return None
        band = self.noise.band if self.noise is not None else 0.0
        return self.ci_lo <= 1.0 + band


@dataclass(frozen=True)
class RunnerUp:
    cell: CellView
    margin: Margin


@dataclass(frozen=True)
class Binding:
    """A constraint without which ``cell`` would have won, ``factor`` times better."""

    constraint: Constraint
    cell: CellView
    violation: str
    factor: float | None  # None when no cell met the constraints


@dataclass(frozen=True)
class Closest:
    cell: CellView
    violations: tuple[str, ...]
    excess: float


@dataclass(frozen=True)
class Choice:
    """The decision for one (model, workload)."""

    model: str
    workload: str
    objective: Objective
    winner: CellView | None
    runners_up: tuple[RunnerUp, ...]
    pareto: tuple[CellView, ...]
    binding: tuple[Binding, ...]
    closest: tuple[Closest, ...]
    n_cells: int
    n_candidates: int
    excluded: dict[str, int]  # why -> how many cells
    constraints: tuple[Constraint, ...]  # those on cells (model and workload chose the group)
    # The axes that tell this group's cells apart: what names a cell in the explanation.
    axes: tuple[str, ...] = ()
    # What every cell of the group shares besides model and workload, for people
    # (``cpu float32 input synthetic``): said once instead of in every cell's name.
    common: str = ""
    # Where no cell has the objective: the objectives its ok cells could be ranked by
    # (a generate group asked for examples/s has output tokens/s and a cost).
    instead: tuple[str, ...] = ()

    def name(self, cell: CellView) -> str:
        return describe(cell, self.axes)

    @property
    def tied(self) -> tuple[RunnerUp, ...]:
        return tuple(r for r in self.runners_up if r.margin.within_noise)


@dataclass(frozen=True)
class Recommendation:
    objective: Objective
    constraints: tuple[Constraint, ...]
    choices: tuple[Choice, ...]
    notes: tuple[str, ...] = field(default=())
    noise_rule: str = ""  # which noise thresholds the leads were judged against, in words
    # Each cell's own SLO, where cells recorded one and no latency constraint was typed: the
    # constraint added to the decisions of those cells, for the headline.
    implicit: tuple[Constraint, ...] = ()
    # The typed constraints that judge cells otherwise than their recorded SLO, in words.
    warnings: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """A winner for every (model, workload) shown: the exit status of ``bench recommend``."""
        return bool(self.choices) and all(c.winner is not None for c in self.choices)


def describe(cell: CellView, axes: Sequence[str], with_host: bool = True) -> str:
    """A cell in words, by the axes that tell the compared cells apart: ``jax batch 256 on vm``."""
    text = cell.label(axes)
    return f"{text} on {cell.host.label}" if with_host else text


def _better(objective: Objective, a: float, b: float) -> bool:
    return a > b if objective.maximize else a < b


def _rank(cells: Sequence[CellView], objective: Objective) -> list[CellView]:
    """Best first; ties broken by host and cell id so the order never depends on input order."""
    sign = -1.0 if objective.maximize else 1.0
    return sorted(
        cells,
        key=lambda c: (sign * (c.number(objective.field) or 0.0), c.host.label, c.cell_id),
    )


def margin(
    objective: Objective,
    winner: CellView,
    other: CellView,
    *,
    noise: float | None = None,
    runs: Sequence[tuple[str, Mapping[str, Any]]] = (),
    seed: int = 0,
    n_boot: int = 2000,
) -> Margin:
    """``winner`` over ``other`` on the objective, with a 95% interval where samples allow and
    the noise threshold the lead is judged against (``noise``: set by the user, else per cell;
    ``runs``: ``(run_id, run.json)`` of the runs the two cells come from)."""
    w, o = winner.number(objective.field), other.number(objective.field)
    assert w is not None and o is not None
    factor = w / o if objective.maximize else o / w
    ws, os_ = winner.step_samples, other.step_samples
    if ws is None or os_ is None:
        return Margin(factor, None, None)
    threshold = noise_for((winner.record, other.record), noise, runs)
    if objective.name == "latency":
        ratio, lo, hi = ratio_of_quantiles_ci(ws, os_, 99, n_boot=n_boot, seed=seed)
        # p99 of other / p99 of winner is the factor itself
        return Margin(factor, factor / ratio * lo, factor / ratio * hi, threshold)
    # median(other) / median(winner): the winner's lead in step time; the objective's factor
    # is that ratio scaled by batch sizes and prices, which have no noise
    ratio, lo, hi = ratio_of_medians_ci(ws, os_, n_boot=n_boot, seed=seed)
    return Margin(factor, factor / ratio * lo, factor / ratio * hi, threshold)


def pareto(cells: Sequence[CellView], objective: Objective) -> list[CellView]:
    """Cells no other cell beats on both the objective and its partner, in objective order."""
    scored = [
        c
        for c in cells
        if c.number(objective.field) is not None and c.number(objective.partner) is not None
    ]

    def at_least(a: CellView, b: CellView) -> bool:  # a is at least as good as b on both
        av, bv = a.number(objective.field), b.number(objective.field)
        ap, bp = a.number(objective.partner), b.number(objective.partner)
        assert av is not None and bv is not None and ap is not None and bp is not None
        first = av >= bv if objective.maximize else av <= bv
        second = ap >= bp if objective.partner_maximize else ap <= bp
        return first and second

    front = [
        c
        for c in scored
        if not any(
            at_least(d, c)
            and (d.number(objective.field), d.number(objective.partner))
            != (c.number(objective.field), c.number(objective.partner))
            for d in scored
        )
    ]
    return _rank(front, objective)


def _identity(cell: CellView) -> tuple[str, tuple[tuple[str, str], ...]]:
    return cell.host.label, tuple(sorted((k, str(v)) for k, v in cell.key.items()))


def latest_per_host(cells: Sequence[CellView], runset: RunSet) -> tuple[list[CellView], int]:
    """One record per (host, key): the one from the host's latest run. Returns the cells and
    how many earlier records were set aside."""
    started = [str(run.meta.get("started_at") or "") for run in runset.runs]
    best: dict[tuple[str, tuple[tuple[str, str], ...]], CellView] = {}
    for cell in cells:
        held = best.get(_identity(cell))
        if held is None or (started[cell.run_index], cell.run_index) >= (
            started[held.run_index],
            held.run_index,
        ):
            best[_identity(cell)] = cell
    kept = [c for c in cells if best[_identity(c)] is c]
    return kept, len(cells) - len(kept)


def choose(
    cells: Sequence[CellView],
    objective: Objective,
    constraints: Sequence[Constraint],
    *,
    model: str,
    workload: str,
    runners_up: int = 3,
    noise: float | None = None,
    runs: Sequence[tuple[str, Mapping[str, Any]]] = (),
    seed: int = 0,
    n_boot: int = 2000,
) -> Choice:
    """The decision for one (model, workload) from its cells (see the module docstring)."""
    naming = naming_axes(c.key for c in cells)
    excluded: Counter[str] = Counter()
    for cell in cells:
        if not cell.ok:
            excluded[cell.status] += 1
    ok = [c for c in cells if c.ok]
    measured = [c for c in ok if c.number(objective.field) is not None]
    if len(measured) < len(ok):
        excluded[f"without {objective.field}"] += len(ok) - len(measured)
    for constraint in constraints:
        failing = sum(1 for c in measured if not constraint.holds(c))
        if failing:
            excluded[f"failing {constraint.text}"] += failing
    candidates = _rank([c for c in measured if all(k.holds(c) for k in constraints)], objective)
    winner = candidates[0] if candidates else None
    runners = (
        [
            RunnerUp(
                c,
                margin(
                    objective,
                    winner,
                    c,
                    noise=noise,
                    runs=[runs[winner.run_index], runs[c.run_index]] if runs else (),
                    seed=seed,
                    n_boot=n_boot,
                ),
            )
            for c in candidates[1 : 1 + runners_up]
        ]
        if winner is not None
        else []
    )
    binding = []
    for constraint in constraints:
        others = [k for k in constraints if k is not constraint]
        relaxed = _rank([c for c in measured if all(k.holds(c) for k in others)], objective)
        if not relaxed or relaxed[0] is winner or constraint.holds(relaxed[0]):
            continue
        best = relaxed[0]
        factor = None
        if winner is not None:
            bv, wv = best.number(objective.field), winner.number(objective.field)
            assert bv is not None and wv is not None
            if not _better(objective, bv, wv):
                continue
            factor = bv / wv if objective.maximize else wv / bv
        binding.append(Binding(constraint, best, constraint.violation(best) or "", factor))
    closest: list[Closest] = []
    if winner is None and measured:
        scored = sorted(
            measured,
            key=lambda c: (
                sum(1 for k in constraints if not k.holds(c)),
                sum(k.excess(c) for k in constraints),
                c.host.label,
                c.cell_id,
            ),
        )
        closest = [
            Closest(
                c,
                tuple(v for k in constraints if (v := k.violation(c)) is not None),
                sum(k.excess(c) for k in constraints),
            )
            for c in scored[:3]
        ]
    return Choice(
        model=model,
        workload=workload,
        objective=objective,
        winner=winner,
        runners_up=tuple(runners),
        pareto=tuple(pareto(candidates, objective)),
        binding=tuple(binding),
        closest=tuple(closest),
        n_cells=len(cells),
        n_candidates=len(candidates),
        excluded=dict(excluded),
        constraints=tuple(constraints),
        axes=tuple(naming),
        common=common_label([c.key for c in cells], (*GROUP_FIELDS, *naming)),
        instead=_instead(ok) if ok and not measured else (),
    )


def _instead(cells: Sequence[CellView]) -> tuple[str, ...]:
    """The objectives some of ``cells`` have a number for."""
    return tuple(
        name
        for name, goal in objectives().items()
        if any(
            c.number(for_workload(goal, str(c.key.get("workload"))).field) is not None
            for c in cells
        )
    )


def recommend(
    runset: RunSet,
    objective: str | Objective,
    constraints: Sequence[Constraint] = (),
    *,
    runners_up: int = 3,
    noise: float | None = None,
    seed: int = 0,
    n_boot: int = 2000,
) -> Recommendation:
    """One ``Choice`` per (model, workload) that the constraints on model and workload admit.
    ``noise``: the threshold every lead must clear (default: per pair of cells)."""
    goal = objectives()[objective] if isinstance(objective, str) else objective
    cells, superseded = latest_per_host(runset.cells, runset)
    scope = [k for k in constraints if k.field in GROUP_FIELDS]
    rest = [k for k in constraints if k.field not in GROUP_FIELDS]
    groups: dict[tuple[str, str], list[CellView]] = {}
    for cell in cells:
        if all(k.holds(cell) for k in scope):
            ident = (str(cell.key.get("model", "?")), str(cell.key.get("workload", "?")))
            groups.setdefault(ident, []).append(cell)
    # Each cell's own SLO, unless the user typed a latency constraint (it replaces it).
    own = {g: None if overriding(rest) else OwnSlo.of(groups[g]) for g in groups}
    choices = tuple(
        choose(
            groups[g],
            for_workload(goal, g[1]),
            [*rest, *filter(None, [own[g]])],
            model=g[0],
            workload=g[1],
            runners_up=runners_up,
            noise=noise,
            runs=[(run.run_id, run.meta) for run in runset.runs],
            seed=seed,
            n_boot=n_boot,
        )
        for g in sorted(groups)
    )
    notes = []
    if superseded:
        notes.append(
            f"{superseded} earlier record(s) of a cell measured again on the same host were set "
            "aside for the latest run's"
        )
    if not groups:
        notes.append(
            f"no cell matches {join_words([k.text for k in scope])}" if scope else "no cells"
        )
    used = [r.margin.noise for c in choices for r in c.runners_up if r.margin.noise]
    if noise is not None:
        used.append(noise_for((), noise))
    judged = [c for g in sorted(groups) for c in groups[g]]
    implicit = None if overriding(rest) else OwnSlo.of(judged)
    return Recommendation(
        goal,
        tuple(constraints),
        choices,
        tuple(notes),
        summary(used),
        implicit=(implicit,) if implicit is not None else (),
        warnings=tuple(overrides(rest, judged)),
    )

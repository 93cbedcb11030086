"""The race: every measured cell stays in until the gate's statistics show it worse than the
current leader beyond noise.

A cell's evidence is its pooled samples of the objective. Each timed step is a sample: the
cell's measured objective value scaled by that step's time against the median, the way
``bench recommend`` carries a step-time interval over to throughput or cost (a serve cell's
highest rate under its SLO is one value per process). A rival leaves the race when
``bench.gate.decision.decide`` of leader (baseline) vs rival (candidate) says REGRESSED: its
interval of the ratio of medians lies wholly beyond the noise threshold, and the Mann-Whitney
test agrees. The threshold is the spread between processes measured so far (a cell measured
in two processes shows what a rerun changes: ``bench.measure.noise.spread``), never below
``MIN_THRESHOLD``; before any cell was measured twice it is the gate's default. Per-process
objectives are too few for a rank test; a rival leaves when its best process is worse than the
leader's worst by more than the threshold.

A cell whose measurement breaks a constraint leaves too: it can never be the answer.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.gate.decision import GatePolicy, Verdict, decide
from bench.measure.noise import DEFAULT_THRESHOLD, spread
from bench.read.constraints import Constraint
from bench.read.runset import CellView, Host, read_fields
from bench.tune.objective import Target
from bench.tune.space import TuneCell

# The smallest threshold the race eliminates at: two processes of one cell agreeing within 1%
# say little about a third.
MIN_THRESHOLD = 0.01
# The race's gate: its own 10 samples per side and alpha, fewer bootstrap draws (thousands of
# decisions per tune; 500 draws put the interval's ends within a fraction of a percent).
MIN_SAMPLES = 10
RACE_BOOT = 500
_HOST = Host("tune", "tune", "", ())


def view(record: Mapping[str, Any]) -> CellView:
    """A record as the reading side sees it (fields, samples)."""
    return CellView(
        0, "", _HOST, record["cell_id"], record["key"], record["status"],
        str(record.get("reason") or ""), tuple(record.get("flags") or ()), record,
        read_fields(record, _HOST, ""),
    )  # fmt: skip


def objective_samples(cell: CellView, target: Target) -> np.ndarray | None:
    """The objective per timed step (or the one per-process value), or None when the record
    has no value of it."""
    value = cell.number(target.objective.field)
    if value is None:
        return None
    steps = cell.step_samples
    if not target.per_step or steps is None:
        return np.array([value])
    median = float(np.median(steps))
    return value * median / steps if target.rate else value * steps / median


@dataclass
class Entry:
    cell: TuneCell
    records: list[dict[str, Any]] = field(default_factory=list)
    parts: list[np.ndarray] = field(default_factory=list)  # objective samples per process
    broken: str = ""  # the constraint its latest measurement broke
    excess: float = 0.0  # how far beyond the constraints' limits (bench.read.constraints)
    failed: str = ""  # status: reason of a measurement that did not end ok
    out: str = ""  # why it left the race ("" while in it)
    by: str = ""  # the leader that showed it worse
    views: list[CellView] = field(default_factory=list)  # each ok record, as read

    @property
    def samples(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.array([])

    @property
    def value(self) -> float | None:
        return float(np.median(self.samples)) if self.parts else None

    @property
    def medians(self) -> list[float]:
        return [float(np.median(p)) for p in self.parts]

    @property
    def alive(self) -> bool:
        return not self.out and not self.failed and not self.broken and bool(self.parts)


class _Typical:
    """A cell's fields as the median over its processes (text fields: the latest), for
    constraints (``Constraint.violation`` reads ``get``)."""

    def __init__(self, views: Sequence[CellView]):
        self.views = views

    def get(self, name: str) -> float | str | None:
        values = [v.get(name) for v in self.views]
        numbers = [x for x in values if isinstance(x, float)]
        if numbers and len(numbers) == len(values):
            return float(statistics.median(numbers))
        return values[-1]


class Race:
    def __init__(self, target: Target, constraints: Sequence[Constraint], *, seed: int = 0):
        self.target = target
        self.constraints = list(constraints)
        self.entries: dict[str, Entry] = {}
        self.seed = seed
        self.eliminated = 0

    @property
    def maximize(self) -> bool:
        return self.target.objective.maximize

    def has(self, cell: TuneCell) -> bool:
        return cell.cell_id in self.entries

    def add(self, cell: TuneCell, record: dict[str, Any]) -> Entry:
        entry = self.entries.setdefault(cell.cell_id, Entry(cell))
        entry.records.append(record)
        if record.get("status") != "ok":
            entry.failed = f"{record.get('status')}: {record.get('reason', '')}"
            return entry
        seen = view(record)
        samples = objective_samples(seen, self.target)
        if samples is None:
            entry.failed = f"no {self.target.objective.field} measured"
            return entry
        entry.parts.append(samples)
        entry.views.append(seen)
        # Judged on the median over its processes: one process's slow tail does not throw out
        # a cell that meets a limit, nor one lucky process let in a cell that breaks it.
        typical = _Typical(entry.views)
        broken = [v for k in self.constraints if (v := k.violation(typical)) is not None]  # type: ignore[arg-type]
        entry.broken = "; ".join(broken)
        entry.excess = sum(k.excess(typical) for k in self.constraints)  # type: ignore[arg-type]
        return entry

    def better(self, a: float, b: float) -> bool:
        return a > b if self.maximize else a < b

    def ranked(self) -> list[Entry]:
        """Cells still in the race, best estimate first (ties by cell id: never by order)."""
        alive = [e for e in self.entries.values() if e.alive]
        sign = -1.0 if self.maximize else 1.0
        return sorted(alive, key=lambda e: (sign * (e.value or 0.0), e.cell.cell_id))

    def guide(self, entries: Sequence[Entry], dropped: bool = False) -> list[Entry]:
        """Where a search should go next among ``entries``: cells by estimate, then cells that
        broke a constraint, closest to meeting it first (a search that starts beyond a latency
        limit walks toward it); cells that failed are not ranked. ``dropped``: those the race
        dropped count too (a poor cell can lie on the way to a good one: it left the race,
        not the map)."""
        sign = -1.0 if self.maximize else 1.0
        usable = [e for e in entries if not e.failed and e.parts and (dropped or not e.out)]

        return sorted(
            usable,
            key=lambda e: (1, e.excess, "") if e.broken else (0, sign * (e.value or 0.0), ""),
        )

    def leader(self) -> Entry | None:
        ranked = self.ranked()
        return ranked[0] if ranked else None

    def threshold(self) -> float:
        """The noise threshold: the spread between processes seen so far (its upper quartile
        over the cells measured more than once), at least ``MIN_THRESHOLD``."""
        spreads = [s for e in self.entries.values() if (s := spread(e.medians)) is not None]
        if not spreads:
            return DEFAULT_THRESHOLD
        upper = float(np.percentile(spreads, 75)) if len(spreads) > 1 else spreads[0]
        return max(MIN_THRESHOLD, upper)

    def worse(self, leader: Entry, rival: Entry, threshold: float) -> str:
        """Why ``rival`` is worse than ``leader`` beyond noise, or "" when not shown."""
        if not self.target.per_step:
            lead, best = min(leader.medians), max(rival.medians)
            if not self.maximize:
                lead, best = max(leader.medians), min(rival.medians)
            factor = lead / best if self.maximize else best / lead
            if factor > 1.0 + threshold:
                return f"{factor:.3g}x worse than the leader in every process"
            return ""
        policy = GatePolicy(
            threshold=threshold,
            higher_is_better=self.maximize,
            min_samples=MIN_SAMPLES,
            n_boot=RACE_BOOT,
            seed=self.seed,
        )
        found = decide(leader.samples, rival.samples, policy)
        if found.verdict != Verdict.REGRESSED:
            return ""
        return (
            f"worse than {leader.cell.cell_id} beyond the {threshold:.1%} noise band: "
            f"{found.reason}"
        )

    def eliminate(self) -> list[Entry]:
        """Drop every cell the statistics show worse than the leader; returns those dropped."""
        # A cell shown worse than a leader that has since left the race (it broke a limit in
        # a later round) is back in: it was never compared with the leader there is now.
        alive = {e.cell.cell_id for e in self.ranked()}
        for entry in self.entries.values():
            if entry.out and entry.by and entry.by not in alive:
                entry.out = entry.by = ""
        leader = self.leader()
        if leader is None:
            return []
        threshold = self.threshold()
        dropped = []
        for rival in self.ranked()[1:]:
            why = self.worse(leader, rival, threshold)
            if why:
                rival.out, rival.by = why, leader.cell.cell_id
                dropped.append(rival)
        self.eliminated += len(dropped)
        return dropped

    def halve(self) -> list[Entry]:
        """Successive halving's cut: keep the better half by estimate (for the comparison in
        ``.ci/tune-bench``; the race's rule is ``eliminate``)."""
        ranked = self.ranked()
        dropped = ranked[(len(ranked) + 1) // 2 :]
        for rival in dropped:
            rival.out = "in the worse half of its round (successive halving)"
        self.eliminated += len(dropped)
        return dropped

    def processes(self, cell_id: str) -> int:
        return len(self.entries[cell_id].parts)

    def spread_cells(self) -> int:
        return sum(1 for e in self.entries.values() if len(e.parts) > 1)

    def mean_value(self) -> float | None:
        values = [e.value for e in self.entries.values() if e.value is not None]
        return statistics.fmean(values) if values else None

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

A cell that breaks a constraint leaves too: it can never be the answer. Constraints are judged
on the cell's processes merged as ``bench recommend`` merges them. A limit on a percentile of
the step times is judged on the percentile's distribution-free bounds from the pooled steps: it
is met when the upper bound meets it and broken when the lower bound breaks it (a p99 of a few
dozen steps is biased low and bounds nothing). Another numeric limit is judged on the merged
value, once ``SETTLED`` processes agree where the value lies within noise of it. A cell not yet
settled on a limit stays in the race, is measured again, and is no finalist while unsure. The
tail its peers' steps show guesses how long a measurement would settle it (``needed``): the
guess sizes that measurement and keeps a cell it puts beyond the limit from leading the race;
only the bounds decide.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.gate.decision import GatePolicy, Verdict, decide
from bench.measure.noise import DEFAULT_THRESHOLD, spread
from bench.measure.repeats import merge_repeats
from bench.measure.stats import quantile_bounds
from bench.metrics import find_field
from bench.read.constraints import Constraint
from bench.read.runset import CellView, Host, read_fields
from bench.tune.objective import Target
from bench.tune.space import TuneCell

# The smallest threshold the race eliminates at: two processes of one cell agreeing within 1%
# say little about a third.
MIN_THRESHOLD = 0.01
# Processes after which a cell within noise of a limit is judged as `bench recommend` judges
# it, on its merged record.
SETTLED = 3
# Bootstrap draws of a merge the race reads only the pooled statistics of.
MERGE_BOOT = 20
# The race's gate: its own 10 samples per side and alpha, fewer bootstrap draws (thousands of
# decisions per tune; 500 draws put the interval's ends within a fraction of a percent).
MIN_SAMPLES = 10
RACE_BOOT = 500
# A limit on a percentile of the step times is met when the percentile's distribution-free
# upper bound at this confidence is (``bench.measure.stats.quantile_bounds``): a brief
# measurement's p99 is biased low (the slowest steps are rare) and bounds nothing below 299
# steps, so a cell that seems to meet a p99 limit is measured longer before it can be the answer.
LIMIT_CONFIDENCE = 0.95
# A long measurement is sized to show the bound meeting the limit this often where the guess
# of the cell's tail holds (``Race.needed``), and never longer than this many steps: beyond it,
# the guess (a few hundred pooled steps) cannot tell. A cell whose steps lie under a p99 limit
# 99.5% of the time needs 4,352, one at 99.35% 8,499: at 5,000 steps the 1% a process's offset
# moves a brief median decided whether a cell 3% under its limit was measured long at all (grid
# 83 of the simulator: 7 of 10 reruns). The budget's share (``LONG_SHARE``) mostly binds first.
SETTLE_POWER = 0.95
MOST_STEPS = 10_000
# The cells whose step times share a tail (``Race.tail``): one framework on one device, fed
# by one input pipeline (a host pipeline adds its own slow steps).
TAIL_BY = ("framework", "device", "input")
_HOST = Host("tune", "tune", "", ())


def percentile_of(constraint: Constraint) -> tuple[float, float] | None:
    """(the quantile, the field's scale) when ``constraint`` limits a percentile of the step
    times (``p99_ms``), else None."""
    try:
        metric, spec = find_field(constraint.field)
    except KeyError:
        return None
    if metric.name != "step_time_s" or not re.fullmatch(r"p\d+", spec.stat):
        return None
    return int(spec.stat[1:]) / 100.0, spec.scale


def least_steps(q: float) -> int:
    """The fewest steps whose order statistics bound the ``q``-quantile from above."""
    return math.ceil(math.log(1.0 - LIMIT_CONFIDENCE) / math.log(q))


def steps_to_bound(q: float, level: float, least: int) -> int | None:
    """The fewest steps (from ``least``, growing by a quarter) at which a cell whose steps lie
    under a limit with probability ``level`` shows its ``q``-quantile's upper bound under it
    with probability ``SETTLE_POWER`` (normal approximations of the binomial counts); None
    when none up to ``MOST_STEPS`` does."""
    if level <= q:
        return None
    normal = statistics.NormalDist()
    z_bound, z_power = normal.inv_cdf(LIMIT_CONFIDENCE), normal.inv_cdf(SETTLE_POWER)
    n = float(least)
    while n <= MOST_STEPS:
        # the upper bound is about this many steps up the sorted samples ...
        rank = n * q + z_bound * math.sqrt(n * q * (1.0 - q)) + 1.0
        # ... and the steps under the limit are at least this many, SETTLE_POWER of the time
        under = n * level - z_power * math.sqrt(n * level * (1.0 - level))
        if under >= min(rank, n):
            return math.ceil(n)
        n *= 1.25
    return None


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
    broken: str = ""  # the constraints its processes, merged, break
    unsure: str = ""  # the limits it is not yet settled on: measured again before it is judged
    short: int = 0  # the steps at least that a percentile limit still needs to be judged
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
    def pooled_steps(self) -> int:
        """The timed steps of all its ok processes together."""
        return sum(s.size for seen in self.views if (s := seen.step_samples) is not None)

    @property
    def alive(self) -> bool:
        return not self.out and not self.failed and not self.broken and bool(self.parts)


class Race:
    def __init__(self, target: Target, constraints: Sequence[Constraint], *, seed: int = 0):
        self.target = target
        self.constraints = list(constraints)
        self.entries: dict[str, Entry] = {}
        self.seed = seed
        self.eliminated = 0
        self._tails: dict[tuple[str, ...], np.ndarray | None] = {}
        # The most pooled steps a cell's long measurement may reach (the tune's: what its
        # budget allows one long measurement at the cell's step time).
        self.most_steps: Callable[[Entry], float] = lambda entry: MOST_STEPS

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
        self._tails.clear()
        # Judged on the record `bench recommend` will read (the processes merged, step times
        # pooled), so the race never keeps a cell the answer then rules out, nor the reverse.
        ok = [r for r in entry.records if r.get("status") == "ok"]
        merged = view(merge_repeats(ok, n_boot=MERGE_BOOT)) if len(ok) > 1 else seen
        entry.broken, entry.unsure = self.judge(entry, merged)
        entry.excess = sum(k.excess(merged) for k in self.constraints)
        return entry

    def judge(self, entry: Entry, merged: CellView) -> tuple[str, str]:
        """(the constraints ``merged`` breaks, those it is not yet settled on); neither in nor
        out until measured again. A limit on a percentile of the step times is judged on the
        percentile's bounds from the pooled steps; another numeric limit, on the merged value
        once ``SETTLED`` processes agree, or sooner when the value is clear of the limit's
        noise band."""
        broken, unsure = [], []
        entry.short = 0
        for constraint in self.constraints:
            bounded = self.bounded(constraint, entry, merged)
            if bounded is not None:
                verdict, why = bounded
                if verdict == "broken":
                    broken.append(why)
                elif verdict == "unsure":
                    unsure.append(why)
                continue
            why = constraint.violation(merged)
            near = self.near(constraint, entry, merged)
            if near and len(entry.parts) < SETTLED:
                unsure.append(near)
            elif why:
                broken.append(why)
        return "; ".join(broken), "; ".join(unsure)

    def bounded(
        self, constraint: Constraint, entry: Entry, merged: CellView
    ) -> tuple[str, str] | None:
        """("met" | "broken" | "unsure", why) of a limit on a step-time percentile, judged on
        the percentile's one-sided bounds; None for any other limit, or no step samples."""
        percentile = percentile_of(constraint)
        steps = merged.step_samples
        if percentile is None or steps is None or constraint.number is None:
            return None
        if constraint.op not in ("<", "<=", ">", ">="):
            return None
        q, scale = percentile
        lower, upper = quantile_bounds(steps, q, confidence=LIMIT_CONFIDENCE)
        below = constraint.op in ("<", "<=")
        meets, breaks = (upper, lower) if below else (lower, upper)
        limit = constraint.number
        if meets is not None and constraint.holds_number(meets * scale):
            return "met", ""
        if breaks is not None and not constraint.holds_number(breaks * scale):
            bound = "lower" if below else "upper"
            return "broken", (
                f"{constraint.field}: its {bound} bound {breaks * scale:.4g} breaks "
                f"{constraint.op}{limit:g}"
            )
        need = least_steps(q)
        entry.short = max(entry.short, need - steps.size if steps.size < need else steps.size)
        return "unsure", (
            f"{constraint.field} not yet bounded on {constraint.op}{limit:g} by {steps.size} steps"
        )

    def tail(self, entry: Entry) -> np.ndarray | None:
        """The steps of ``entry``'s peers (the cells that share its ``TAIL_BY`` values), each
        over its process's median, pooled; None before any."""
        group = tuple(str(entry.cell.key.get(a)) for a in TAIL_BY)
        if group not in self._tails:
            ratios = [
                steps / float(np.median(steps))
                for peer in self.entries.values()
                if tuple(str(peer.cell.key.get(a)) for a in TAIL_BY) == group
                for seen in peer.views
                if (steps := seen.step_samples) is not None and steps.size
            ]
            self._tails[group] = np.concatenate(ratios) if ratios else None
        return self._tails[group]

    def needed(self, entry: Entry, hopeful: bool = False) -> int | None:
        """The pooled steps at which ``entry``'s percentile bounds are expected to show it
        meeting its limits (0: none needed), guessed from its median and its peers' tail
        (``tail``): the count of steps under the limit must reach the upper bound's order
        statistic with probability ``SETTLE_POWER``. None where no length is expected to (the
        guess puts the percentile beyond the limit). A guide, never a verdict (the bounds
        are). ``hopeful``: guessed at a median one noise band faster (what a process's offset
        moves a brief median by)."""
        if not entry.short:
            return 0
        pooled = self.tail(entry)
        own = [s for seen in entry.views if (s := seen.step_samples) is not None]
        need = 0
        for constraint in self.constraints:
            percentile = percentile_of(constraint)
            if percentile is None or constraint.number is None:
                continue
            q, scale = percentile
            least = least_steps(q)
            if pooled is None or not own or constraint.op not in ("<", "<="):
                need = max(need, least)
                continue
            median = float(np.median(np.concatenate(own)))
            if hopeful:
                median /= 1.0 + self.threshold()
            level = float(np.mean(pooled * median * scale <= constraint.number))
            found = steps_to_bound(q, level, least)
            if found is None:
                return None
            need = max(need, found)
        return need

    def likely(self, entry: Entry, hopeful: bool = False) -> bool:
        """Whether a long measurement may be expected to show ``entry`` meeting its percentile
        limits (``needed``) within ``MOST_STEPS`` and ``most_steps``."""
        need = self.needed(entry, hopeful)
        return need is not None and need <= min(MOST_STEPS, self.most_steps(entry))

    def near(self, constraint: Constraint, entry: Entry, merged: CellView) -> str:
        """Why ``merged`` is within noise of a numeric limit ("" when clear of it). The band:
        the spread of the field between the cell's processes, or the race's threshold."""
        value = merged.get(constraint.field)
        if constraint.number is None or not isinstance(value, float):
            return ""
        per_process = [
            v for seen in entry.views if isinstance(v := seen.get(constraint.field), float)
        ]
        band = max(self.threshold(), spread(per_process) or 0.0)
        gap = abs(value - constraint.number) / max(abs(constraint.number), 1e-12)
        if gap > band:
            return ""
        return (
            f"{constraint.field} = {value:.4g}, within the {band:.1%} noise band of "
            f"{constraint.op}{constraint.number:g}"
        )

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
        # a later round) or can no longer be the answer (a percentile limit it is no longer
        # likely to be shown meeting) is back in: it was never compared with the leader there
        # is now.
        alive = {e.cell.cell_id for e in self.ranked() if not e.short or self.likely(e)}
        for entry in self.entries.values():
            if entry.out and entry.by and entry.by not in alive:
                entry.out = entry.by = ""
        ranked = self.ranked()
        # The leader is the best cell that may be the answer: one a percentile limit will
        # likely rule out would hold back the rest and never leave.
        leader = next((e for e in ranked if self.likely(e)), ranked[0] if ranked else None)
        if leader is None:
            return []
        threshold = self.threshold()
        dropped = []
        for rival in ranked:
            if rival is leader:
                continue
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

"""The tune itself: prune by memory, search the grid briefly, race, re-measure the survivors
interleaved, and let ``bench recommend``'s decision name the answer.

The order of measuring follows the grid's usual structure, which guides and never decides:

1. *Starts*: one per (framework, device), at the largest batch that fits (``memory``,
   bisected), the middle of the other ordered axes and the first value of the text axes.
2. *Coordinate descent*: each start's text axes that change the program first (precision, not
   the input pipeline), then, most promising first: of the cells reached (the starts, then
   each measured line's best and the cells tied with it within noise), the one whose estimate,
   raised by the typical gain of a walked line for each ordered axis not yet walked through
   it (``promise``), is highest gets a line measured: along an ordered axis a walk from the
   cell toward better cells that stops past the best (or, up the batch, at memory: then the
   next batch at fewer steps per call, ``past_wall``), along a text axis every value. Ties
   branch, those along a host axis (another input pipeline feeding the same program) last;
   cells the race dropped still guide the search, never the answer.
3. *Widening*: while the search's share of the budget lasts, the unmeasured neighbours of the
   best cells still in the race.
4. *Rounds*: the cells still in the race are measured again, interleaved (each round in a
   rotated order, so drift falls on every cell alike), up to ``FINAL_PROCESSES`` processes
   each; after each, the race's rule drops those shown worse. The last rounds leave the
   finalists, each measured in several processes.
5. *Settling*: the leading cells a percentile limit cannot yet judge are measured long
   enough to judge it, twice at most (``settle``): the search's best as soon as it leads
   (``settle_leader``), the others before each round and after the rounds.

Every measurement but settling's is brief (``brief_rule``); every cell it touches stays in the
run folder. The
answer is ``bench recommend`` over the finalists' merged records: its winner, and the cells it
cannot tell from the winner (the tie set).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from bench.measure.repeats import merge_repeats
from bench.measure.timing import RunLength
from bench.metrics import value_of
from bench.read.constraints import Constraint
from bench.read.recommend import Recommendation, recommend
from bench.tune.budget import Budget
from bench.tune.measurer import Measurer
from bench.tune.memory import GROWS, HOST_AXES, Memory
from bench.tune.objective import ObjectiveError, Target
from bench.tune.race import MIN_SAMPLES, SETTLED, Entry, Race
from bench.tune.space import BATCH, Space, TuneCell

Strategy = Literal["race", "halving"]
# Of the budget, the share the search (steps 1-3) may use at least; the rest is kept for the
# rounds, but never more than the cells in the race would need in them.
SEARCH_SHARE = 0.6
# Rounds re-measure at most this many cells (best estimates first), and stop when this few are
# left measured in at least ``FINAL_PROCESSES`` processes each.
ROUND_WIDTH = 8
FINALISTS = 3
FINAL_PROCESSES = SETTLED
# One long measurement (``settle``) takes at most this share of the budget: a cell that needs
# more lies at its limit's edge, where the bounds settle it only with thousands of steps.
LONG_SHARE = 0.3
# Long measurements of one cell at most: a second where the first fell short but the cell's
# own steps still say a longer one will settle it.
LONG_TRIES = 2
# Search-then-rounds passes at most: budget left after the rounds is searched with again.
PASSES = 3
# One start per combination of these axes' values: per precision as well costs a bisection
# each and did worse on the simulator's grids (.ci/tune-bench) than walking the precision line.
STARTS_BY = ("framework", "device")


def brief_rule(rule: RunLength, brief_s: float) -> RunLength:
    """A brief measurement: the scenario's warm-up, the race's minimum of samples, and about
    ``brief_s`` of steps (never more than the scenario's own measurement)."""
    seconds = min(brief_s, rule.min_seconds)
    return RunLength(
        warmup_steps=rule.warmup_steps,
        min_steps=max(MIN_SAMPLES, 2),
        min_seconds=seconds,
        max_seconds=max(min(rule.max_seconds, 2 * seconds), seconds + 1e-9),
        target_rel_ci=rule.target_rel_ci,
    )


@dataclass
class Settings:
    brief_s: float = 1.0
    strategy: Strategy = "race"
    seed: int = 0


@dataclass
class Outcome:
    """What a tune did and found."""

    recommendation: Recommendation | None
    race: Race
    memory: Memory
    budget: Budget
    measurements: int = 0
    rounds: int = 0
    finalists: list[str] = field(default_factory=list)
    stopped: str = ""  # why the search stopped early, if it did
    log: list[str] = field(default_factory=list)

    @property
    def measured_cells(self) -> int:
        return len(self.race.entries)


class Tune:
    def __init__(
        self,
        space: Space,
        measurer: Measurer,
        target: Target,
        constraints: Sequence[Constraint],
        budget: Budget,
        rule: RunLength,
        settings: Settings | None = None,
        on_event: Callable[..., None] | None = None,
    ):
        self.space, self.measurer, self.target = space, measurer, target
        self.constraints = list(constraints)
        self.budget, self.settings = budget, settings or Settings()
        self.brief = brief_rule(rule, self.settings.brief_s)
        self.race = Race(target, self.constraints, seed=self.settings.seed)
        self.race.most_steps = self.most_steps
        self.memory = Memory(space, measurer.probe, self._probed)
        budget.fits = self._known_fit
        self.costs: list[float] = []
        self.measurements = 0
        self.on_event = on_event or (lambda *a, **k: None)
        self.log: list[str] = []
        self.searching = False
        self.frontier: dict[str, TuneCell] = {}
        self.swept: set[tuple[str, str]] = set()
        self.echoes: set[str] = set()  # cells reached only as a host axis's tie
        self.gains: list[float] = []  # what sweeping an ordered line gained over its cell
        self.settled: dict[str, int] = {}  # long measurements per cell, for a percentile limit

    @property
    def reserve(self) -> float:
        """What the search leaves for the rounds: a share of the budget as now estimated."""
        if not self.searching:
            return 0.0
        # What the rounds would need now: a measurement for each cell in the race beyond the
        # finalists, and the finalists' missing processes.
        ranked = self.race.ranked()[:ROUND_WIDTH]
        missing = sum(max(0, FINAL_PROCESSES - len(e.parts)) for e in ranked[:FINALISTS])
        need = (missing + max(0, len(ranked) - FINALISTS)) * self.cost()
        need += self.settling()
        return min((1.0 - SEARCH_SHARE) * self.budget.total_s, need)

    # -- measuring ---------------------------------------------------------------------------

    def _known_fit(self, key: Any) -> bool | None:
        cell = self.space.find(key)
        return self.memory.known(cell) if cell is not None else None

    def _probed(self, cell: TuneCell, probe: Any) -> None:
        self.budget.spend(probe.seconds)
        if not probe.cached:  # a cached program's load says nothing of the full grid's compiles
            self.budget.note_compile(cell.key, probe.seconds)
        self.on_event("probe", cell=cell, probe=probe)

    def cost(self) -> float:
        """The device time one more brief measurement is expected to take."""
        if self.costs:
            return statistics.fmean(self.costs)
        return self.brief.min_seconds

    def affordable(self, n: int = 1, reserve: float | None = None) -> bool:
        keep = self.reserve if reserve is None else reserve
        return self.budget.left_s() - keep >= n * self.cost()

    def measure(
        self, cells: Sequence[TuneCell], *, again: bool = False, rule: RunLength | None = None
    ) -> list[Entry]:
        """Measure the cells (once each, in order) that fit and that the budget allows;
        ``again``: cells already measured are measured once more (the rounds); ``rule``: a
        longer measurement than the brief one (``settle``), paid for by the caller's check."""
        todo: dict[str, TuneCell] = {}
        for cell in cells:
            if cell.cell_id in todo or (self.race.has(cell) and not again):
                continue
            # a probe costs a compile: none the budget cannot also measure after
            if self.memory.known(cell) is None and not self.affordable(2):
                break
            if self.memory.fits(cell):
                todo[cell.cell_id] = cell
        room = max(0, int((self.budget.left_s() - self.reserve) // self.cost()))
        todo_cells = list(todo.values())[: len(todo) if rule else room]
        if not todo_cells:
            return []
        entries = []
        measured = self.measurer.measure(todo_cells, rule or self.brief, fresh=again)
        for cell, (record, seconds) in zip(todo_cells, measured, strict=True):
            self.budget.spend(seconds)
            if rule is None:  # the brief measurement's cost, which plans the rest
                self.costs.append(seconds)
            self.measurements += 1
            self.memory.measured(cell, str(record.get("status")))
            entry = self.race.add(cell, record)
            self._note(record)
            self.on_event("measured", cell=cell, entry=entry, seconds=seconds)
            entries.append(entry)
        self._check_objective()
        return entries

    def _note(self, record: dict[str, Any]) -> None:
        metrics = record.get("metrics") or {}
        step = value_of(metrics.get("step_time_s"), "median")
        if record.get("status") == "ok" and step is not None:
            compiled = metrics.get("compile_s") or {}
            # a program from the tune's compilation cache: its load is no compile's time
            compile_s = None if compiled.get("cached") else (value_of(compiled) or 0.0)
            # the run-length rule counts calls: a call is steps_per_call steps
            key = record.get("key") or {}
            per_call = int(key.get("steps_per_call") or 1)
            self.budget.note_cell(key, compile_s, step * per_call)

    def _check_objective(self) -> None:
        """ObjectiveError once every measured cell ran ok but none has the objective: the
        scenario cannot measure it (no price for cost, no tokens for tokens/s)."""
        entries = list(self.race.entries.values())
        ok = [e for e in entries if any(r.get("status") == "ok" for r in e.records)]
        if ok and not any(e.parts for e in entries):
            field_name = self.target.objective.field
            reason = ok[0].failed
            raise ObjectiveError(
                f"--objective {self.target.objective.name}: the scenario's cells ran but measure "
                f"no {field_name} ({reason}); pick an objective its cells report"
            )

    # -- the search --------------------------------------------------------------------------

    def best(self, cells: Sequence[TuneCell]) -> TuneCell | None:
        """The best of ``cells`` to go on from (``Race.guide``)."""
        measured = [self.race.entries[c.cell_id] for c in cells if self.race.has(c)]
        ranked = self.race.guide(measured)
        return ranked[0].cell if ranked else None

    def starts(self) -> list[TuneCell]:
        """One start per ``STARTS_BY`` combination the space has: at the largest batch that
        fits (bisected), the middle of the other ordered axes and the first value of the other
        text axes."""
        kinds = STARTS_BY
        groups: dict[tuple[str, ...], TuneCell] = {}
        for cell in self.space.cells:
            groups.setdefault(tuple(str(cell.value(a)) for a in kinds), cell)
        found = []
        for first in groups.values():
            key = dict(first.key)
            for axis in self.space.axes:
                if axis in (*kinds, BATCH):
                    continue
                values = self.space.values[axis]
                key[axis] = values[len(values) // 2] if self.space.ordered[axis] else values[0]
            cell = self.space.find(key) or first
            if BATCH in self.space.axes:
                largest = self.memory.largest(cell)
                if largest is None:
                    continue
                cell = self.space.find({**cell.key, BATCH: largest}) or cell
            found.append(cell)
        return found

    def walk(self, cell: TuneCell, axis: str) -> TuneCell:
        """Along an ordered axis: from ``cell``, measure toward better cells, past the best."""
        line = self.space.line(cell, axis)
        if cell not in line or not self.memory.fits(cell):
            return cell
        here = line.index(cell)
        self.measure([cell])
        for step in (-1, 1):
            at = here
            while 0 <= at + step < len(line) and self.affordable():
                # Only the next cell's memory is asked (a probe is a compile): past one that
                # does not fit, none does (memory grows along an ordered axis or not at all).
                if not self.memory.fits(line[at + step]):
                    if axis == BATCH and step == 1 and self.best(line) is line[at]:
                        self.past_wall(line[at + step])
                    break
                self.measure([line[at + step]])
                best = self.best(line)
                if best is None or line.index(best) != at + step:
                    break
                at += step
        return self.best(line) or cell

    def settle_leader(self) -> None:
        """The search's best cell, when a percentile limit cannot yet judge it and a long
        measurement is likely to (``to_settle``), is measured long as soon as it leads
        (``settle_one``), not in the rounds: a search that found it late left the rounds too
        little to pay for it, and once it is judged, what the search held back for it is the
        search's again. Measured in one process, whether it is likely turns on a median that
        the process's own offset moves (``Race.needed``): a leader ruled out only at that
        median is measured once more first."""
        leader = self.race.leader()
        if leader is None or not leader.short:
            return
        likely = self.race.likely(leader)
        if not likely and len(leader.parts) == 1 and self.race.likely(leader, hopeful=True):
            self.measure([leader.cell], again=True)
            self.race.eliminate()
            likely = not leader.out and self.race.likely(leader)
        first = self.to_settle()[:1]
        if likely and first and first[0] is leader:
            self.settle_one(leader)

    def past_wall(self, cell: TuneCell) -> None:
        """A walk up the batch that was still gaining stopped at ``cell``, which does not fit:
        the same batch at fewer steps per call (each takes a batch of memory) may fit, and the
        best cell lie there. The first that fits, from the most steps down, is measured and
        reached by the descent."""
        for axis in (a for a in GROWS if a in self.space.axes):
            values = self.space.values[axis]
            below = [v for v in values if values.index(v) < values.index(cell.value(axis))]
            for value in reversed(below):
                other = self.space.find({**cell.key, axis: value})
                if other is None or not self.affordable(2):
                    continue
                if self.memory.fits(other):
                    self.measure([other])
                    self.frontier.setdefault(other.cell_id, other)
                    return

    def axis_order(self) -> list[str]:
        """The batch first (it moves throughput most), then other ordered axes, then text."""
        return sorted(self.space.axes, key=lambda a: (a != BATCH, not self.space.ordered[a]))

    def line(self, cell: TuneCell, axis: str) -> list[Entry]:
        """Measure along ``axis`` from ``cell``; the line's measured cells, best first."""
        if self.space.ordered[axis]:
            self.walk(cell, axis)
        else:
            self.measure(self.space.line(cell, axis))
        self.race.eliminate()
        found = self.space.line(cell, axis)
        measured = [self.race.entries[c.cell_id] for c in found if self.race.has(c)]
        return self.race.guide(measured, dropped=True)

    def tied(self, top: Entry, other: Entry) -> bool:
        """Whether ``other`` is within the race's noise threshold of ``top`` by estimate."""
        if other.broken or top.broken or not top.value or not other.value:
            return False
        ratio = top.value / other.value if self.race.maximize else other.value / top.value
        return ratio <= 1.0 + self.race.threshold()

    def descend(self, starts: Sequence[TuneCell]) -> None:
        """Coordinate descent, most promising line first: of the cells reached so far (the
        starts, then each line's best and the cells tied with it), the one ``promise`` ranks
        first gets a line not yet measured through it measured next. Ties branch, so a tie
        between input pipelines at one batch does not hide a better batch of the other
        pipeline; such a tie (along a host axis: the same program, fed otherwise) waits until
        no other line is open, since its lines mostly repeat the program's own. Cells the race
        dropped still guide: a poor start can lie on the way to the best cell."""
        # Kept across calls: a second call (budget left after the rounds) goes on from here.
        frontier, swept = self.frontier, self.swept
        for c in starts:
            frontier.setdefault(c.cell_id, c)
        order = self.axis_order()
        begun = {c.cell_id for c in starts}
        self.measure(list(frontier.values()))
        while self.affordable():
            reached = [self.race.entries[i] for i in frontier if i in self.race.entries]
            ranked = self.race.guide(reached, dropped=True)
            open_ = [
                (e.cell, axis)
                for e in ranked
                for axis in order
                if (e.cell.cell_id, axis) not in swept
            ]
            if not open_:
                return
            # Each start's text axes first (precision above all moves a device's best by
            # twofold): a device whose start is slow may be best at another precision.
            first = [
                (c, a)
                for c, a in open_
                if c.cell_id in begun and not self.space.ordered[a] and a not in HOST_AXES
            ]
            # A tie along a host axis (the input pipeline feeding the same program) goes on
            # last: its lines mostly repeat the program's own.
            rest = [(c, a) for c, a in open_ if c.cell_id not in self.echoes]
            cell, axis = (first or self.promise(rest) or self.promise(open_))[0]
            swept.add((cell.cell_id, axis))
            before = self.race.entries[cell.cell_id].value
            ranked = self.line(cell, axis)
            self.settle_leader()
            if ranked and self.space.ordered[axis] and before and ranked[0].value:
                gain = ranked[0].value / before
                self.gains.append(gain if self.race.maximize else 1.0 / gain)
            if ranked:
                top = ranked[0]
                for entry in [top, *(e for e in ranked[1:] if self.tied(top, e))]:
                    if entry.cell.cell_id not in frontier and axis in HOST_AXES:
                        self.echoes.add(entry.cell.cell_id)
                    frontier.setdefault(entry.cell.cell_id, entry.cell)

    def promise(self, open_: list[tuple[TuneCell, str]]) -> list[tuple[TuneCell, str]]:
        """Open lines by what their cell may still reach: its estimate times the typical gain
        of a walked ordered line (the median so far; 10% before any), once per ordered axis
        not yet walked through it. A start whose estimate trails by a few percent, with its
        batch and steps per call still open, comes before refining the leader's last axis.
        Cells that broke a constraint come after, closest to meeting it first."""
        if not open_:
            return []
        gain = max(1.0, statistics.median(self.gains)) if self.gains else 1.1
        sign = 1.0 if self.race.maximize else -1.0
        ordered = [a for a in self.space.axes if self.space.ordered[a]]

        def rank(pair: tuple[TuneCell, str]) -> tuple[int, float]:
            entry = self.race.entries[pair[0].cell_id]
            if entry.broken or not entry.value:  # toward meeting the constraint, closest first
                return (1, entry.excess)
            left = sum((pair[0].cell_id, a) not in self.swept for a in ordered)
            return (0, -(sign * math.log(entry.value) + math.log(gain) * left))

        return sorted(open_, key=rank)

    def widen(self) -> None:
        """Measure the unmeasured neighbours of the measured cells, best first (those the race
        dropped too: the budget the descent left is spent around everything it saw)."""
        while self.affordable():
            measured = self.race.guide(list(self.race.entries.values()), dropped=True)
            fresh = [
                n
                for e in measured
                for n in self.space.neighbours(e.cell)
                if not self.race.has(n) and n.cell_id not in self.memory.ruled_out
            ][: 4 * ROUND_WIDTH]
            unique = {c.cell_id: c for c in fresh}.values()
            fresh = [c for c in unique if self.memory.fits(c)]
            if not fresh:
                return
            self.measure(fresh[:ROUND_WIDTH])
            self.race.eliminate()

    # -- the rounds --------------------------------------------------------------------------

    def rounds(self) -> int:
        count = 0
        while True:
            # A leader a percentile limit rules out is known before rounds are spent on it.
            self.settle()
            ranked = self.race.ranked()
            width = ranked[:ROUND_WIDTH]
            # Cells measured in FINAL_PROCESSES processes each that the race still cannot tell
            # apart are ties at this noise: more rounds would narrow what does not matter, and
            # the budget left goes back to the search (another pass).
            width = [e for e in width if len(e.parts) < FINAL_PROCESSES]
            if not width:
                break
            done = [e for e in ranked if len(e.parts) >= FINAL_PROCESSES]
            if len(ranked) <= FINALISTS and len(done) == len(ranked):
                break
            if not width or not self.affordable(len(width), reserve=self.settling()):
                width = width[
                    : max(0, int((self.budget.left_s() - self.settling()) // self.cost()))
                ]
                if len(width) < min(2, len(ranked)) or not width:
                    break
            shift = count % len(width)
            order = [e.cell for e in width[shift:] + width[:shift]]
            if not self.measure(order, again=True):
                break
            count += 1
            if self.settings.strategy == "halving":
                self.race.halve()
            else:
                self.race.eliminate()
        return count

    def most_steps(self, entry: Entry) -> float:
        """The pooled steps a long measurement of ``entry`` reaches in ``LONG_SHARE`` of the
        budget (``Race.most_steps``): a cell that needs more is not likely to be settled."""
        steps = entry.views[-1].step_samples if entry.views else None
        if steps is None or not steps.size:
            return math.inf
        pooled = entry.pooled_steps
        per_call = int(entry.cell.key.get("steps_per_call") or 1)
        room = LONG_SHARE * self.budget.total_s - self.cost()
        return pooled + max(0.0, room) / (float(np.median(steps)) * per_call)

    def long_rule(self, entry: Entry) -> tuple[RunLength, float] | None:
        """The measurement that gives ``entry`` the steps its percentile limits are expected to
        need (``Race.needed``), and its expected device time; None when it needs none or no
        length is expected to do."""
        steps = entry.views[-1].step_samples if entry.views else None
        need = self.race.needed(entry)
        if steps is None or not entry.short or not need:
            return None
        pooled = entry.pooled_steps
        calls = need - pooled if need > pooled else entry.short
        per_call = int(entry.cell.key.get("steps_per_call") or 1)
        timed = calls * float(np.median(steps)) * per_call
        expected = self.cost() + timed
        rule = RunLength(
            warmup_steps=self.brief.warmup_steps,
            min_steps=calls,
            min_seconds=self.brief.min_seconds,
            max_seconds=max(1.5 * timed, self.brief.max_seconds),
            target_rel_ci=self.brief.target_rel_ci,
        )
        return rule, expected

    def to_settle(self) -> list[Entry]:
        """The leading cells a percentile limit cannot yet judge and their device's tail says
        may meet it (``Race.likely``), best first: those worth a long measurement.
        A cell is measured long ``LONG_TRIES`` times at most (``settle``)."""
        # Chosen among all the cells in the race, not among the first few: faster cells the
        # guess puts beyond the limit stay in it (only the bounds rule a cell out) and may
        # fill the top of the ranking while the best cell that can be the answer waits.
        ranked = self.race.ranked()
        open_ = [e for e in ranked if e.short and self.settled.get(e.cell.cell_id, 0) < LONG_TRIES]
        return [e for e in open_ if self.race.likely(e)][:ROUND_WIDTH]

    def settling(self) -> float:
        """The device time the percentile limits will still ask for (``settle``): the long
        measurements of the first ``FINALISTS - 1`` cells to settle."""
        first = self.to_settle()[: FINALISTS - 1]
        return sum(p[1] for e in first if (p := self.long_rule(e)) is not None)

    def settle(self) -> int:
        """Measure the leading cells a percentile limit cannot yet judge long enough to judge
        it (a brief p99 bounds nothing), in ``to_settle``'s order, while the budget pays;
        returns how many measurements it made. A cell it shows breaking the limit leaves, and
        the next comes up. One still unsure after it is measured long again if its steps so far
        still say it is likely to be shown meeting the limit (the first length is a guess from
        its peers' tail), up to ``LONG_TRIES`` times; else it is too close to the limit to be
        the answer, and leaves."""
        count = 0
        while any(self.settle_one(entry) for entry in self.to_settle()):
            count += 1
        return count

    def settle_one(self, entry: Entry) -> bool:
        """One long measurement of ``entry`` (``settle``), if the budget left pays for it."""
        planned = self.long_rule(entry)
        if planned is None or planned[1] > self.budget.left_s():
            return False
        tries = self.settled[entry.cell.cell_id] = self.settled.get(entry.cell.cell_id, 0) + 1
        self.measure([entry.cell], again=True, rule=planned[0])
        if entry.unsure and (tries >= LONG_TRIES or not self.race.likely(entry)):
            entry.out = f"not settled by a long measurement: {entry.unsure}"
        self.race.eliminate()
        return True

    def finalists(self) -> list[Entry]:
        # A cell not settled on a limit when the budget ends is no finalist: the answer never
        # rests on a limit the data cannot tell (no answer is better than a broken one). The
        # cells only it showed worse come back, compared with the best settled cell instead
        # (until none that comes back is unsettled itself).
        while unsettled := [e for e in self.race.ranked() if e.unsure]:
            for entry in unsettled:
                entry.out = f"not settled on a limit when the budget ended: {entry.unsure}"
            self.race.eliminate()
        ranked = self.race.ranked()
        measured = [e for e in ranked if len(e.parts) >= 2] or ranked
        return measured[:ROUND_WIDTH]

    def run(self) -> Outcome:
        stopped = ""
        starts = self.starts()
        count = 0
        # Budget the rounds did not need goes back to the search, then to rounds again.
        for _ in range(PASSES):
            self.searching = True
            self.descend(starts)
            self.widen()
            if not self.affordable():
                stopped = "the search's share of the budget ran out"
            self.searching = False
            count += self.rounds()
            self.settle()
            if not self.affordable(2):
                break
        finals = self.finalists()
        recommendation = None
        if finals:
            merged = [merge_repeats(e.records) for e in finals]
            runset = self.measurer.settle(merged)
            recommendation = recommend(
                runset,
                self.target.objective,
                [k for k in self.constraints],
                runners_up=len(finals),
                seed=self.settings.seed,
            )
        return Outcome(
            recommendation,
            self.race,
            self.memory,
            self.budget,
            measurements=self.measurements,
            rounds=count,
            finalists=[e.cell.cell_id for e in finals],
            stopped=stopped,
            log=self.log,
        )

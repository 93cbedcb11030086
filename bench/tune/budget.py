"""How much device time a tune may spend: ``--budget 10%`` of the full grid's, or minutes.

The full grid's time is not known before measuring it, so a share is of an estimate that the
measurements refine: the grid's cell count times the mean, over the cells measured so far, of
what ``bench run`` would have spent on each (compile, warm-up, and the scenario's run-length
rule at the step time measured). Device time counts compiles, memory probes, warm-up and timed
steps: everything a measurement occupies the device for.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.measure.timing import RunLength

_SPEC = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")
DEFAULT = "10%"
# A share is planned against this fraction of the estimate: the estimate comes from the cells
# the search measured, which are not a random sample of the grid; on the simulator's grids it
# came out 0.9-1.3x the truth (.ci/tune-bench), so planning on 80% keeps the share a ceiling.
SHARE_SAFETY = 0.8


class BudgetError(ValueError):
    """A budget that cannot be read, or one too small for a single measurement."""


@dataclass(frozen=True)
class Spec:
    share: float | None  # of the full grid's device time
    seconds: float | None  # absolute

    @property
    def text(self) -> str:
        if self.share is not None:
            return f"{self.share * 100:g}% of the full grid's device time"
        assert self.seconds is not None
        return f"{self.seconds / 60:g} min of device time"


def parse(text: str) -> Spec:
    match = _SPEC.match(text)
    if not match:
        raise BudgetError(
            f"--budget {text!r}: expected a share of the full grid such as 10% or a number of "
            "minutes such as 30"
        )
    number, percent = float(match.group(1)), bool(match.group(2))
    if percent:
        if not 0 < number <= 100:
            raise BudgetError(f"--budget {text!r}: a share must lie in (0%, 100%]")
        return Spec(number / 100, None)
    if number <= 0:
        raise BudgetError(f"--budget {text!r}: minutes must be more than 0")
    return Spec(None, number * 60)


def full_cell_s(compile_s: float, step_s: float, rule: RunLength) -> float:
    """What ``bench run`` spends on one cell: compile, warm-up, then at least ``min_steps``
    and ``min_seconds`` of steps (the early stop on the interval rarely comes sooner), at most
    ``max_seconds``."""
    timed = min(max(rule.min_steps * step_s, rule.min_seconds), rule.max_seconds)
    return compile_s + step_s * (1 + rule.warmup_steps) + timed


@dataclass
class Budget:
    """Device time allowed and spent; the share's total follows the estimate.

    ``keys``: every cell's key. The full grid's estimate gives each cell the compile and call
    time of the measured cell most like it, the call scaled by the batch ratio (a step's time
    grows about in proportion to its batch), so the corner a search dwells on (large batches,
    one device) does not stand for the whole grid.
    """

    spec: Spec
    rule: RunLength  # the scenario's own run length: what the full grid would use
    keys: list[Mapping[str, Any]]  # every cell's key
    spent_s: float = 0.0
    seen: list[tuple[Mapping[str, Any], float, float]] = field(default_factory=list)
    compiles: list[float] = field(default_factory=list)
    _full: float | None = None

    @property
    def n_cells(self) -> int:
        return len(self.keys)

    def check_floor(self, one_measurement_s: float) -> None:
        """BudgetError when the budget cannot hold one brief measurement even at the
        cheapest: a cell that costs nothing to compile and takes ``min_seconds`` in full."""
        floor = self.spec.seconds
        if floor is None:
            assert self.spec.share is not None
            floor = self.spec.share * self.n_cells * full_cell_s(0.0, 0.0, self.rule)
        if floor < one_measurement_s:
            raise BudgetError(
                f"--budget: {self.spec.text} is at most {floor:.3g} s here, less than one "
                f"brief measurement ({one_measurement_s:.3g} s); raise the budget"
            )

    def note_cell(self, key: Mapping[str, Any], compile_s: float, call_s: float) -> None:
        """A measured cell's compile and call time: refines the full grid's estimate."""
        self.seen.append((key, compile_s, call_s))
        self._full = None

    def note_compile(self, compile_s: float) -> None:
        """A probe's compile, counted before any cell was measured."""
        self.compiles.append(compile_s)
        self._full = None

    def _estimate(self, key: Mapping[str, Any]) -> float:
        """A cell's full time from the measured cell most like it (fewest differing axes,
        then the nearest batch), its call time scaled by the batch ratio."""

        def distance(seen: tuple[Mapping[str, Any], float, float]) -> tuple[int, float]:
            other = seen[0]
            differ = sum(1 for a in key if a != "batch_size" and key.get(a) != other.get(a))
            ratio = float(key.get("batch_size") or 1) / float(other.get("batch_size") or 1)
            return differ, abs(math.log(ratio))

        other, compile_s, call_s = min(self.seen, key=distance)
        ratio = float(key.get("batch_size") or 1) / float(other.get("batch_size") or 1)
        return full_cell_s(compile_s, call_s * ratio, self.rule)

    @property
    def full_s(self) -> float | None:
        """The full grid's device time, estimated; None before anything was compiled."""
        if self._full is None:
            if self.seen:
                self._full = sum(self._estimate(k) for k in self.keys)
            elif self.compiles:
                one = full_cell_s(statistics.median(self.compiles), 0.0, self.rule)
                self._full = one * self.n_cells
        return self._full

    @property
    def total_s(self) -> float:
        if self.spec.seconds is not None:
            return self.spec.seconds
        assert self.spec.share is not None
        full = self.full_s
        if full is None:  # nothing compiled yet: the cheapest the grid could be
            return self.spec.share * self.n_cells * full_cell_s(0.0, 0.0, self.rule)
        return self.spec.share * full * SHARE_SAFETY

    def left_s(self) -> float:
        return self.total_s - self.spent_s

    def spend(self, seconds: float) -> None:
        self.spent_s += seconds

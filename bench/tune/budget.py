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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.measure.timing import RunLength

_SPEC = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")
DEFAULT = "10%"
# A share is planned against this fraction of the estimate: the estimate comes from the cells
# the search measured, which are not a random sample of the grid; on the simulator's grids it
# came out 0.9-1.35x the truth (.ci/tune-bench), so planning on 75% keeps the share a ceiling.
SHARE_SAFETY = 0.75


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
    # (key, compile or None where the program came from the tune's cache, call time)
    seen: list[tuple[Mapping[str, Any], float | None, float]] = field(default_factory=list)
    compiles: list[float] = field(default_factory=list)
    probed: list[tuple[Mapping[str, Any], float]] = field(default_factory=list)
    # Whether a cell's program fits the device (None: not known); one that does not would only
    # compile and fail in a full run.
    fits: Callable[[Mapping[str, Any]], bool | None] | None = None
    _full: float | None = None
    _grid: tuple[np.ndarray, np.ndarray] | None = None
    _axes: list[str] = field(default_factory=list)
    _values: dict[str, dict[str, int]] = field(default_factory=dict)

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

    def note_cell(self, key: Mapping[str, Any], compile_s: float | None, call_s: float) -> None:
        """A measured cell's compile (None: its program was cached, so not known) and call
        time: refines the full grid's estimate."""
        self.seen.append((key, compile_s, call_s))
        self._full = None

    def note_compile(self, key: Mapping[str, Any], compile_s: float) -> None:
        """A probe's compile: probes reach more of the grid than measurements do."""
        self.compiles.append(compile_s)
        self.probed.append((key, compile_s))
        self._full = None

    def _codes(self, keys: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Keys as integer codes per axis (the batch aside) and their log batch sizes."""
        rows = []
        for key in keys:
            row = []
            for axis in self._axes:
                values = self._values.setdefault(axis, {})
                row.append(values.setdefault(str(key.get(axis)), len(values)))
            rows.append(row)
        batches = [math.log(float(k.get("batch_size") or 1)) for k in keys]
        return np.array(rows, dtype=np.int64).reshape(len(keys), -1), np.array(batches)

    def _nearest(self, keys: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """For every grid cell, the index in ``keys`` of the cell most like it: fewest
        differing axes, then the nearest batch."""
        codes, logs = self._codes(keys)
        differ = (self._grid[0][:, None, :] != codes[None, :, :]).sum(axis=2)
        distance = differ + np.abs(self._grid[1][:, None] - logs[None, :]) / 100.0
        return np.argmin(distance, axis=1)

    def _estimate_all(self) -> float:
        """The grid's full time: each cell from the measured cell most like it (its call time
        scaled by the batch ratio), its compile from the measured or probed cell most like it;
        a cell known not to fit costs its compile only."""
        if self._grid is None:
            self._axes = sorted({a for k in self.keys for a in k} - {"batch_size"})
            self._grid = self._codes(self.keys)
        compiled = [(k, c) for k, c, _ in self.seen if c is not None] + self.probed
        compile_s = np.zeros(len(self.keys))
        if compiled:
            compile_s = np.array([c for _, c in compiled])[self._nearest([k for k, _ in compiled])]
        near = self._nearest([k for k, _, _ in self.seen])
        seen_logs = np.array([math.log(float(k.get("batch_size") or 1)) for k, _, _ in self.seen])
        calls = np.array([c for _, _, c in self.seen])[near]
        # Scaled down to smaller batches, never up: a step's time grows less than its batch
        # where efficiency rises, and an estimate that errs low keeps the share a ceiling.
        step = calls * np.exp(np.minimum(0.0, self._grid[1] - seen_logs[near]))
        rule = self.rule
        timed = np.minimum(np.maximum(rule.min_steps * step, rule.min_seconds), rule.max_seconds)
        full = compile_s + step * (1 + rule.warmup_steps) + timed
        if self.fits is not None:
            out = np.array([self.fits(k) is False for k in self.keys])
            full = np.where(out, compile_s, full)
        return float(full.sum())

    @property
    def full_s(self) -> float | None:
        """The full grid's device time, estimated; None before anything was compiled."""
        if self._full is None:
            if self.seen:
                self._full = self._estimate_all()
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

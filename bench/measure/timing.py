"""The timer: warm-up, device sync before every clock read, and the run-length rule.

The clock is injected (``Timer(rule, clock=...)``) so tests drive it exactly. Each timed step is
``step()`` then ``sync(output)``, and the clock is read only after the sync, so asynchronous
device work is inside the step that launched it. One clock read per step: the end of one step is
the start of the next, so the loop adds no untimed gaps.

Run-length rule: keep stepping until at least ``min_steps`` AND ``min_seconds``; stop early
there once the 95% confidence interval of the mean step time is within ``target_rel_ci`` of the
mean (half-width / mean); stop at ``max_seconds`` regardless. A cell stopped by ``max_seconds``
before reaching the target is ``unstable``: kept, and flagged.

Multi-host runs set ``fixed_steps`` instead: every process takes exactly that many timed steps.
Each step holds a collective (the gradient all-reduce), so a process that stopped on its own
clock while another went on would leave the other waiting in a collective forever.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Defaults (also the scenario's ``measure:`` defaults): 20 steps and 2 s are enough for a stable
# median of a millisecond step on a quiet machine; 2% is tighter than the 10% a regression gate
# acts on; 30 s caps a cell that never settles.
WARMUP_STEPS = 5
MIN_STEPS = 20
MIN_SECONDS = 2.0
MAX_SECONDS = 30.0
TARGET_REL_CI = 0.02


@dataclass(frozen=True)
class RunLength:
    warmup_steps: int = WARMUP_STEPS
    min_steps: int = MIN_STEPS
    min_seconds: float = MIN_SECONDS
    max_seconds: float = MAX_SECONDS
    target_rel_ci: float = TARGET_REL_CI
    fixed_steps: int | None = None  # exactly this many timed steps (multi-host lockstep)


@dataclass
class Timing:
    first_step_s: float
    warmup_s: list[float] = field(default_factory=list)
    step_times_s: list[float] = field(default_factory=list)
    stop_reason: str = ""
    rel_ci: float = math.inf
    converged: bool = False
    last_output: Any = None


# Two-sided 95% Student-t quantiles for 1..10 degrees of freedom (standard tables).
T_TABLE = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t_quantile_975(df: int) -> float:
    """Two-sided 95% Student-t quantile: table to 10 df, then the Cornish-Fisher expansion
    (within 0.1% beyond 10 df), so no scipy is needed in the worker."""
    z = 1.959963984540054
    if df <= 0:
        return math.inf
    if df <= len(T_TABLE):
        return T_TABLE[df - 1]
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def rel_ci_halfwidth(n: int, mean: float, m2: float) -> float:
    """Half-width of the 95% CI of the mean over the mean, from Welford's running sums."""
    if n < 2 or mean <= 0:
        return math.inf
    stdev = math.sqrt(m2 / (n - 1))
    return t_quantile_975(n - 1) * stdev / math.sqrt(n) / mean


class Timer:
    def __init__(self, rule: RunLength, clock: Callable[[], float] = time.perf_counter):
        self.rule = rule
        self.clock = clock

    def run(
        self,
        step: Callable[[], Any],
        sync: Callable[[Any], Any],
        on_timed_start: Callable[[], Any] | None = None,
        on_timed_end: Callable[[], Any] | None = None,
    ) -> Timing:
        """Time ``step``; the hooks bracket the timed phase (energy counters, telemetry)."""
        rule, clock = self.rule, self.clock
        start = clock()
        out = step()
        sync(out)
        now = clock()
        timing = Timing(first_step_s=now - start)
        for _ in range(rule.warmup_steps):
            before = now
            out = None  # see the timed loop
            out = step()
            sync(out)
            now = clock()
            timing.warmup_s.append(now - before)

        times = timing.step_times_s
        n, mean, m2 = 0, 0.0, 0.0
        if on_timed_start is not None:
            on_timed_start()
            now = clock()  # the hook's own time is not a step's
        phase_start = now
        while True:
            before = now
            # Drop the last step's output before the next step runs, as a plain loop does: held,
            # it keeps a second output buffer alive, and the runtime cannot reuse the first. On
            # the project's 2-core VM a plain JAX loop that held its output ran at 0.963 of one
            # that did not (median of 21 interleaved trials, 1.6 ms step, nothing else running).
            out = None
            out = step()
            sync(out)
            now = clock()
            dt = now - before
            times.append(dt)
            n += 1
            delta = dt - mean
            mean += delta / n
            m2 += delta * (dt - mean)
            elapsed = now - phase_start
            if rule.fixed_steps is not None:
                if n >= rule.fixed_steps:
                    timing.rel_ci = rel_ci_halfwidth(n, mean, m2)
                    timing.converged = timing.rel_ci <= rule.target_rel_ci
                    timing.stop_reason = "fixed step count (multi-host: every process in step)"
                    break
                continue
            if n >= rule.min_steps and elapsed >= rule.min_seconds:
                timing.rel_ci = rel_ci_halfwidth(n, mean, m2)
                if timing.rel_ci <= rule.target_rel_ci:
                    timing.converged, timing.stop_reason = True, "target_rel_ci reached"
                    break
            if elapsed >= rule.max_seconds and n >= 2:
                timing.rel_ci = rel_ci_halfwidth(n, mean, m2)
                timing.converged = timing.rel_ci <= rule.target_rel_ci
                timing.stop_reason = "max_seconds reached"
                break
        if on_timed_end is not None:
            on_timed_end()
        timing.last_output = out
        return timing

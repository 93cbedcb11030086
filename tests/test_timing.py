"""The timer with an injected clock: warm-up exclusion, the run-length rule, early stop."""

from __future__ import annotations

import math

from bench.measure.timing import RunLength, Timer, rel_ci_halfwidth, t_quantile_975


class FakeClock:
    """Each step advances time by the next duration in ``durations`` (then repeats the last)."""

    def __init__(self, durations: list[float]):
        self.now = 100.0
        self.durations = list(durations)
        self.steps = 0

    def __call__(self) -> float:
        return self.now

    def step(self) -> int:
        d = self.durations[min(self.steps, len(self.durations) - 1)]
        self.steps += 1
        self.now += d
        return self.steps


def run(durations, **rule):
    clock = FakeClock(durations)
    timing = Timer(RunLength(**rule), clock=clock).run(clock.step, lambda out: None)
    return timing, clock


def test_first_step_and_warmup_are_kept_apart_from_timed_steps():
    # first step 5 s (compile-like), then 2 warm-up steps of 1 s, then steady 0.1 s steps.
    timing, _ = run(
        [5.0, 1.0, 1.0, 0.1],
        warmup_steps=2,
        min_steps=4,
        min_seconds=0.0,
        max_seconds=10.0,
        target_rel_ci=0.5,
    )
    assert timing.first_step_s == 5.0
    assert timing.warmup_s == [1.0, 1.0]
    # Constant 0.1 s steps have zero variance: the CI target is met as soon as min_steps is.
    assert len(timing.step_times_s) == 4
    assert all(math.isclose(t, 0.1) for t in timing.step_times_s)
    assert timing.converged and timing.stop_reason == "target_rel_ci reached"


def test_min_seconds_holds_even_when_the_ci_is_already_tight():
    # 0.25 s steps, min_steps 3 but min_seconds 2.0 -> 2.0 / 0.25 = 8 steps before stopping
    # (0.25 is exact in binary floating point, so the sum reaches 2.0 exactly).
    timing, _ = run([0.25], warmup_steps=0, min_steps=3, min_seconds=2.0, max_seconds=60.0)
    assert len(timing.step_times_s) == 8


def test_noisy_steps_stop_at_max_seconds_and_are_unstable():
    # Alternating 0.1 / 0.3 s: mean 0.2, stdev ~0.1, so the CI half-width over the mean is
    # about 2.0 * 0.1 / sqrt(n) / 0.2 = 1/sqrt(n); under 1% would need n ~ 10,000 steps,
    # far more than fit in max_seconds = 10 s (~50 steps).
    timing, _ = run(
        [0.1, 0.3] * 1000,
        warmup_steps=0,
        min_steps=5,
        min_seconds=0.0,
        max_seconds=10.0,
        target_rel_ci=0.01,
    )
    assert timing.stop_reason == "max_seconds reached"
    assert not timing.converged
    assert 45 <= len(timing.step_times_s) <= 55


def test_early_stop_once_the_ci_target_is_met():
    # Same noise with a 20% target: 1/sqrt(n) * t/1.96 <= 0.2 first holds near n = 27.
    timing, _ = run(
        [0.1, 0.3] * 1000,
        warmup_steps=0,
        min_steps=5,
        min_seconds=0.0,
        max_seconds=1000.0,
        target_rel_ci=0.2,
    )
    assert timing.converged
    assert 20 <= len(timing.step_times_s) <= 35
    assert timing.rel_ci <= 0.2


def test_ci_arithmetic():
    # Samples 1, 2, 3: mean 2, M2 = 1 + 0 + 1 = 2, stdev = sqrt(2 / 2) = 1,
    # t(0.975, 2 df) = 4.303, half-width = 4.303 * 1 / sqrt(3) = 2.484, relative = 1.242.
    assert math.isclose(t_quantile_975(2), 4.303, rel_tol=0.02)
    assert math.isclose(rel_ci_halfwidth(3, 2.0, 2.0), 4.303 / math.sqrt(3) / 2, rel_tol=0.02)
    assert math.isclose(t_quantile_975(1000), 1.962, rel_tol=1e-3)
    assert rel_ci_halfwidth(1, 1.0, 0.0) == math.inf


def test_sync_runs_before_each_clock_read():
    events = []
    clock_reads = []

    def clock():
        clock_reads.append(len(events))
        return float(len(clock_reads))

    def step():
        events.append("step")
        return len(events)

    def sync(out):
        events.append("sync")

    Timer(
        RunLength(warmup_steps=1, min_steps=2, min_seconds=0, max_seconds=100, target_rel_ci=0.99),
        clock=clock,
    ).run(step, sync)
    # After the first read, every clock read comes right after a sync.
    for n_events in clock_reads[1:]:
        assert events[n_events - 1] == "sync"


def test_fixed_steps_ignore_the_clock_so_every_process_stops_together():
    # Multi-host lockstep: 7 timed steps whatever the clock says. Steady 0.1 s steps would have
    # met min_steps=3 and the CI target after 3; 50 s steps would have hit max_seconds after 1.
    for duration in (0.1, 50.0):
        timing, _ = run(
            [duration],
            warmup_steps=1,
            min_steps=3,
            min_seconds=0.0,
            max_seconds=10.0,
            target_rel_ci=0.5,
            fixed_steps=7,
        )
        assert len(timing.step_times_s) == 7
        assert timing.stop_reason.startswith("fixed step count")

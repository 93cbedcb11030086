"""What bench's loop costs: a compiled step timed by a plain hand-written loop and by ``Timer``,
in one process, interleaved so drift hits both alike. Each backend's ``selfcheck`` module
(``bench/backends/<name>/selfcheck.py``) builds its step and calls ``interleaved`` and
``timer_rate`` from here; ``bench selfcheck`` runs each in a child process (``run_in_subprocess``)
so no framework enters the CLI.

The ratio is bench's throughput over the plain loop's, both from the wall time of the same
number of steps; the target is >= 0.98 for a step of 1 ms or more.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

from bench.measure.timing import RunLength, Timer


def timer_rate(step: Callable[[], Any], sync: Callable[[Any], Any], steps: int) -> float:
    """Steps per second of ``steps`` timed steps through ``Timer``, no warm-up, no early stop."""
    # target_rel_ci 1.0 is met at once: exactly ``steps`` timed steps, no early or late stop.
    rule = RunLength(
        warmup_steps=0, min_steps=steps, min_seconds=0.0, max_seconds=1e9, target_rel_ci=1.0
    )
    timing = Timer(rule).run(step, sync)
    return len(timing.step_times_s) / sum(timing.step_times_s)


def interleaved(
    bare: Callable[[], float], timed: Callable[[], float], trials: int
) -> dict[str, Any]:
    """Both loops ``trials`` times, alternating (drift hits both alike); medians and ratio.

    The order flips every trial (plain then bench, bench then plain): with plain always first,
    TensorFlow's selfcheck read 0.95-0.97 on the project's 2-core VM, and so did variants in
    second place that share none of bench's code path (the plain step timed by ``Timer``: 0.96;
    bench's graph timed by the plain loop: 0.93); rotating the order took every variant to
    0.98-0.99 (medians of 25 trials on a busy machine).
    """
    bare_rates, bench_rates = [], []
    for trial in range(trials):
        if trial % 2:
            bench_rates.append(timed())
            bare_rates.append(bare())
        else:
            bare_rates.append(bare())
            bench_rates.append(timed())
    bare_median, bench_median = statistics.median(bare_rates), statistics.median(bench_rates)
    return {
        "step_ms": 1e3 / bare_median,
        "trials": trials,
        "bare_steps_per_s": bare_median,
        "bench_steps_per_s": bench_median,
        "ratio": bench_median / bare_median,
        "ratios": [b / a for a, b in zip(bare_rates, bench_rates, strict=True)],
    }


def run_in_subprocess(steps: int, trials: int, size: int, module: str) -> dict[str, Any]:
    """Measure in a child process of one framework (the caller may be the CLI, which imports no
    framework); CPU unless ``JAX_PLATFORMS`` says otherwise."""
    import os
    import subprocess

    env = {**os.environ}
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = ["--steps", str(steps), "--trials", str(trials), "--size", str(size)]
    done = subprocess.run(
        [sys.executable, "-m", module, *argv],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"overhead benchmark failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(measure: Callable[[int, int, int], dict[str, Any]], prog: str, size_help: str) -> int:
    """A backend's ``python -m ...selfcheck`` entry point: one JSON line on stdout."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--size", type=int, default=256, help=size_help)
    args = parser.parse_args(sys.argv[1:])
    print(json.dumps(measure(args.steps, args.trials, args.size)))
    return 0

"""What bench's timer costs: the same compiled JAX step timed by a bare hand-written loop and by
``Timer``, in one process, interleaved so drift hits both alike. Run as
``python -m bench.measure.overhead`` (``bench selfcheck`` does) so JAX stays out of the CLI.
TensorFlow's check goes through its backend, so it lives above the backends:
``bench.run.selfcheck``; both use ``interleaved`` and ``timer_rate`` from here.

The ratio is bench's throughput over the bare loop's, both from the wall time of the same number
of steps; the target is >= 0.98 for a step of 1 ms or more.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
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
    """Both loops ``trials`` times, alternating (drift hits both alike); medians and ratio."""
    bare_rates, bench_rates = [], []
    for _ in range(trials):
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


def measure(steps: int, trials: int, size: int) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    def step(x: Any) -> Any:
        for _ in range(4):
            x = jnp.tanh(x @ x)
        return x

    x = jnp.full((size, size), 1e-3, jnp.float32)
    compiled = jax.jit(step).lower(x).compile()
    jax.block_until_ready(compiled(x))

    def bare() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            jax.block_until_ready(compiled(x))
        return steps / (time.perf_counter() - start)

    def timed() -> float:
        return timer_rate(lambda: compiled(x), jax.block_until_ready, steps)

    return {
        "framework": "jax",
        **interleaved(bare, timed, trials),
        "steps_per_trial": steps,
        "method": "median over interleaved trials of steps / wall time; same compiled JAX step",
        "version": jax.__version__,
        "device": str(jax.devices()[0]),
    }


def run_in_subprocess(
    steps: int, trials: int, size: int, module: str = "bench.measure.overhead"
) -> dict[str, Any]:
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.measure.overhead")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--size", type=int, default=256, help="matrix size: sets the step time")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.steps, args.trials, args.size)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

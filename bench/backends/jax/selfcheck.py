"""``bench selfcheck`` for JAX: the same compiled step timed by a plain loop and by bench's
``Timer`` (``bench.measure.overhead``). Run as ``python -m bench.backends.jax.selfcheck`` so JAX
stays out of the CLI."""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.measure.overhead import interleaved, main, timer_rate


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


if __name__ == "__main__":
    sys.exit(
        main(measure, "python -m bench.backends.jax.selfcheck", "matrix size: sets the step time")
    )

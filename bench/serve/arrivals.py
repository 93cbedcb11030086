"""When requests arrive: seeded schedules of arrival offsets, in seconds from the start."""

from __future__ import annotations

from typing import Literal

import numpy as np

Arrivals = Literal["poisson", "constant", "single_stream"]


def schedule(kind: Arrivals, rate: float, count: int, seed: int) -> np.ndarray:
    """``count`` arrival offsets (s, ascending, the first at 0) at ``rate`` requests/s.

    Poisson: exponential gaps drawn from ``seed``, so a cell is reproducible; the first request
    comes at 0 so that every probe starts at once. Constant: gaps of exactly 1/rate.
    Single-stream has no schedule: the next request goes when the previous one is answered.
    """
    if rate <= 0 or count < 1:
        raise ValueError(f"schedule needs rate > 0 and count >= 1 (got {rate}, {count})")
    if kind == "constant":
        return np.arange(count, dtype=np.float64) / rate
    if kind == "poisson":
        gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=count - 1)
        return np.concatenate([[0.0], np.cumsum(gaps)])
    raise ValueError(f"no schedule for arrivals {kind!r}; expected poisson or constant")

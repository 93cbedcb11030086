"""Seeded request loads for generation: length distributions, arrival times, trace files.

A length is fixed (``64``), uniform over an inclusive range (``{uniform: [16, 256]}``), or
lognormal with a mean in tokens and the spread (sigma) of its logarithm (``{lognormal: {mean:
128, sigma: 0.6}}``, the long right tail of chat traffic), clipped to ``[1, max]``. Arrivals are
the serving schedules (``bench.serve.arrivals``) plus ``gamma`` (gaps with the rate's mean and a
coefficient of variation of ``burstiness``; 1 is Poisson, above 1 burstier) and ``offline``
(every request at 0: the engine's throughput with a full queue).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from bench.serve.arrivals import schedule
from bench.serve.generation.requests import GenRequest

Lengths = int | Mapping[str, Any]


def draw_lengths(spec: Lengths, count: int, rng: np.random.Generator, cap: int) -> np.ndarray:
    """``count`` lengths from ``spec`` (validated by the scenario), each within ``[1, cap]``."""
    if isinstance(spec, int):
        out = np.full(count, spec, dtype=np.int64)
    elif "uniform" in spec:
        lo, hi = spec["uniform"]
        out = rng.integers(lo, hi + 1, size=count)
    else:
        mean, sigma = spec["lognormal"]["mean"], spec["lognormal"]["sigma"]
        # The mean of a lognormal is exp(mu + sigma^2 / 2): mu puts it at the mean asked.
        mu = math.log(mean) - sigma * sigma / 2
        out = np.rint(rng.lognormal(mu, sigma, size=count)).astype(np.int64)
    return np.clip(out, 1, cap)


def longest(spec: Lengths) -> int | None:
    """The longest length ``spec`` can draw; None for a lognormal (unbounded: clipped)."""
    if isinstance(spec, int):
        return spec
    if "uniform" in spec:
        return int(spec["uniform"][1])
    return None


def arrivals(kind: str, rate: float | None, count: int, seed: int, burstiness: float) -> np.ndarray:
    """Arrival offsets (s, ascending, the first at 0)."""
    if kind == "offline":
        return np.zeros(count)
    assert rate is not None and rate > 0
    if kind == "gamma":
        # Gaps with mean 1/rate and coefficient of variation ``burstiness``: shape 1/cv^2.
        shape = 1.0 / (burstiness * burstiness)
        gaps = np.random.default_rng(seed).gamma(shape, 1.0 / (rate * shape), size=count - 1)
        return np.concatenate([[0.0], np.cumsum(gaps)])
    return schedule(kind, rate, count, seed)  # type: ignore[arg-type]


def draw(
    *,
    count: int,
    prompt: Lengths,
    output: Lengths,
    arrivals_kind: str,
    rate: float | None,
    seed: int,
    max_prompt: int,
    cache_len: int,
    burstiness: float = 1.0,
) -> list[GenRequest]:
    """The load of one measurement: the same for a seed whatever runs it. A lognormal draw
    past what fits is clipped: prompts to ``max_prompt``, outputs so that the prompt and all
    but the last output token fit ``cache_len`` positions."""
    rng = np.random.default_rng([seed, 22])
    prompts = draw_lengths(prompt, count, rng, max_prompt)
    outputs = np.minimum(draw_lengths(output, count, rng, cache_len), cache_len + 1 - prompts)
    at = arrivals(arrivals_kind, rate, count, seed, burstiness)
    seeds = rng.integers(0, 2**31 - 1, size=count)
    return [
        GenRequest(i, float(at[i]), int(prompts[i]), int(outputs[i]), int(seeds[i]))
        for i in range(count)
    ]


def from_trace(rows: list[tuple[float, int, int]], seed: int) -> list[GenRequest]:
    """Requests of a trace: (arrival s, prompt tokens, output tokens) rows, sorted by arrival,
    shifted so the first arrives at 0."""
    rows = sorted(rows)
    start = rows[0][0] if rows else 0.0
    seeds = np.random.default_rng([seed, 23]).integers(0, 2**31 - 1, size=len(rows))
    return [GenRequest(i, a - start, p, o, int(seeds[i])) for i, (a, p, o) in enumerate(rows)]


def prompt_ids(request: GenRequest, vocab: int) -> np.ndarray:
    """The request's prompt token ids (int32), from its seed: the same on every backend."""
    rng = np.random.default_rng([request.seed, 24])
    # Id 0 is left out: it is the padding and idle-row token.
    return rng.integers(1, vocab, size=request.prompt_tokens, dtype=np.int64).astype(np.int32)

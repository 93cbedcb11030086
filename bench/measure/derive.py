"""Derive once: the metrics computed from measured ones, for a cell and for merged cells alike.

A record keeps what was measured (step times, energy counters, the price and peak it used);
``derive`` computes throughput from the batch and a median step time, and from it the metrics
``bench.metrics.METRICS`` declares as derived: tokens/s, cost per million examples, examples
per dollar, MFU, energy per example. The worker calls it with the inputs it knows (tokens per
example, devices paid for). A merge (``measure.repeats``, ``measure.hosts``) changes only the
median the throughput rests on, so it calls ``derive`` again without inputs: each derived metric
is then re-derived by the power of throughput the registry declares (MFU x s, cost x 1/s), which
is exact, and the method says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.measure.cost import cost_metrics
from bench.measure.energy import per_example
from bench.measure.flops import mfu
from bench.metrics import metric, value_of, with_throughput


@dataclass(frozen=True)
class Basis:
    """What throughput rests on: ``batch_size / median_step_s``; ``method`` says it in words
    ("batch_size / median step time pooled over 3 processes"), ``source`` names the median for
    re-derived metrics ("the pooled median")."""

    batch_size: int
    median_step_s: float
    method: str = "batch_size / median step time"
    source: str = ""


@dataclass(frozen=True)
class Inputs:
    """What the worker knows and a record does not keep: first derivation only."""

    devices: int = 1  # devices the cell pays for and whose peak FLOP/s counts
    tokens_per_example: int | None = None
    of_step: str = ""  # " (call time / steps_per_call=K)" where a call runs K steps


def derive(
    metrics: Mapping[str, Any],
    basis: Basis,
    inputs: Inputs | None = None,
    *,
    examples: float | None = None,
) -> dict[str, dict[str, Any]]:
    """The derived metrics to put into ``metrics``.

    ``inputs``: derive from the measured metrics (``flops_per_example``, ``peak_flops_per_s``,
    ``price_per_hour_usd``); None: re-derive those ``metrics`` holds at the new throughput.
    ``examples``: the examples of the timed phase, to (re)derive energy per example from
    ``energy_j``; None leaves it as it is.
    """
    rate = basis.batch_size / basis.median_step_s
    out: dict[str, dict[str, Any]] = {
        "examples_per_s": metric(rate, "examples/s", basis.method),
    }
    if inputs is not None:
        if inputs.tokens_per_example:
            out["tokens_per_s"] = metric(
                rate * inputs.tokens_per_example,
                "tokens/s",
                f"batch_size * tokens per example / median step time{inputs.of_step}",
            )
        out["mfu"] = mfu(
            value_of(metrics.get("flops_per_example")),
            rate,
            metrics.get("peak_flops_per_s"),
            inputs.devices,
        )
        out.update(cost_metrics(rate, metrics.get("price_per_hour_usd"), inputs.devices))
    else:
        old = value_of(metrics.get("examples_per_s"))
        scale = rate / old if old else 1.0
        for name, power in with_throughput():
            entry = metrics.get(name)
            if entry and value_of(entry) is not None:
                out[name] = {
                    **entry,
                    "value": entry["value"] * scale**power,
                    "method": f"{entry['method']}; rescaled to {basis.source} throughput",
                }
    if examples is not None:
        out.update(per_example(metrics, examples))
    return out

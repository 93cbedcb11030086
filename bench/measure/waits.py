"""Input-wait metrics from per-step samples: shared by a cell's own measurement and by the
merge of repeated cells, which pools every process's samples before computing them again."""

from __future__ import annotations

from typing import Any

from bench.measure.stats import summarize
from bench.metrics import metric


def input_metrics(waits: list[float], times: list[float], fill_s: float | None) -> dict[str, Any]:
    """How long the timed steps waited for input, alone and as a share of step time."""
    out: dict[str, Any] = {
        "input_wait_s": {
            "unit": "s",
            "method": "per timed step: time in the call for its batch (pipeline work not hidden "
            "by prefetching + placing the batch), wall clock",
            **summarize(waits),
        },
        "input_wait_fraction": metric(
            sum(waits) / sum(times),
            "fraction",
            "sum of input waits / sum of step times over the timed steps",
        ),
    }
    if fill_s is not None:
        out["cache_fill_s"] = metric(
            fill_s, "s", "pulling one epoch through the pipeline to fill its cache, before timing"
        )
    return out

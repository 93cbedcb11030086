"""What one run adds to the history: its row, a row per cell, and a point per (cell, metric).

A point is the run's median of a gated metric (``bench.gate.baseline.METRICS``) with the 95%
interval of that median within the run, the sample count, and the spread between the run's
processes: the within-run noise (the interval) and the run-to-run noise seen inside one run
(the process spread) are kept apart, so the detector can weigh each point by its own interval
and a reader can tell a noisy run from a moved series.

The samples come from the gate's own document of the run (``document_from_run``), so a point
and a gate verdict read the very same numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.gate.baseline import METRICS, MetricDef, document_from_run
from bench.measure.noise import spread
from bench.measure.stats import binomial_cdf
from bench.runfolder import Run


@dataclass(frozen=True)
class RunRows:
    run: dict[str, Any]
    cells: list[dict[str, Any]]
    points: list[dict[str, Any]]


def median_interval(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval of the median: the order statistics whose binomial
    coverage reaches ``confidence`` (no bootstrap, so no seed and no cost); the range of the
    samples when they are too few for that."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = x.size
    # the largest k with P(X < k) <= (1 - confidence) / 2 for X ~ Binomial(n, 1/2): the
    # binomial's (1 - confidence) / 2 quantile (scipy's binom.ppf, which the install lacks)
    k = int(np.argmax(binomial_cdf(n, 0.5) >= (1.0 - confidence) / 2.0 * (1.0 - 1e-10)))
    if k < 1 or n - k < k:
        return float(x[0]), float(x[-1])
    return float(x[k - 1]), float(x[n - k])


def machine_hash(fingerprint: Mapping[str, str]) -> str:
    text = json.dumps(dict(fingerprint), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _metric_point(cell: Mapping[str, Any], metric: MetricDef) -> dict[str, Any] | None:
    quantity = cell["quantities"].get(metric.quantity)
    if not quantity or not quantity.get("samples"):
        return None
    values = list(quantity["samples"])
    if metric.rate:
        batch = cell["key"].get("batch_size")
        if not isinstance(batch, int) or isinstance(batch, bool) or batch <= 0:
            return None
        values = [batch / v for v in values]
    lo, hi = median_interval(values)
    medians = cell.get("process_medians") or []
    return {
        "metric": metric.name,
        "unit": metric.unit,
        "median": float(np.median(values)),
        "ci_lo": lo,
        "ci_hi": hi,
        "n": len(values),
        "process_spread": None if metric.per_process else spread(medians),
    }


def rows_of(run: Run, *, commit: str, branch: str, commit_time: str, added_at: str) -> RunRows:
    """The rows ``run`` adds, for ``commit`` on ``branch``."""
    doc = document_from_run(run)
    run_doc = doc["runs"][0]
    started = str(run.meta.get("started_at") or "")
    run_row = {
        "run_id": run.run_id,
        "commit": commit,
        "branch": branch,
        "commit_time": commit_time or started,
        "started_at": started,
        "added_at": added_at,
        "machine": machine_hash(run_doc["fingerprint"]),
        "gate": json.dumps(run_doc, allow_nan=False),
        "scenario": str(run_doc["scenario"].get("name") or ""),
        "scenario_sha256": str(run_doc["scenario"].get("sha256") or ""),
    }
    cells, points = [], []
    for cell_id, cell in doc["cells"].items():
        cells.append(
            {
                "run_id": run.run_id,
                "cell_id": cell_id,
                "status": str(cell["status"]),
                "key": json.dumps(cell["key"], sort_keys=True),
                "gate": json.dumps(cell, allow_nan=False),
            }
        )
        if cell["status"] != "ok":
            continue
        for metric in METRICS.values():
            point = _metric_point(cell, metric)
            if point is not None and all(
                math.isfinite(point[k]) for k in ("median", "ci_lo", "ci_hi")
            ):
                points.append({"run_id": run.run_id, "cell_id": cell_id, **point})
    return RunRows(run_row, cells, points)

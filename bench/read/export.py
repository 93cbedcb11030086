"""Run folders in other tools' formats, so dashboards and comparers built for them read bench.

``pytest-benchmark``: the JSON that ``pytest --benchmark-json`` writes (pytest-benchmark 5.x:
``machine_info``, ``commit_info``, ``benchmarks``, ``datetime``, ``version``), so
``pytest-benchmark compare`` and CI actions that read that format (github-action-benchmark's
"pytest" tool) work on bench results. One benchmark per ok cell: its rounds are the cell's
timed steps, one iteration each, and the statistics are computed exactly as
``pytest_benchmark.stats.Stats`` does (its quartile method included), from all raw step
times, so both tools print the same numbers. pytest-benchmark itself is not imported: it is a
test dependency only.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any

from bench.finite import finite_samples
from bench.metrics import value_of
from bench.runfolder import Run

# The pytest-benchmark release whose JSON this follows (its plugin.py and stats.py).
PYTEST_BENCHMARK_VERSION = "5.3.1"


def _quartiles(data: Sequence[float]) -> tuple[float, float]:
    """Q1 and Q3 as pytest-benchmark computes them (Wikipedia's methods 3 and 2)."""
    n = len(data)
    if n == 1:
        return data[0], data[0]
    if n % 2:  # method 3
        k, r = n // 4, n % 4
        if r == 1:
            q1 = 0.25 * data[k - 1] + 0.75 * data[k]
            q3 = 0.75 * data[3 * k] + 0.25 * data[3 * k + 1]
        else:
            q1 = 0.75 * data[k] + 0.25 * data[k + 1]
            q3 = 0.25 * data[3 * k + 1] + 0.75 * data[3 * k + 2]
        return q1, q3
    return statistics.median(data[: n // 2]), statistics.median(data[n // 2 :])  # method 2


def pytest_benchmark_stats(samples: Sequence[float]) -> dict[str, Any]:
    """The ``stats`` object of one benchmark, field for field as pytest-benchmark writes it."""
    data = sorted(samples)
    n = len(data)
    mean = statistics.mean(data)
    stddev = statistics.stdev(data) if n > 1 else 0
    q1, q3 = _quartiles(data)
    iqr = q3 - q1
    low, high = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    iqr_outliers = sum(1 for v in data if v < low or v > high)
    stddev_outliers = sum(1 for v in data if v < mean - stddev or v > mean + stddev)
    total = math.fsum(data)
    return {
        "min": data[0],
        "max": data[-1],
        "mean": mean,
        "stddev": stddev,
        "rounds": n,
        "median": statistics.median(data),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": data[0] if n == 1 else data[bisect_left(data, low)],
        "hd15iqr": data[0] if n == 1 else data[bisect_right(data, high) - 1],
        "ops": n / total if total else 0,
        "total": total,
    }


def _machine_info(env: dict[str, Any]) -> dict[str, Any]:
    host, python, system = env.get("host") or {}, env.get("python") or {}, env.get("os") or {}
    return {
        "node": host.get("hostname"),
        "processor": host.get("cpu_model"),
        "machine": host.get("machine"),
        "python_compiler": "",
        "python_implementation": python.get("implementation"),
        "python_implementation_version": python.get("version"),
        "python_version": python.get("version"),
        "python_build": [],
        "release": system.get("release"),
        "system": system.get("system"),
        "cpu": {
            "brand_raw": host.get("cpu_model"),
            "count": host.get("cpu_count_logical"),
            "arch": host.get("machine"),
        },
        # not pytest-benchmark's: what bench knows beyond it
        "bench": {
            "accelerators": env.get("accelerators") or [],
            "packages": {k: v for k, v in (env.get("packages") or {}).items() if v},
        },
    }


def _commit_info(env: dict[str, Any], project: str) -> dict[str, Any]:
    git = env.get("git") or {}
    return {
        "id": git.get("commit") or "unversioned",
        "time": None,
        "author_time": None,
        "dirty": bool(git.get("dirty")),
        "project": project,
        "branch": git.get("branch") or "(unknown)",
    }


def pytest_benchmark_json(run: Run, include_data: bool = False) -> dict[str, Any]:
    """The pytest-benchmark document of a run: one benchmark per ok cell with raw step times.

    Names: ``group`` is the workload, ``name`` the cell id, ``fullname`` the scenario and
    cell id, ``params`` the cell key. ``extra_info`` carries bench's own headline numbers.
    """
    meta = run.meta
    scenario = (meta.get("scenario") or {}).get("name", "bench")
    env = meta.get("environment") or {}
    measure_opts = _measure_options(meta)
    benchmarks = []
    planned = [c for c in meta.get("cells_planned") or [] if c in run.cells]
    for cell_id in [*planned, *(c for c in run.cells if c not in planned)]:
        record = run.cells[cell_id]
        # NaN or infinity in a hand-edited or old record counts as a missing sample.
        samples = finite_samples((record.get("samples") or {}).get("step_time_s"))
        if record.get("status") != "ok" or not samples:
            continue
        metrics = record.get("metrics") or {}
        stats = pytest_benchmark_stats(samples)
        if include_data:
            stats["data"] = list(samples)
        stats["iterations"] = 1
        key = record.get("key") or {}
        benchmarks.append(
            {
                "group": key.get("workload"),
                "name": cell_id,
                "fullname": f"{scenario}::{cell_id}",
                "params": key,
                "param": cell_id,
                "extra_info": {
                    "run_id": run.run_id,
                    "unit": "seconds per step",
                    "batch_size": key.get("batch_size"),
                    **{
                        name: value_of(metrics[name])
                        for name in ("examples_per_s", "compile_s", "first_step_s")
                        if isinstance(metrics.get(name), dict) and "value" in metrics[name]
                    },
                    "flags": record.get("flags") or [],
                },
                "options": {
                    "disable_gc": False,
                    "timer": "perf_counter",
                    "min_rounds": measure_opts.get("min_steps"),
                    "max_time": measure_opts.get("max_seconds"),
                    "min_time": measure_opts.get("min_seconds"),
                    "warmup": bool(measure_opts.get("warmup_steps")),
                },
                "stats": stats,
            }
        )
    return {
        "machine_info": _machine_info(env),
        "commit_info": _commit_info(env, scenario),
        "benchmarks": benchmarks,
        "datetime": meta.get("started_at"),
        "version": PYTEST_BENCHMARK_VERSION,
    }


def _measure_options(meta: dict[str, Any]) -> dict[str, Any]:
    """The scenario's ``measure:`` settings, read from the scenario text kept in run.json."""
    import yaml

    from bench.limits import load_yaml

    try:
        parsed = load_yaml((meta.get("scenario") or {}).get("text") or "") or {}
    except yaml.YAMLError:
        return {}
    found = parsed.get("measure") if isinstance(parsed, dict) else None
    return found if isinstance(found, dict) else {}

"""Write the small, seeded run folders the gate's golden tests read (rerun only on purpose).

    python tests/golden/gate/make_inputs.py && \
        bench baseline save tests/golden/gate/baseline-run -o tests/golden/gate/baseline.json

Each cell is built to land on one verdict, with lognormal step times (CV as named):

- jax-cpu-train-bs32: 25% slower, CV 5%, 30 samples a side       -> REGRESSED
- jax-cpu-predict-bs32: unchanged, CV 5%                          -> NO_CHANGE
- tensorflow-cpu-train-bs32: 30% faster, CV 5%                    -> IMPROVED
- tensorflow-cpu-predict-bs32: 12% slower, CV 20%                 -> INCONCLUSIVE
- jax-cpu-train-bs256: 6 candidate samples                        -> INSUFFICIENT_DATA
- jax-gpu-train-bs32: skipped on both sides (no GPU)              -> INSUFFICIENT_DATA
- jax-cpu-predict-bs256: in the baseline only                     -> a note
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ENV = {
    "host": {"hostname": "ci-runner", "cpu_model": "Example CPU @ 2.0GHz", "cpu_count_logical": 2,
             "cpu_count_usable": 2, "memory_bytes": 8 * 2**30, "machine": "x86_64"},
    "os": {"system": "Linux", "release": "6.1.0", "platform": "Linux-6.1.0-x86_64"},
    "python": {"version": "3.11.7", "implementation": "CPython"},
    "packages": {"bench": "0.1.0", "jax": "0.4.35", "jaxlib": "0.4.35", "flax": "0.10.0",
                 "optax": "0.2.4", "tensorflow": "2.18.0", "keras": "3.6.0", "numpy": "2.1.0"},
    "accelerators": [],
    "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
    "frameworks": {"jax": {"cpu": {"present": True, "version": "0.4.35"}},
                   "tensorflow": {"cpu": {"present": True, "version": "2.18.0"}}},
}  # fmt: skip


def lognormal(rng: np.random.Generator, n: int, median: float, cv: float) -> list[float]:
    sigma = math.sqrt(math.log1p(cv * cv))
    return [round(float(v), 9) for v in median * rng.lognormal(0.0, sigma, size=n)]


def key(framework: str, device: str, workload: str, batch: int) -> dict:
    return {"model": "mlp", "workload": workload, "framework": framework, "device": device,
            "batch_size": batch, "precision": "float32", "input": "synthetic"}  # fmt: skip


def ok(cell_id: str, k: dict, times: list[float]) -> dict:
    median = float(np.median(times))
    return {
        "cell_id": cell_id, "key": k, "status": "ok", "reason": "", "flags": [],
        "metrics": {
            "examples_per_s": {"value": k["batch_size"] / median, "unit": "examples/s",
                               "method": "batch_size / median step time"},
            "step_time_s": {"unit": "s", "method": "wall clock per step", "n": len(times),
                            "median": median, "p99": float(np.percentile(times, 99))},
            "compile_s": {"value": 0.5, "unit": "s", "method": "jit(...).lower().compile()"},
            "peak_host_rss_bytes": {"value": 400 * 2**20, "unit": "bytes", "method": "VmHWM"},
            "peak_device_memory_bytes": {"unavailable": "no memory_stats on cpu", "unit": "bytes"},
        },
        "samples": {"step_time_s": times, "warmup_s": []},
    }  # fmt: skip


def skipped(cell_id: str, k: dict) -> dict:
    return {"cell_id": cell_id, "key": k, "status": "skipped",
            "reason": "no GPU visible to jax", "flags": [], "metrics": {}}  # fmt: skip


def reference(rng: np.random.Generator, others_share: float) -> dict:
    def moment(at: str) -> dict:
        return {"at": at, "matmul_s": lognormal(rng, 30, 0.001, 0.02),
                "copy_s": lognormal(rng, 30, 0.004, 0.05), "wall_s": 0.2}  # fmt: skip

    end = moment("2026-01-01T00:01:00+00:00")
    end["host_cpu"] = {"others_cores": others_share * 2, "others_share": others_share, "cpus": 2,
                       "seconds": 60.0, "method": "/proc/stat minus own"}  # fmt: skip
    return {"version": 1, "method": "reference kernel", "start": moment("2026-01-01T00:00:00+00:00"),
            "end": end}  # fmt: skip


def write_run(folder: Path, run_id: str, records: list[dict], rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "schema_version": 1, "run_id": run_id, "bench_version": "0.1.0",
        "command": ["bench", "run", "scenarios/ci.yaml"],
        "scenario": {"name": "ci", "path": "scenarios/ci.yaml", "sha256": "ab" * 32,
                     "overrides": [], "text": "name: ci\nmodel: mlp\n"},
        "cells_planned": [r["cell_id"] for r in records], "environment": ENV,
        "status": "complete", "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:01:00+00:00", "reference_kernel": reference(rng, 0.02),
    }  # fmt: skip
    (folder / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    (folder / "cells.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def main() -> None:
    rng = np.random.default_rng(7)
    ids = {
        "a": ("jax-cpu-train-bs32-float32-synthetic", key("jax", "cpu", "train", 32)),
        "b": ("jax-cpu-predict-bs32-float32-synthetic", key("jax", "cpu", "predict", 32)),
        "c": ("tensorflow-cpu-train-bs32-float32-synthetic", key("tensorflow", "cpu", "train", 32)),
        "d": ("tensorflow-cpu-predict-bs32-float32-synthetic",
              key("tensorflow", "cpu", "predict", 32)),
        "e": ("jax-cpu-train-bs256-float32-synthetic", key("jax", "cpu", "train", 256)),
        "f": ("jax-gpu-train-bs32-float32-synthetic", key("jax", "gpu", "train", 32)),
        "g": ("jax-cpu-predict-bs256-float32-synthetic", key("jax", "cpu", "predict", 256)),
    }  # fmt: skip
    base = {
        "a": lognormal(rng, 30, 0.010, 0.05),
        "b": lognormal(rng, 30, 0.004, 0.05),
        "c": lognormal(rng, 30, 0.012, 0.05),
        "d": lognormal(rng, 30, 0.005, 0.20),
        "e": lognormal(rng, 30, 0.030, 0.05),
        "g": lognormal(rng, 30, 0.009, 0.05),
    }
    cand = {
        "a": lognormal(rng, 30, 0.0125, 0.05),
        "b": lognormal(rng, 30, 0.004, 0.05),
        "c": lognormal(rng, 30, 0.012 * 0.7, 0.05),
        "d": lognormal(rng, 30, 0.005 * 1.12, 0.20),
        "e": lognormal(rng, 6, 0.030, 0.05),
    }
    for name, samples, run_id in (
        ("baseline-run", base, "20260101-000000-ci-aaaa"),
        ("candidate-run", cand, "20260102-000000-ci-bbbb"),
    ):
        records = [
            skipped(*ids[k]) if k == "f" else ok(*ids[k], samples[k])
            for k in ids
            if k in samples or k == "f"
        ]
        write_run(HERE / name, run_id, records, rng)


if __name__ == "__main__":
    main()

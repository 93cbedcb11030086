"""Copy a real run folder into tests/golden/runs/, small enough to check in.

Keeps ``run.json`` and ``cells.jsonl`` (worker logs are dropped) and cuts each cell's
``samples.step_time_s`` to its first ``--keep`` samples. The statistics derived from the samples
(``step_time_s``, ``examples_per_s`` and the metrics proportional to it such as cost and MFU,
``latency_per_batch_s``, ``run_length.steps/seconds``) are recomputed from the kept ones with the same code ``bench run`` uses, so a record stays
self-consistent: a reader recomputing a median from the samples finds the one recorded. Nothing
else is changed.

    python tests/golden/trim_run.py RUN_DIR tests/golden/runs/NAME [--keep 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from bench.measure.stats import summarize
from bench.metrics import with_throughput
from bench.runfolder import CELLS_FILE, RUN_FILE, load_run


def trim_record(record: dict, keep: int) -> dict:
    samples = record.get("samples", {}).get("step_time_s") or []
    if len(samples) <= keep:
        return record
    kept = samples[:keep]
    metrics = record["metrics"]
    steps = metrics["step_time_s"]
    steps.update(summarize(kept))
    batch = record["key"]["batch_size"]
    old_rate = metrics["examples_per_s"]["value"]
    metrics["examples_per_s"]["value"] = batch / steps["median"]
    # metrics derived from the throughput move with it, as bench.measure.derive re-derives them
    factor = metrics["examples_per_s"]["value"] / old_rate
    for name, power in with_throughput():
        scale = factor**power
        entry = metrics.get(name)
        if isinstance(entry, dict) and "value" in entry:
            entry["value"] *= scale
            if "achieved_flops_per_s" in entry:
                entry["achieved_flops_per_s"] *= scale
    if "latency_per_batch_s" in metrics:
        metrics["latency_per_batch_s"].update(p50=steps["p50"], p99=steps["p99"])
    metrics["run_length"].update(steps=keep, seconds=sum(kept))
    record["samples"]["step_time_s"] = kept
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--keep", type=int, default=20)
    args = parser.parse_args()
    run = load_run(args.run_dir)  # refuses anything that is not a readable run
    args.dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.run_dir / RUN_FILE, args.dest / RUN_FILE)
    with open(args.dest / CELLS_FILE, "w") as f:
        for record in run.cells.values():
            f.write(json.dumps(trim_record(record, args.keep)) + "\n")


if __name__ == "__main__":
    main()

"""Global vs per-device batch, replica resolution, scaling efficiency, the multi-host merge and
the results table that shows them: pure functions over keys and records."""

from __future__ import annotations

import pytest
from rich.console import Console

from bench.backends.replicas import BatchSplitError, per_device_batch, resolve_replicas
from bench.measure.hosts import merge_hosts
from bench.read.scaling import scaling_efficiency
from bench.report.terminal import cells_table
from bench.runfolder import Run


def test_global_batch_splits_evenly_or_says_why():
    assert per_device_batch(256, 4) == 64
    assert per_device_batch(256, 8, processes=2) == 32  # 4 devices on each of 2 hosts
    with pytest.raises(BatchSplitError, match=r"batch_size 30 .* does not split evenly over 4"):
        per_device_batch(30, 4)
    with pytest.raises(BatchSplitError, match="3 replicas do not spread evenly over 2 processes"):
        per_device_batch(30, 3, processes=2)


def test_all_resolves_to_the_devices_seen_and_more_than_that_is_refused():
    assert resolve_replicas("all", 8) == 8
    assert resolve_replicas(2, 8) == 2
    with pytest.raises(BatchSplitError, match="replicas 4 asked for, but the worker sees only 1"):
        resolve_replicas(4, 1)


def record(cell_id, batch, replicas, rate, status="ok", requested=None, **key):
    return {
        "cell_id": cell_id,
        "key": {"framework": "jax", "batch_size": batch, "replicas": requested or replicas, **key},
        "status": status,
        "reason": "",
        "flags": [],
        "parallelism": {
            "replicas": replicas,
            "requested": requested or replicas,
            "processes": 1,
            "global_batch_size": batch,
            "per_device_batch_size": batch // replicas,
        },
        "metrics": {
            "examples_per_s": {"value": rate, "unit": "examples/s", "method": "m"},
            "step_time_s": {
                "unit": "s",
                "method": "m",
                "median": batch / rate,
                "p99": batch / rate,
            },
        },
    }


RECORDS = [
    record("b64", 64, 1, 1000.0),
    record("b256", 256, 1, 2000.0),
    record("b256-r4", 256, 4, 6000.0),  # 6000 / (4 x 2000) = 0.75 strong; / (4 x 1000) = 1.5 weak?
    record("b256-rall", 256, 4, 7200.0, requested="all"),
    record("b64-r2", 64, 2, 1800.0),  # 1800 / (2 x 1000) = 0.9 strong; no bs32 cell: no weak
    record("b128-r2-failed", 128, 2, 1.0, status="failed"),
]


def test_scaling_efficiency_against_the_single_replica_cells():
    found = scaling_efficiency(RECORDS)
    # b256-r4: strong vs b256 on 1 device: 6000 / (4 x 2000) = 0.75; weak vs b64 (its
    # per-device batch) on 1 device: 6000 / (4 x 1000) = 1.5.
    assert found["b256-r4"] == pytest.approx({"strong": 0.75, "weak": 1.5})
    assert found["b256-rall"] == pytest.approx({"strong": 0.9, "weak": 1.8})  # "all" resolved to 4
    assert found["b64-r2"] == pytest.approx({"strong": 0.9})
    assert set(found) == {"b256-r4", "b256-rall", "b64-r2"}  # 1-replica and failed cells: none


def test_results_table_shows_both_batches_and_scaling():
    run = Run(path=None, meta={"run_id": "r1"}, cells={r["cell_id"]: r for r in RECORDS})  # type: ignore[arg-type]
    console = Console(width=250, record=True)
    console.print(cells_table(run))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "replicas" in line)
    for column in ("global batch", "per-device batch", "scaling (same global batch)"):
        assert column in header
    row = next(line for line in text.splitlines() if "all->4" in line)
    assert "256" in row and "64" in row and "0.90" in row and "1.80" in row


def test_single_device_table_puts_both_batches_in_the_caption():
    run = Run(path=None, meta={"run_id": "r1"}, cells={"a": record("a", 32, 1, 10.0)})  # type: ignore[arg-type]
    console = Console(width=200, record=True)
    console.print(cells_table(run))
    caption = " ".join(console.export_text().split())  # the caption wraps at the table's width
    assert "replicas=1 global batch=32 per-device batch=32" in caption


def host(record_, pid, median, energy=None):
    out = {**record_, "host": {"process_id": pid, "hostname": f"h{pid}"}}
    out["samples"] = {"step_time_s": [median] * 3}
    out["metrics"] = {
        **record_["metrics"],
        "step_time_s": {"unit": "s", "method": "m", "median": median, "p99": median},
        "mfu": {"value": 0.5, "unit": "fraction", "method": "m"},
    }
    if energy is not None:
        out["metrics"]["energy_j"] = {"value": energy, "unit": "J", "method": "NVML"}
    return out


def test_merge_keeps_every_host_and_the_slowest_bounds_the_aggregate():
    base = record("c", 256, 8, 2560.0)  # process 0's view: 256 / 0.1 s
    merged = merge_hosts([host(base, 0, 0.100, 50.0), host(base, 1, 0.128, 70.0)])
    assert [h["process_id"] for h in merged["hosts"]] == [0, 1]
    assert merged["hosts"][1]["median_step_s"] == 0.128 and merged["hosts"][1]["hostname"] == "h1"
    # 256 examples / 0.128 s (slowest host) = 2000 examples/s; MFU rescaled by 2000 / 2560.
    assert merged["metrics"]["examples_per_s"]["value"] == pytest.approx(2000.0)
    assert merged["metrics"]["mfu"]["value"] == pytest.approx(0.5 * 2000 / 2560)
    assert merged["metrics"]["energy_j"]["value"] == 120.0
    # 120 J over 3 steps of the 256-example global batch.
    assert merged["metrics"]["energy_per_example_j"]["value"] == pytest.approx(120 / (3 * 256))
    assert "host" not in merged


def test_merge_reports_the_failing_host():
    base = record("c", 256, 8, 2560.0)
    bad = {**host(base, 1, 0.1), "status": "oom", "reason": "RESOURCE_EXHAUSTED"}
    merged = merge_hosts([host(base, 0, 0.1), bad])
    assert merged["status"] == "oom" and merged["reason"] == "process 1: RESOURCE_EXHAUSTED"

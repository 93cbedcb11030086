"""Measure one ``workload: serve`` cell in the worker: online requests under load.

The backend builds its ordinary predict step once per bucket (``bench.serve.batching``: the
powers of two up to ``max_batch_size``), all compiled before any load, so no batch size is
compiled under load; a retrace during the load (TensorFlow counts them) makes the cell invalid.
Requests are rows of a seeded synthetic pool; a batch of n requests is padded to its bucket,
copied to the device, run, and counts as answered when its predictions are on the host.

Then, by ``arrivals`` and ``target_qps``: one rate of open-loop load, single-stream load, or
the search for the highest rate meeting the ``slo`` (``bench.serve.search``), between
``measure.serve.low_qps`` and the offline throughput of the largest bucket. The record keeps
every probed rate (``serve.probes``) and puts the reported rate's numbers into ``metrics``:
the max compliant rate (search), request latency percentiles, realised batch size, queueing
vs compute time, late and dropped requests, the generator's lateness, and throughput and cost
per million requests at that rate (``bench.measure.derive``: a request is one example).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from bench.axes import CellKey
from bench.backends.workload import BuildRequest, Workload
from bench.inputs.synthetic import make_batch
from bench.measure.cost import price_per_hour
from bench.measure.derive import Inputs
from bench.measure.host_memory import peak_rss_metric, reset_peak_rss
from bench.metrics import compile_metric, metric
from bench.modeldef import load_model
from bench.optimizer import Optimizer
from bench.serve.batching import Policy
from bench.serve.local import InProcess
from bench.workloads.cell.message import CellMessage
from bench.workloads.predict import SPEC as PREDICT
from bench.workloads.serve.cell.common import Plan, Top, measure_load, record

SERVE_ONLY = ("arrivals", "target_qps", "max_batch_size", "batch_timeout_ms")
POOL = 256  # distinct synthetic requests, cycled
SERVICE_CALLS = 30  # timed calls per bucket for its service time (after WARM_CALLS)
WARM_CALLS = 5


def build_buckets(
    backend: Any,
    key: CellKey,
    policy: Policy,
    model_args: Mapping[str, Any],
    seed: int,
    run_dir: str | None = None,
) -> tuple[dict[int, Workload], Any]:
    """One compiled forward pass per bucket (batch size) of the policy, and the data spec."""
    model = load_model(key["model"])
    args = model.Args.model_validate(model_args)
    spec = model.data_spec(args)
    base = {k: v for k, v in key.to_dict().items() if k not in SERVE_ONLY}
    built = {}
    for bucket in policy.buckets:
        # A predict key: a bucket is a batch of requests through the same forward pass.
        bkey = CellKey.from_dict({**base, "workload": PREDICT.name, "batch_size": bucket})
        req = BuildRequest(bkey, model, args, spec, Optimizer(), seed, run_dir=run_dir)
        built[bucket] = backend.build(req)
    return built, spec


def measure_serve_cell(backend: Any, msg: CellMessage) -> dict[str, Any]:
    key = msg.key
    if msg.processes > 1:
        # One server in one process: hosts would each load themselves, not one service.
        reason = "workload: serve runs on one host; a multi-host run skips its serve cells"
        return {"status": "skipped", "reason": reason, "flags": [], "metrics": {}}
    rss_reset = reset_peak_rss()
    single = key["arrivals"] == "single_stream"
    policy = (
        Policy(1, 0.0) if single else Policy(key["max_batch_size"], key["batch_timeout_ms"] / 1e3)
    )
    build_start = time.perf_counter()
    workloads, spec = build_buckets(backend, key, policy, msg.model_args, msg.seed, msg.run_dir)
    pool = make_batch(spec, POOL, msg.seed + 1)

    def infer(ids: np.ndarray, bucket: int) -> np.ndarray:
        rows = np.zeros(bucket, dtype=np.int64)  # padding repeats request 0's features
        rows[: len(ids)] = ids % POOL
        return workloads[bucket].infer({k: v[rows] for k, v in pool.items()})

    service = _service_times(infer, policy)
    largest = policy.buckets[-1]
    top = Top(largest / service[largest], f"the offline throughput of bucket {largest}",
              service[1], "bucket 1, no queue")  # fmt: skip
    time_to_first = time.perf_counter() - build_start

    traces = {b: w.trace_count() for b, w in workloads.items()}
    target = InProcess(infer, policy)
    plan = Plan.of(msg)
    measured = measure_load(target, plan, top)
    retraced = sum(w.trace_count() - traces[b] for b, w in workloads.items())
    bad = next((r for b, w in workloads.items() if (r := _check(infer(np.arange(b), b), b))), None)
    so_far = ("invalid", bad) if bad else ("ok", "")
    if retraced and not bad:
        so_far = ("invalid", f"a predict step retraced {retraced} time(s) under load")

    first = next(iter(workloads.values()))
    model = load_model(key["model"])
    args = model.Args.model_validate(msg.model_args)
    known: dict[str, Any] = {
        "compile_s": compile_metric(
            sum(w.compile_s for w in workloads.values()),
            f"sum over {len(workloads)} buckets: {first.compile_method}",
            all(w.compile_cached for w in workloads.values()),
        ),
        "time_to_first_result_s": metric(
            time_to_first, "s", "every bucket built and compiled, plus its warm-up and timed calls"
        ),
        "param_count": metric(first.param_count, "parameters", "trainable parameters"),
        "peak_host_rss_bytes": peak_rss_metric(rss_reset),
        **first.memory(),
        **first.backend_metrics(),
        "price_per_hour_usd": price_per_hour(first.device_name, overrides=msg.pricing or None),
        "flops_per_example": metric(
            model.flops_per_example(args, "predict"), "FLOP/example",
            f"analytic formula of model {key['model']!r} (predict)",
        ),
    }  # fmt: skip
    inputs = Inputs(first.device_count, spec.tokens_per_example)
    found = record(plan, measured, top, target, known, inputs, so_far)
    found["serve"].update(
        {
            "policy": {
                "max_batch_size": policy.max_batch_size,
                "batch_timeout_ms": policy.batch_timeout_s * 1e3,
                "buckets": list(policy.buckets),
                "stated_by": "the worker's own server",
            },
            "bucket_service_s": {str(b): t for b, t in service.items()},
        }
    )
    return found


def _service_times(infer: Any, policy: Policy) -> dict[int, float]:
    """Median wall time of one host-to-host batch per bucket, after warm-up calls: what a
    batch costs with no queue (the offline throughput of the largest bucket bounds the
    search)."""
    for bucket in policy.buckets:
        for _ in range(WARM_CALLS):
            infer(np.arange(bucket), bucket)
    times: dict[int, list[float]] = {b: [] for b in policy.buckets}
    for _ in range(SERVICE_CALLS):  # round robin: a burst of load elsewhere hits every bucket
        for bucket in policy.buckets:
            start = time.perf_counter()
            infer(np.arange(bucket), bucket)
            times[bucket].append(time.perf_counter() - start)
    return {b: statistics.median(t) for b, t in times.items()}


def _check(out: np.ndarray, bucket: int) -> str | None:
    arr = np.asarray(out, dtype=np.float32)
    if arr.shape[0] != bucket:
        return f"bucket {bucket} answered {arr.shape[0]} rows"
    if not np.all(np.isfinite(arr)):
        return f"non-finite predictions in bucket {bucket} ({arr.ravel()[:3].tolist()}...)"
    return None

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
from bench.measure.derive import Basis, Inputs, derive
from bench.measure.host_memory import peak_rss_metric, reset_peak_rss
from bench.metrics import metric, unavailable
from bench.modeldef import load_model
from bench.optimizer import Optimizer
from bench.serve.batching import Policy
from bench.serve.loadgen import Load
from bench.serve.probe import measure_rate, measure_single_stream
from bench.serve.search import search
from bench.serve.summary import PERCENTILES, Slo, stat_name
from bench.workloads.cell.message import CellMessage
from bench.workloads.predict import SPEC as PREDICT

SERVE_ONLY = ("arrivals", "target_qps", "max_batch_size", "batch_timeout_ms")
POOL = 256  # distinct synthetic requests, cycled
SERVICE_CALLS = 30  # timed calls per bucket for its service time (after WARM_CALLS)
WARM_CALLS = 5
LOW_FRACTION = 1 / 16  # search's default low end: this share of the offline throughput


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
    compile_s = sum(w.compile_s for w in workloads.values())
    pool = make_batch(spec, POOL, msg.seed + 1)

    def infer(ids: np.ndarray, bucket: int) -> np.ndarray:
        rows = np.zeros(bucket, dtype=np.int64)  # padding repeats request 0's features
        rows[: len(ids)] = ids % POOL
        return workloads[bucket].infer({k: v[rows] for k, v in pool.items()})

    service = _service_times(infer, policy)
    largest = policy.buckets[-1]
    offline_qps = largest / service[largest]
    time_to_first = time.perf_counter() - build_start

    rules = msg.measure["serve"]
    load = Load(
        rules["min_queries"], rules["min_seconds"], rules["warmup_queries"],
        rules["max_seconds"], rules["drain_s"],
    )  # fmt: skip
    assert msg.slo is not None, "validation requires an slo for serve cells"
    slo = Slo(msg.slo["percentile"], msg.slo["latency_ms"] / 1e3)
    seed = msg.seed
    traces = {b: w.trace_count() for b, w in workloads.items()}
    found: dict[str, Any] = {}
    if single:
        headline = measure_single_stream(infer, load, slo)
        probes = [headline]
    elif key.get("target_qps") == "search":
        # Below min_queries / max_seconds no rate can be a valid measurement.
        floor = rules["min_queries"] / rules["max_seconds"]
        low = rules["low_qps"] or max(offline_qps * LOW_FRACTION, floor)
        alone = service[1]
        hopeless = (
            f"a single request alone takes {alone * 1e3:.3g} ms (bucket 1, no queue), over the "
            f"SLO's {slo.latency_s * 1e3:g} ms"
            if alone > slo.latency_s
            else ""
        )
        result = search(
            lambda r: measure_rate(infer, policy, key["arrivals"], r, load, slo, seed),
            low=min(low, offline_qps * 0.99),
            high=offline_qps,
            tolerance=rules["tolerance"],
            hopeless=hopeless,
            floor=floor,
            retries=rules.get("retries", 0),
        )
        found["search"] = {k: v for k, v in result.to_dict().items() if k != "probes"}
        probes = result.to_dict()["probes"]
        met = [p for p in probes if p["meets_slo"]]
        headline = max(met, key=lambda p: p["offered_qps"]) if met else probes[0]
        max_qps = result.max_qps
    else:
        headline = measure_rate(
            infer, policy, key["arrivals"], float(key["target_qps"]), load, slo, seed
        )
        probes = [headline]
    retraced = sum(w.trace_count() - traces[b] for b, w in workloads.items())
    bad = next((r for b, w in workloads.items() if (r := _check(infer(np.arange(b), b), b))), None)

    status, reason, flags = "ok", "", []
    if bad:
        status, reason = "invalid", bad
    elif retraced:
        status, reason = "invalid", f"a predict step retraced {retraced} time(s) under load"
    elif not headline["valid"]:
        status, reason = "invalid", headline["invalid_reason"]

    metrics: dict[str, Any] = {
        "compile_s": metric(compile_s, "s", f"sum over {len(workloads)} buckets: "
                            + next(iter(workloads.values())).compile_method),
        "time_to_first_result_s": metric(
            time_to_first, "s", "every bucket built and compiled, plus its warm-up and timed calls"
        ),
        "param_count": metric(next(iter(workloads.values())).param_count, "parameters",
                              "trainable parameters"),
        "peak_host_rss_bytes": peak_rss_metric(rss_reset),
        **next(iter(workloads.values())).memory(),
        **next(iter(workloads.values())).backend_metrics(),
        **serve_metrics(headline, slo),
    }  # fmt: skip
    rate_note = ""
    if key.get("target_qps") == "search":
        if max_qps is None:
            why = found["search"]["reason"]
            flags.append("slo_unmet")
            reason = reason or why
            metrics["max_compliant_qps"] = unavailable(why, "requests/s")
        else:
            metrics["max_compliant_qps"] = metric(
                max_qps, "requests/s",
                f"highest offered rate measured to meet {slo.describe()}; bracket "
                f"{found['search']['bracket_qps']} searched from the offline throughput of "
                f"bucket {largest}" + (f"; {note}" if (note := found["search"]["reason"]) else ""),
            )  # fmt: skip
            rate_note = "the max compliant rate"
            if found["search"]["bracket_qps"][1] is None:
                # The SLO held at the offline throughput itself: the rate is a lower bound,
                # capped by what the largest bucket can do back to back.
                flags.append("slo_met_at_offline_rate")
    elif not headline["meets_slo"] and status == "ok":
        flags.append("slo_unmet")
    served = headline.get("served_qps")
    device = next(iter(workloads.values()))
    metrics["price_per_hour_usd"] = price_per_hour(
        device.device_name, overrides=msg.pricing or None
    )
    model = load_model(key["model"])
    args = model.Args.model_validate(msg.model_args)
    metrics["flops_per_example"] = metric(
        model.flops_per_example(args, "predict"), "FLOP/example",
        f"analytic formula of model {key['model']!r} (predict)",
    )  # fmt: skip
    # A search cell is worth its max compliant rate, or nothing where none met the SLO.
    searched = key.get("target_qps") == "search"
    rate = metrics["max_compliant_qps"].get("value") if searched else served
    if rate:
        how = f"requests/s at {rate_note}" if rate_note else "requests answered / s at this load"
        basis = Basis(1, 1.0 / rate, f"{how} (a request is one example)")
        metrics.update(derive(metrics, basis, Inputs(device.device_count, spec.tokens_per_example)))
        metrics.pop("mfu", None)  # no calibrated peak here: MFU is the offline cells' number
    else:
        metrics["examples_per_s"] = unavailable(reason or "no request answered", "examples/s")

    found.update(
        {
            "policy": {
                "max_batch_size": policy.max_batch_size,
                "batch_timeout_ms": policy.batch_timeout_s * 1e3,
                "buckets": list(policy.buckets),
            },
            "bucket_service_s": {str(b): t for b, t in service.items()},
            "offline_qps": offline_qps,
            "slo": {"percentile": slo.percentile, "latency_ms": slo.latency_s * 1e3},
            "probes": probes,
        }
    )
    return {
        "status": status,
        "reason": reason,
        "flags": flags,
        "metrics": metrics,
        "samples": {},
        "input": {},
        "serve": found,
    }


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


def serve_metrics(probe: dict[str, Any], slo: Slo) -> dict[str, Any]:
    """The reported rate's numbers, in the registry's shapes (``bench.metrics``)."""
    at = (
        f"{probe['arrivals']} arrivals at {probe['offered_qps']:.4g} QPS offered"
        if probe["offered_qps"]
        else "single stream"
    )
    lat = probe["latency_s"]
    stats = {stat_name(p): lat[stat_name(p)] for p in PERCENTILES}
    out: dict[str, Any] = {
        "request_latency_s": {
            "unit": "s",
            "method": f"scheduled arrival to result on the host, nearest-rank percentiles over "
            f"{probe['queries']} requests after {probe['warmup_queries']} warm-up ({at}); "
            "dropped requests count as infinitely late",
            "n": lat["n"],
            **({"mean": lat["mean"], "max": lat["max"]} if "mean" in lat else {}),
            **{k: v for k, v in stats.items() if v is not None},
        },
        "late_requests": metric(
            probe["over_slo"] / max(1, probe["queries"]), "fraction",
            f"requests over the SLO latency ({slo.latency_s * 1e3:g} ms), {at}",
            count=probe["over_slo"],
        ),
        "dropped_requests": metric(
            probe["dropped"], "requests", f"unanswered when the load ended plus drain time, {at}"
        ),
        "issue_lateness_s": {
            "unit": "s",
            "method": "when the generator handed each request over minus when it was due",
            **probe["issue_lateness_s"],
        },
    }  # fmt: skip
    if "batch_size" in probe:
        out["realised_batch_size"] = metric(
            probe["batch_size"]["mean"], "requests", f"mean requests per batch, {at}",
            max=probe["batch_size"]["max"], padding_waste=probe["padding_waste"],
        )  # fmt: skip
        out["queue_time_s"] = {
            "unit": "s", "method": f"scheduled arrival to its batch's start, {at}",
            **probe["queue_s"],
        }  # fmt: skip
        out["compute_time_s"] = {
            "unit": "s", "method": f"its batch's start to results on the host, {at}",
            **probe["compute_s"],
        }  # fmt: skip
    return out

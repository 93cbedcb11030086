"""Measure one cell in the worker: build, compile, time, check, and turn it all into metrics.

Composes the pieces that stay independent: the backend (framework), the model, the input and
the timer. Returns the parts of a cell record that measurement fills in (status, reason, flags,
metrics, samples); the worker adds identity and timestamps.
"""

from __future__ import annotations

import time
from typing import Any

from bench.backends.workload import BuildRequest
from bench.measure.host_memory import peak_rss_bytes, reset_peak_rss
from bench.measure.stats import summarize
from bench.measure.timing import RunLength, Timer
from bench.metrics import metric, unavailable
from bench.modeldef import load_model


def measure_cell(backend: Any, msg: dict[str, Any]) -> dict[str, Any]:
    from bench.scenario import Optimizer

    key = msg["key"]
    rss_reset = reset_peak_rss()
    build_start = time.perf_counter()
    model = load_model(key["model"])
    args = model.Args.model_validate(msg["model_args"])
    spec = model.data_spec(args)
    req = BuildRequest(key, model, args, spec, Optimizer(**msg["optimizer"]), msg["seed"])
    workload = backend.build(req)

    m = msg["measure"]
    rule = RunLength(
        m["warmup_steps"], m["min_steps"], m["min_seconds"], m["max_seconds"], m["target_rel_ci"]
    )
    traces_before = workload.trace_count()
    timing = Timer(rule).run(workload.step, workload.sync)
    time_to_first = (
        (time.perf_counter() - build_start) - sum(timing.warmup_s) - sum(timing.step_times_s)
    )
    retraced = workload.trace_count() - traces_before

    status, reason, flags = "ok", "", []
    bad_output = workload.check_output(timing.last_output)
    if bad_output:
        status, reason = "invalid", bad_output
    elif retraced:
        status, reason = "invalid", f"step retraced {retraced} time(s) during the timed phase"
    if not timing.converged:
        flags.append("unstable")

    batch = key["batch_size"]
    times = timing.step_times_s
    steps = summarize(times)
    sync_how = "device-synced" if key["framework"] == "jax" else "host read of the output"
    metrics: dict[str, Any] = {
        "examples_per_s": metric(
            batch / steps["median"], "examples/s", "batch_size / median step time"
        ),
        "step_time_s": {
            "unit": "s",
            "method": f"wall clock per step after {rule.warmup_steps} warm-up steps, {sync_how}",
            **steps,
        },
        "compile_s": metric(workload.compile_s, "s", workload.compile_method),
        "first_step_s": metric(timing.first_step_s, "s", "first call after compile, synced"),
        "time_to_first_result_s": metric(
            time_to_first, "s", "model build + compile + first step, wall clock"
        ),
        "run_length": {
            "steps": len(times),
            "seconds": sum(times),
            "stop_reason": timing.stop_reason,
            "rel_ci95_halfwidth": timing.rel_ci,
            "target_rel_ci": rule.target_rel_ci,
        },
        "param_count": metric(workload.param_count, "parameters", "trainable parameters"),
    }
    if spec.tokens_per_example:
        tokens = batch * spec.tokens_per_example
        metrics["tokens_per_s"] = metric(
            tokens / steps["median"], "tokens/s", "batch_size * sequence length / median step time"
        )
    if key["workload"] == "predict":
        metrics["latency_per_batch_s"] = {
            "unit": "s",
            "method": "step time of one batch prediction, synced",
            "p50": steps["p50"],
            "p99": steps["p99"],
        }
    metrics.update(workload.memory())
    peak = peak_rss_bytes()
    if peak is None:
        metrics["peak_host_rss_bytes"] = unavailable("/proc/self/status not readable", "bytes")
    else:
        scope = "this cell (VmHWM reset at its start)" if rss_reset else "worker lifetime"
        metrics["peak_host_rss_bytes"] = metric(peak, "bytes", f"VmHWM of the worker over {scope}")
    return {
        "status": status,
        "reason": reason,
        "flags": flags,
        "metrics": metrics,
        "samples": {"step_time_s": times, "warmup_s": timing.warmup_s},
    }

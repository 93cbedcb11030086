"""Measure one cell in the worker: build, compile, time, check, and turn it all into metrics.

Composes the pieces that stay independent: the backend (framework), the model, the input, the
timer, and the counters read around the timed phase (energy, telemetry). Returns the parts of a
cell record that measurement fills in (status, reason, flags, metrics, samples, input); the
worker adds identity and timestamps.

Input measurements (``numpy`` and ``tfdata`` cells): the time each timed step waited for its
batch, that wait as a fraction of step time, and the pipeline's own throughput, measured after
the timed phase by iterating a fresh copy of the same pipeline with no model. Whether the cell
is input-bound needs the matching ``synthetic`` cell, so the runner decides it
(``bench.inputs.verdict``).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

from bench.axes import CellKey
from bench.backends.feed import Batches
from bench.backends.parity import ParitySetError
from bench.backends.workload import BuildRequest, Workload
from bench.measure.cost import price_per_hour
from bench.measure.derive import Basis, Inputs, derive
from bench.measure.energy import EnergyMeter
from bench.measure.flops import calibrate_cpu_peak, matmul_precision, mfu_peak
from bench.measure.host_memory import peak_rss_metric, reset_peak_rss
from bench.measure.reference import cpu_snapshot, others_cpu
from bench.measure.stats import summarize
from bench.measure.telemetry import TelemetrySampler
from bench.measure.timing import RunLength, Timer
from bench.measure.waits import input_metrics
from bench.metrics import metric, unavailable, value_of
from bench.modeldef import load_model

# Sizes of the CPU calibration matmuls: the fastest is the peak, as the best size depends on the
# CPU's caches and the framework's kernels (0.3-17 GFLOP each: well under a second in all).
CALIBRATION_SIZES = (512, 1024, 2048)
MEASURED_INPUTS = ("numpy", "tfdata")  # inputs whose cost is measured (synthetic has none)
OTHERS_METHOD_CELL = (
    "machine-wide busy CPU time from /proc/stat minus the worker's own (getrusage) over the "
    "timed phase, as a share of all CPUs"
)
# The pipeline alone runs by the cell's run-length rule, but for at most this long.
ALONE_MAX_SECONDS = 5.0


@functools.cache
def cpu_peak(backend: Any, precision: str) -> dict[str, Any]:
    """Calibrated once per worker with the framework's own matmul: a CPU has no datasheet peak
    its kernels reach, and numpy's BLAS may be slower or faster than the framework's."""
    best: dict[str, Any] = unavailable("no calibration ran", "FLOP/s")
    for n in CALIBRATION_SIZES:
        try:
            matmul = backend.calibration_matmul(precision, n)
        except Exception as exc:
            return unavailable(f"calibration matmul failed: {type(exc).__name__}: {exc}", "FLOP/s")
        found = calibrate_cpu_peak(precision, matmul, n=n, repeats=5)
        if (value_of(found) or 0) > (value_of(best) or 0):
            best = found
    if "value" in best:
        best["method"] += f" (fastest of sizes {', '.join(map(str, CALIBRATION_SIZES))})"
    return best


def measure_cell(backend: Any, msg: dict[str, Any]) -> dict[str, Any]:
    from bench.run.scenario import Optimizer

    key = CellKey.from_dict(msg["key"])  # typed from here on: backends read its attributes
    if key["workload"] == "serve" and key["endpoint"] != "in_process":
        from bench.run.endpoint_cell import measure_endpoint_cell

        return measure_endpoint_cell(key, msg)
    if key["workload"] == "serve":
        from bench.run.serve_cell import measure_serve_cell

        return measure_serve_cell(backend, key, msg)
    rss_reset = reset_peak_rss()
    model = load_model(key["model"])
    args = model.Args.model_validate(msg["model_args"])
    spec = model.data_spec(args)
    data = None
    if key["input"] == "tfdata":
        # Made (or found in the cache, and checked) before the clock starts: data files are
        # prepared once, offline, in real jobs too.
        from bench.inputs.datafiles import ensure
        from bench.inputs.settings import DataFiles

        data = ensure(spec, DataFiles(**msg.get("data", {})), msg["seed"])
    req = BuildRequest(
        key, model, args, spec, Optimizer(**msg["optimizer"]), msg["seed"], data,
        run_dir=msg.get("run_dir"),
    )  # fmt: skip
    processes = (msg.get("cluster") or {}).get("num_processes", 1)
    # The run's shared weights and evaluation set, read (or made, by the first worker) before
    # the clock of time-to-first-result starts: they are the run's, not this cell's.
    shared, parity_why = None, ""
    if key["workload"] == "predict":
        shared, parity_why = _parity_set(backend, req, msg, processes)
        if shared is not None:
            req = dataclasses.replace(req, weights=shared.weights)
    build_start = time.perf_counter()
    try:
        workload = backend.build(req)
    except ParitySetError as exc:
        # A model whose twins name their weights differently: the cell is still measured,
        # from its own initialisation, and says why it has no parity.
        shared, parity_why = None, f"the run's shared weights do not load: {exc}"[:400]
        req = dataclasses.replace(req, weights=None)
        build_start = time.perf_counter()
        workload = backend.build(req)
    batches: Batches | None = workload.batches

    m = msg["measure"]
    rule = RunLength(
        m["warmup_steps"],
        m["min_steps"],
        m["min_seconds"],
        m["max_seconds"],
        m["target_rel_ci"],
        # Processes must agree on the step count without talking: see timing.RunLength.
        fixed_steps=m["min_steps"] if processes > 1 else None,
    )
    split = workload.split
    local = split.local_replicas if split else 1
    gpus = tuple(range(local)) if key["device"] == "gpu" else ()
    energy = EnergyMeter(device=key["device"], gpu_indices=gpus)
    telemetry = TelemetrySampler(gpu_indices=gpus, tpu=key["device"] == "tpu")
    energy_metrics: dict[str, Any] = {}
    cpu_before: list[dict[str, float] | None] = []
    compiles: list[int | None] = []  # the framework's compile count at start and end

    def timed_phase_start() -> None:
        compiles.append(workload.compile_count())
        telemetry.start()
        cpu_before.append(cpu_snapshot())
        energy.start()  # last, so the counters cover the steps and not the sampler's start-up

    def timed_phase_end() -> None:
        energy_metrics.update(energy.stop())
        compiles.append(workload.compile_count())
        others = others_cpu(cpu_before[-1] if cpu_before else None, cpu_snapshot())
        if others is not None:
            # Other processes' CPU time during this cell's steps: what a claim of a difference
            # must allow for (bench.measure.noise), per cell rather than averaged over the run.
            energy_metrics["others_cpu_share"] = metric(
                others["others_share"], "fraction", OTHERS_METHOD_CELL,
                others_cores=others["others_cores"], cpus=others["cpus"],
            )  # fmt: skip
        telemetry.stop()

    try:
        fill_s = batches.fill_cache() if batches is not None else None
        step, waits = _step_noting_input_waits(workload, batches)
        traces_before = workload.trace_count()
        timing = Timer(rule).run(step, workload.sync, timed_phase_start, timed_phase_end)
        time_to_first = (
            time.perf_counter()
            - build_start
            - sum(timing.warmup_s)
            - sum(timing.step_times_s)
            - (fill_s or 0.0)
        )
        retraced = workload.trace_count() - traces_before
    finally:
        if batches is not None:
            batches.close()  # stop prefetching: the pipeline is timed alone below

    status, reason, flags = "ok", "", []
    bad_output = workload.check_output(timing.last_output)
    if bad_output:
        status, reason = "invalid", bad_output
    elif retraced:
        status, reason = "invalid", f"step retraced {retraced} time(s) during the timed phase"
    compiled = _compile_metric(workload, compiles)
    if status == "ok" and (value_of(compiled) or 0) > 0:
        status, reason = (
            "invalid",
            f"{value_of(compiled):.0f} compilation(s) during the timed phase ({compiled['method']})",
        )
    if not timing.converged:
        flags.append("unstable")

    batch = key["batch_size"]
    # The timer times calls; a call runs K steps, and every per-step number divides by K.
    per_call = workload.steps_per_call
    times = [t / per_call for t in timing.step_times_s]
    warmup = [t / per_call for t in timing.warmup_s]
    step_waits = [w / per_call for w in waits[-len(times) :]] if waits else []
    steps = summarize(times)
    sync_how = workload.sync_method
    if per_call == 1:
        per_step = f"wall clock per step after {rule.warmup_steps} warm-up steps, {sync_how}"
        first = "first call after compile, synced"
    else:
        per_step = (
            f"wall clock per call / {per_call} (steps_per_call={per_call}: {per_call} steps "
            f"per compiled call) after {rule.warmup_steps} warm-up calls, {sync_how}"
        )
        first = f"first call ({per_call} steps) after compile, synced"
    of_step = f" (call time / steps_per_call={per_call})" if per_call > 1 else ""
    metrics: dict[str, Any] = {
        "step_time_s": {"unit": "s", "method": per_step, **steps},
        "compile_s": metric(workload.compile_s, "s", workload.compile_method),
        "first_step_s": metric(timing.first_step_s, "s", first),
        "time_to_first_result_s": metric(
            time_to_first,
            "s",
            "model build + compile + first step, wall clock (data files and cache fill apart)",
        ),
        "run_length": {
            "steps": len(times) * per_call,
            "calls": len(times),
            "steps_per_call": per_call,
            "seconds": sum(timing.step_times_s),
            "stop_reason": timing.stop_reason,
            "rel_ci95_halfwidth": timing.rel_ci,
            "target_rel_ci": rule.target_rel_ci,
        },
        "param_count": metric(workload.param_count, "parameters", "trainable parameters"),
        "compile_count": compiled,
    }
    if key["workload"] == "predict":
        latency_how = "step time of one batch prediction, synced"
        if per_call > 1:
            # K batches come back together: a share of the call, not one request's latency.
            latency_how = (
                f"call time / steps_per_call={per_call}, synced: {per_call} batches finish "
                "together, so this is each batch's share of the call, not one batch's latency"
            )
        metrics["latency_per_batch_s"] = {
            "unit": "s",
            "method": latency_how,
            "p50": steps["p50"],
            "p99": steps["p99"],
        }
    measured_input = batches is not None and key["input"] in MEASURED_INPUTS
    if batches is not None and measured_input:
        metrics.update(input_metrics(step_waits, times, fill_s))
        if per_call > 1:
            metrics["input_wait_s"]["method"] += f"; call wait / steps_per_call={per_call}"
        metrics["pipeline_examples_per_s"] = pipeline_alone(
            batches, rule, batches.examples_per_call
        )
    metrics.update(workload.memory())
    metrics.update(workload.backend_metrics())
    metrics["peak_host_rss_bytes"] = peak_rss_metric(rss_reset)

    metrics.update(energy_metrics)
    summary = telemetry.summary()
    metrics["telemetry"] = summary
    if value_of(summary.get("throttled")):
        flags.append("throttled")

    metrics.update(_flops_metrics(backend, model, args, key, workload))
    metrics["price_per_hour_usd"] = price_per_hour(
        workload.device_name, overrides=msg.get("pricing") or None
    )
    # Throughput, tokens/s, MFU, cost and energy per example: from what was measured above.
    basis = Basis(batch, steps["median"], f"batch_size / median step time{of_step}")
    inputs = Inputs(workload.device_count, spec.tokens_per_example, of_step)
    metrics.update(derive(metrics, basis, inputs, examples=batch * len(times) * per_call))
    invalid_mfu = metrics["mfu"].get("invalid_reason")
    if invalid_mfu and workload.device_name == "cpu":
        # A calibrated CPU peak is a measurement (noisy on a shared host), not a bound.
        flags.append("mfu_above_calibration")
    elif invalid_mfu and status == "ok":
        status, reason = "invalid", invalid_mfu

    found = {
        "status": status,
        "reason": reason,
        "flags": flags,
        "metrics": metrics,
        "samples": {
            "step_time_s": times,
            "warmup_s": warmup,
            **({"input_wait_s": step_waits} if measured_input else {}),
        },
        "input": batches.describe() if batches is not None else {},
    }
    if split is not None:
        found["parallelism"] = split.describe(workload.parallel_method)
    if key["workload"] == "predict":
        # After every timed measurement: the evaluation set runs through the compiled step.
        metrics.update(_parity_metrics(workload, shared, parity_why, spec.task))
    profile = m.get("profile")
    if profile and msg.get("run_dir"):
        # Last, after every measurement of the cell: nothing traced can change them.
        found["profile"] = traced = _profile(
            workload, batches, measured_input, profile["steps"], msg
        )
        busy = (traced.get("breakdown") or {}).get("busy_share")
        if busy is not None:
            metrics["traced_busy_share"] = metric(
                busy,
                "fraction",
                f"union of op intervals on {traced['breakdown']['scope']} / wall time of "
                f"{traced['steps']} steps traced after the timed phase",
            )
    return found


PARITY_UNITS = {"parity_max_abs": "abs difference", "parity_mean_abs": "abs difference"}


def _parity_set(
    backend: Any, req: BuildRequest, msg: dict[str, Any], processes: int
) -> tuple[Any, str]:
    """The run's parity set for this cell's model, or None and why there is none."""
    from bench.backends.parity import shared_set
    from bench.measure.parity import EVAL_EXAMPLES

    examples = msg["measure"].get("parity_examples", EVAL_EXAMPLES)
    if not examples:
        return None, "measure.parity_examples is 0"
    if not msg.get("run_dir"):
        return None, "no run folder to hold the shared weights and reference"
    if processes > 1:
        return None, "not measured on multi-host cells"
    if not hasattr(backend, "init_weights") or not hasattr(backend, "reference_outputs"):
        return None, f"the {req.key['framework']} backend provides no shared weights"
    try:
        return shared_set(msg["run_dir"], req, backend, req.key["framework"], examples), ""
    except Exception as exc:
        return None, f"shared parity set unavailable: {type(exc).__name__}: {exc}"[:400]


def _parity_metrics(
    workload: Workload, shared: Any, why: str, task: str
) -> dict[str, dict[str, Any]]:
    """The cell's predictions on the evaluation set against the reference (parity metrics),
    or each metric unavailable with the reason; a failure here never fails the cell."""
    from bench.measure.parity import parity_metrics

    names = [*PARITY_UNITS, *(["top1_agreement"] if task == "classification" else [])]
    if shared is not None:
        try:
            outputs = workload.predict_eval(shared.features)
            return parity_metrics(outputs, shared.reference, task, shared.describe())
        except NotImplementedError as exc:
            why = str(exc)
        except Exception as exc:
            why = f"evaluation-set prediction failed: {type(exc).__name__}: {exc}"[:400]
    return {n: unavailable(why, PARITY_UNITS.get(n, "fraction")) for n in names}


def _compile_metric(workload: Workload, compiles: list[int | None]) -> dict[str, Any]:
    """Compilations between the start and the end of the timed phase."""
    if len(compiles) != 2 or None in compiles:
        return unavailable("this backend keeps no compile count", "compilations")
    start, end = compiles
    assert start is not None and end is not None
    method = workload.compile_count_method or "the framework's compile count"
    return metric(end - start, "compilations", f"{method}, end - start of the timed phase")


def _profile(
    workload: Workload,
    batches: Batches | None,
    measured_input: bool,
    calls: int,
    msg: dict[str, Any],
) -> dict[str, Any]:
    """The traced calls, on a fresh copy of the cell's pipeline where its input is measured (the
    timed phase's copy is closed by now), so traced steps wait for input as timed ones did."""
    from pathlib import Path

    from bench.run.profiling import cell_folder, profile_steps

    fresh = batches.fresh() if batches is not None and measured_input else None
    try:
        if fresh is not None:
            fresh.fill_cache()
            workload.use_batches(fresh)
        return profile_steps(workload, calls, Path(msg["run_dir"]), cell_folder(msg["cell_id"]))
    finally:
        if fresh is not None:
            fresh.close()


def _step_noting_input_waits(
    workload: Workload, batches: Batches | None
) -> tuple[Callable[[], Any], list[float]]:
    """The workload's step, also noting how long each call waited for its batch."""
    waits: list[float] = []
    if batches is None:
        return workload.step, waits

    def step() -> Any:
        before = batches.wait_s
        out = workload.step()
        waits.append(batches.wait_s - before)
        return out

    return step, waits


def pipeline_alone(batches: Batches, rule: RunLength, examples_per_call: int) -> dict[str, Any]:
    """The same pipeline, opened fresh and iterated with no model: what it can deliver."""
    alone = RunLength(
        rule.warmup_steps,
        rule.min_steps,
        min(rule.min_seconds, ALONE_MAX_SECONDS),
        min(rule.max_seconds, ALONE_MAX_SECONDS),
        rule.target_rel_ci,
    )
    fresh = batches.fresh()
    try:
        fresh.fill_cache()
        timing = Timer(alone).run(fresh, fresh.ready)
    finally:
        fresh.close()
    times = timing.step_times_s
    return metric(
        examples_per_call * len(times) / sum(times),
        "examples/s",
        f"a fresh copy of the pipeline iterated with no model after the timed phase (cache "
        f"filled, {alone.warmup_steps} warm-up calls, then the cell's run-length rule capped at "
        f"{ALONE_MAX_SECONDS:g} s), inputs placed on the device; examples per call * calls / time",
        calls=len(times),
        seconds=sum(times),
    )


def _flops_metrics(
    backend: Any,
    model: Any,
    args: Any,
    key: CellKey,
    workload: Workload,
) -> dict[str, Any]:
    """Analytic FLOPs, the compiler's count beside them, and the device peak (MFU is derived
    from them)."""
    analytic = model.flops_per_example(args, key["workload"])
    out: dict[str, Any] = {
        "flops_per_example": metric(
            analytic,
            "FLOP/example",
            f"analytic formula of model {key['model']!r} ({key['workload']})",
        )
    }
    compiled = workload.compiler_flops()
    if compiled:
        out["xla_flops_per_example"] = metric(
            compiled / key["batch_size"],
            "FLOP/example",
            "XLA cost_analysis() of the compiled step / batch_size; a cross-check only "
            "(it misses library calls such as GPU convolutions)"
            + (
                f"; steps_per_call={workload.steps_per_call}: of one step's lowered HLO"
                if workload.steps_per_call > 1
                else ""
            ),
        )
    else:
        out["xla_flops_per_example"] = unavailable(
            f"no compiler cost analysis from the {key['framework']} backend", "FLOP/example"
        )
    # float32 may run as TF32 on GPUs: the peak is the one of the precision in effect.
    settings = backend.matmul_settings(key["device"])
    in_effect = matmul_precision(key["precision"], key["device"], settings, workload.device_name)
    out["matmul_precision"] = in_effect
    if workload.device_name == "cpu":
        peak = cpu_peak(backend, key["precision"])
    else:
        peak = mfu_peak(workload.device_name, in_effect)
    out["peak_flops_per_s"] = peak
    return out

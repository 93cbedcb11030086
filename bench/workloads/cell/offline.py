"""The timed-steps measurement that offline workloads (train, predict) share: build, compile,
time back-to-back calls of the compiled step, check, and turn it all into metrics.

A workload's body (``bench.workloads.train.cell``, ``bench.workloads.predict.cell``) opens an
``OfflineCell``, builds it (with the run's shared weights, for parity), runs it, adds its own
metrics and lets it profile last. Returns the parts of a cell record that measurement fills in
(status, reason, flags, metrics, samples, input); the worker adds identity and timestamps.

Input measurements (``numpy`` and ``tfdata`` cells): the time each timed step waited for its
batch, that wait as a fraction of step time, and the pipeline's own throughput, measured after
the timed phase by iterating a fresh copy of the same pipeline with no model. Whether the cell
is input-bound needs the matching ``synthetic`` cell, so the runner decides it
(``bench.inputs.verdict``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.backends.feed import Batches
from bench.backends.workload import Workload
from bench.measure.cost import price_per_hour
from bench.measure.derive import Basis, Inputs, derive
from bench.measure.energy import EnergyMeter
from bench.measure.host_memory import peak_rss_metric
from bench.measure.reference import cpu_snapshot, others_cpu
from bench.measure.stats import summarize
from bench.measure.telemetry import TelemetrySampler
from bench.measure.timing import RunLength, Timer, Timing
from bench.measure.waits import input_metrics
from bench.metrics import compile_metric, metric, unavailable, value_of
from bench.workloads.cell.context import CellContext

MEASURED_INPUTS = ("numpy", "tfdata")  # inputs whose cost is measured (synthetic has none)
OTHERS_METHOD_CELL = (
    "machine-wide busy CPU time from /proc/stat minus the worker's own (getrusage) over the "
    "timed phase, as a share of all CPUs"
)
# The pipeline alone runs by the cell's run-length rule, but for at most this long.
ALONE_MAX_SECONDS = 5.0


@dataclass
class Counters:
    """What is read around the timed phase: energy, telemetry, others' CPU, compile counts."""

    workload: Workload
    device: str
    energy: EnergyMeter = field(init=False)
    telemetry: TelemetrySampler = field(init=False)
    found: dict[str, Any] = field(default_factory=dict)
    cpu_before: list[dict[str, float] | None] = field(default_factory=list)
    compiles: list[int | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        split = self.workload.split
        gpus = tuple(range(split.local_replicas if split else 1)) if self.device == "gpu" else ()
        self.energy = EnergyMeter(device=self.device, gpu_indices=gpus)
        self.telemetry = TelemetrySampler(gpu_indices=gpus, tpu=self.device == "tpu")

    def start(self) -> None:
        self.compiles.append(self.workload.compile_count())
        self.telemetry.start()
        self.cpu_before.append(cpu_snapshot())
        self.energy.start()  # last, so the counters cover the steps and not the sampler's start

    def stop(self) -> None:
        self.found.update(self.energy.stop())
        self.compiles.append(self.workload.compile_count())
        others = others_cpu(self.cpu_before[-1] if self.cpu_before else None, cpu_snapshot())
        if others is not None:
            # Other processes' CPU time during this cell's steps: what a claim of a difference
            # must allow for (bench.measure.noise), per cell rather than averaged over the run.
            self.found["others_cpu_share"] = metric(
                others["others_share"], "fraction", OTHERS_METHOD_CELL,
                others_cores=others["others_cores"], cpus=others["cpus"],
            )  # fmt: skip
        self.telemetry.stop()

    def compile_metric(self) -> dict[str, Any]:
        """Compilations between the start and the end of the timed phase."""
        if len(self.compiles) != 2 or None in self.compiles:
            return unavailable("this backend keeps no compile count", "compilations")
        start, end = self.compiles
        assert start is not None and end is not None
        method = self.workload.compile_count_method or "the framework's compile count"
        return metric(end - start, "compilations", f"{method}, end - start of the timed phase")


class OfflineCell:
    """One cell of back-to-back timed calls of a compiled step."""

    def __init__(self, backend: Any, ctx: CellContext):
        self.backend, self.ctx = backend, ctx
        self.workload: Workload | None = None
        self.batches: Batches | None = None
        self.build_start = 0.0

    def build(self) -> Workload:
        self.build_start = time.perf_counter()
        self.workload = self.backend.build(self.ctx.req)
        self.batches = self.workload.batches
        return self.workload

    @property
    def measured_input(self) -> bool:
        return self.batches is not None and self.ctx.key["input"] in MEASURED_INPUTS

    def run(self) -> dict[str, Any]:
        """The timed phase and every metric read from it (profiling is apart: ``profile``)."""
        workload, batches = self.workload, self.batches
        assert workload is not None, "build() first"
        counters = Counters(workload, self.ctx.key["device"])
        try:
            fill_s = batches.fill_cache() if batches is not None else None
            step, waits = _step_noting_input_waits(workload, batches)
            traces_before = workload.trace_count()
            timing = Timer(self.ctx.rule).run(step, workload.sync, counters.start, counters.stop)
            spent = sum(timing.warmup_s) + sum(timing.step_times_s) + (fill_s or 0.0)
            time_to_first = time.perf_counter() - self.build_start - spent
            retraced = workload.trace_count() - traces_before
        finally:
            if batches is not None:
                batches.close()  # stop prefetching: the pipeline is timed alone below
        compiled = counters.compile_metric()
        status, reason = _verdict(workload, timing, retraced, compiled)
        flags = [] if timing.converged else ["unstable"]
        per_call = workload.steps_per_call
        times = [t / per_call for t in timing.step_times_s]
        step_waits = [w / per_call for w in waits[-len(times) :]] if waits else []
        metrics = self._step_metrics(timing, times, time_to_first, compiled)
        if batches is not None and self.measured_input:
            metrics.update(input_metrics(step_waits, times, fill_s))
            if per_call > 1:
                metrics["input_wait_s"]["method"] += f"; call wait / steps_per_call={per_call}"
            metrics["pipeline_examples_per_s"] = pipeline_alone(
                batches, self.ctx.rule, batches.examples_per_call
            )
        metrics.update(workload.memory())
        metrics.update(workload.backend_metrics())
        metrics["peak_host_rss_bytes"] = peak_rss_metric(self.ctx.rss_reset)
        metrics.update(counters.found)
        metrics["telemetry"] = summary = counters.telemetry.summary()
        if value_of(summary.get("throttled")):
            flags.append("throttled")
        status, reason = self._derived(metrics, times, status, reason, flags)
        found = {
            "status": status,
            "reason": reason,
            "flags": flags,
            "metrics": metrics,
            "samples": {
                "step_time_s": times,
                "warmup_s": [t / per_call for t in timing.warmup_s],
                **({"input_wait_s": step_waits} if self.measured_input else {}),
            },
            "input": batches.describe() if batches is not None else {},
        }
        if workload.split is not None:
            found["parallelism"] = workload.split.describe(workload.parallel_method)
        return found

    def _step_metrics(
        self,
        timing: Timing,
        times: list[float],
        time_to_first: float,
        compiled: dict[str, Any],
    ) -> dict[str, Any]:
        workload = self.workload
        assert workload is not None
        per_call, warmup = workload.steps_per_call, self.ctx.rule.warmup_steps
        if per_call == 1:
            per_step = f"wall clock per step after {warmup} warm-up steps, {workload.sync_method}"
            first = "first call after compile, synced"
        else:
            per_step = (
                f"wall clock per call / {per_call} (steps_per_call={per_call}: {per_call} steps "
                f"per compiled call) after {warmup} warm-up calls, {workload.sync_method}"
            )
            first = f"first call ({per_call} steps) after compile, synced"
        return {
            "step_time_s": {"unit": "s", "method": per_step, **summarize(times)},
            "compile_s": compile_metric(
                workload.compile_s, workload.compile_method, workload.compile_cached
            ),
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
                "target_rel_ci": self.ctx.rule.target_rel_ci,
            },
            "param_count": metric(workload.param_count, "parameters", "trainable parameters"),
            "compile_count": compiled,
        }

    def _derived(
        self, metrics: dict[str, Any], times: list[float], status: str, reason: str, flags: list
    ) -> tuple[str, str]:
        """FLOPs, price, and what derives from them (throughput, tokens/s, MFU, cost, energy
        per example); an MFU above the device's peak makes the cell invalid."""
        workload, key = self.workload, self.ctx.key
        assert workload is not None
        metrics.update(self.ctx.flops_metrics(self.backend, workload))
        metrics["price_per_hour_usd"] = price_per_hour(
            workload.device_name, overrides=self.ctx.msg.pricing or None
        )
        per_call = workload.steps_per_call
        of_step = f" (call time / steps_per_call={per_call})" if per_call > 1 else ""
        basis = Basis(
            key["batch_size"],
            metrics["step_time_s"]["median"],
            f"batch_size / median step time{of_step}",
        )
        inputs = Inputs(workload.device_count, self.ctx.req.spec.tokens_per_example, of_step)
        metrics.update(
            derive(metrics, basis, inputs, examples=key["batch_size"] * len(times) * per_call)
        )
        invalid_mfu = metrics["mfu"].get("invalid_reason")
        if invalid_mfu and workload.device_name == "cpu":
            # A calibrated CPU peak is a measurement (noisy on a shared host), not a bound.
            flags.append("mfu_above_calibration")
        elif invalid_mfu and status == "ok":
            status, reason = "invalid", invalid_mfu
        return status, reason

    def profile(self, found: dict[str, Any]) -> None:
        """Last, after every measurement of the cell: nothing traced can change them."""
        profile, run_dir = self.ctx.msg.measure.get("profile"), self.ctx.msg.run_dir
        if not profile or not run_dir:
            return
        found["profile"] = traced = self._trace(profile["steps"], Path(run_dir))
        busy = (traced.get("breakdown") or {}).get("busy_share")
        if busy is not None:
            found["metrics"]["traced_busy_share"] = metric(
                busy,
                "fraction",
                f"union of op intervals on {traced['breakdown']['scope']} / wall time of "
                f"{traced['steps']} steps traced after the timed phase",
            )

    def _trace(self, calls: int, run_dir: Path) -> dict[str, Any]:
        """The traced calls, on a fresh copy of the cell's pipeline where its input is measured
        (the timed phase's copy is closed by now), so traced steps wait for input as timed ones
        did."""
        from bench.workloads.cell.profiling import cell_folder, profile_steps

        workload, batches = self.workload, self.batches
        assert workload is not None
        fresh = batches.fresh() if batches is not None and self.measured_input else None
        try:
            if fresh is not None:
                fresh.fill_cache()
                workload.use_batches(fresh)
            return profile_steps(workload, calls, run_dir, cell_folder(self.ctx.msg.cell_id))
        finally:
            if fresh is not None:
                fresh.close()


def _verdict(
    workload: Workload, timing: Timing, retraced: int, compiled: dict[str, Any]
) -> tuple[str, str]:
    bad_output = workload.check_output(timing.last_output)
    if bad_output:
        return "invalid", bad_output
    if retraced:
        return "invalid", f"step retraced {retraced} time(s) during the timed phase"
    if (value_of(compiled) or 0) > 0:
        return (
            "invalid",
            f"{value_of(compiled):.0f} compilation(s) during the timed phase ({compiled['method']})",
        )
    return "ok", ""


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
        seconds=sum(timing.step_times_s),
    )

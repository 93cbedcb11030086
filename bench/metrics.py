"""Metrics: the shape of one in a cell record, and the registry of every metric bench knows.

A metric entry in a record is a value with its unit and how it was measured.

Every number bench writes goes through these helpers, so a reader always finds the unit and the
method beside it, and a metric that could not be measured says why instead of being left out:

    {"value": 1523.4, "unit": "examples/s", "method": "batch_size / median step time"}
    {"unavailable": "no RAPL counters readable under /sys/class/powercap", "unit": "J"}

Summaries of samples (step times) put their statistics beside ``unit`` and ``method``:
    {"unit": "s", "method": "...", "n": 40, "mean": ..., "median": ..., "p99": ..., ...}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal


def metric(value: float | int, unit: str, method: str, **extra: Any) -> dict[str, Any]:
    return {"value": value, "unit": unit, "method": method, **extra}


def compile_metric(seconds: float, method: str, cached: bool = False) -> dict[str, Any]:
    """``compile_s``; ``cached``: the program was loaded from a persistent compilation cache
    (``bench tune``'s, or one the user set; ``bench.backends.jax.cache``), so the time is no
    compile's."""
    if not cached:
        return metric(seconds, "s", method)
    method += "; loaded from a persistent compilation cache: tracing, lowering and a load"
    return metric(seconds, "s", method, cached=True)


def unavailable(reason: str, unit: str) -> dict[str, Any]:
    return {"unavailable": reason, "unit": unit}


def value_of(entry: dict[str, Any] | None, stat: str = "value") -> float | None:
    """The number in a metric entry, or None when missing, unavailable or not finite (a NaN
    written by hand or by an older bench must rank neither first nor last)."""
    if not entry or "unavailable" in entry:
        return None
    found = entry.get(stat)
    if not isinstance(found, int | float) or isinstance(found, bool):
        return None
    return float(found) if math.isfinite(found) else None


# -- the registry ----------------------------------------------------------------------------
#
# Everything bench knows about a metric, stated once. The reading side (``--where`` fields,
# ``bench compare``, ``bench recommend`` objectives, report and terminal columns), the gate's
# ``--metric`` choices and the merging of repeats and hosts all read ``METRICS``; adding a
# metric is one ``Metric`` here (plus the code that measures it, or its formula in
# ``bench.measure.derive`` when it is derived from other metrics).

GIB = 2**30

Better = Literal["higher", "lower", "none"]
# How many values a cell has, which is what merging and gating need to know:
#   "steps":   raw per-step samples (``samples.<name>``): repeats pool them, the gate tests each step
#   "process": one value per worker process: repeats and hosts keep each process's own value
#              (``repeats``/``hosts``), and the gate needs several processes to test it
#   "cell":    one value for the cell (the same in every process, or derived for the merged cell)
#   "run":     derived on the reading side from several cells of one run; never in a record
Samples = Literal["steps", "process", "cell", "run"]


@dataclass(frozen=True)
class Derived:
    """How a metric is computed from others (in ``bench.measure.derive``, or on the reading side
    for ``samples="run"``).

    ``throughput_power``: the metric is proportional to examples/s to this power (MFU +1, cost
    per example -1, energy per example 0). A merge that changes the throughput (repeats pool
    their step times; hosts take the slowest) re-derives it by that power.
    """

    inputs: tuple[str, ...]
    formula: str
    throughput_power: int = 0


@dataclass(frozen=True)
class Goal:
    """A ``bench recommend --objective``: optimise this field; the Pareto set pairs it with
    ``partner``."""

    name: str
    label: str
    unit: str
    partner: str


@dataclass(frozen=True)
class FieldDef:
    """A number the reading side shows for a metric, in the unit people state limits in:
    ``p99_ms`` is the p99 statistic of ``step_time_s`` x 1e3."""

    name: str  # the --where field, compare's field and CSV/JSON key
    unit: str
    help: str  # one line for --help
    stat: str = "value"  # which statistic of the record entry
    scale: float = 1.0
    fallback: tuple[str, ...] = ()  # metrics read, in order, where this one is not measured
    # What this field means on one workload's cells, read instead of the metric: (workload,
    # metric) pairs. Generate cells are worth their cost per million output tokens where the
    # others' is per million examples: ranked among themselves by one objective, in its unit.
    by_workload: tuple[tuple[str, str], ...] = ()
    # Read before ``fallback`` on accelerator cells only: where a GPU's or TPU's runtime peak
    # was not this cell's, the compiled program's memory is what has to fit; a CPU cell's is
    # its host RSS.
    accelerator_fallback: tuple[str, ...] = ()
    label: str = ""  # compare's row label (default: the metric's)
    column: str = ""  # short header in the report's and terminal's cell tables
    compare: bool = False  # a row of `bench compare` and a column of the report's cell table
    terminal: bool = False  # a column of `bench results RUN`
    # How compare carries the step-time bootstrap interval over: "step" (proportional to the
    # median step time), "rate" (to its inverse), None (no interval: never called better/worse)
    noise: Literal["step", "rate"] | None = None
    objective: Goal | None = None


@dataclass(frozen=True)
class Gate:
    """A ``bench gate --metric``. ``stat`` None: every step is a sample (from the raw step
    times; ``rate`` turns each into batch_size / step time); else one value per process, this
    statistic of the metric."""

    name: str
    description: str
    stat: str | None = None
    rate: bool = False
    # Gate on a record's raw per-request (or per-step) samples of this name
    # (``samples.<sample>``) instead of the step times: a generate cell's TTFT and TPOT.
    sample: str = ""


@dataclass(frozen=True)
class Metric:
    name: str  # the key in a record's ``metrics`` (cells.jsonl)
    label: str
    unit: str
    better: Better
    method: str  # how it is measured (records say it exactly, per cell)
    samples: Samples
    derived: Derived | None = None
    fields: tuple[FieldDef, ...] = ()
    gates: tuple[Gate, ...] = ()
    # Where the metric exists at all, for one that only some cells can have (scaling needs a
    # multi-replica cell): absent elsewhere is not "unavailable", so nothing reports it missing.
    applies: str = ""

    def field_label(self, f: FieldDef) -> str:
        return f.label or self.label

    def quantity(self, gate: Gate) -> str:
        """The gate's stored quantity (baseline files): ``step_time_s`` samples for per-step
        gates, the sample list's name for sample gates (``ttft_s``), else ``compile_s``,
        ``p99_step_time_s``..."""
        if gate.sample:
            return gate.sample
        if gate.stat is None:
            return "step_time_s"
        return self.name if gate.stat == "value" else f"{gate.stat}_{self.name}"


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add ``metric`` to the registry; a metric, field or gate name already taken is refused."""
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} is already registered")
    for kind, names, taken in (
        ("field", [f.name for f in metric.fields], {f.name for _, f in fields()}),
        ("gate metric", [g.name for g in metric.gates], set(gates())),
    ):
        clash = [n for n in names if n in taken]
        if clash:
            raise ValueError(f"metric {metric.name!r}: {kind} {clash[0]!r} is already taken")
    METRICS[metric.name] = metric
    return metric


def fields() -> list[tuple[Metric, FieldDef]]:
    """Every reading-side field, in registry order."""
    return [(m, f) for m in METRICS.values() for f in m.fields]


def find_field(name: str) -> tuple[Metric, FieldDef]:
    """The metric and field named ``name``; KeyError when no metric has it."""
    for m, f in fields():
        if f.name == name:
            return m, f
    raise KeyError(name)


def read_field(
    metrics: Mapping[str, Any],
    metric: Metric,
    f: FieldDef,
    device: str | None = None,
    workload: str | None = None,
) -> float | None:
    """A field's number from a record's metrics (the metric, else its fallbacks, which are in
    the same unit), or None. ``device``: the cell's, for accelerator-only fallbacks;
    ``workload``: the cell's, for a field that reads another metric on it (``by_workload``)."""
    own = dict(f.by_workload).get(workload or "")
    if own is not None:
        found = value_of(metrics.get(own), f.stat)
        return None if found is None else found * f.scale
    accelerator = f.accelerator_fallback if device not in (None, "cpu") else ()
    for name in (metric.name, *accelerator, *f.fallback):
        found = value_of(metrics.get(name), f.stat)
        if found is not None:
            return found * f.scale
    return None


def objectives() -> dict[str, tuple[Metric, FieldDef]]:
    return {f.objective.name: (m, f) for m, f in fields() if f.objective is not None}


def gates() -> dict[str, tuple[Metric, Gate]]:
    return {g.name: (m, g) for m in METRICS.values() for g in m.gates}


def per_process() -> list[str]:
    """Metrics each process has its own value of: kept per repeat and per host on a merge."""
    return [m.name for m in METRICS.values() if m.samples == "process"]


def with_throughput() -> list[tuple[str, int]]:
    """``(metric, power)`` of every metric proportional to a power of examples/s."""
    return [
        (m.name, m.derived.throughput_power)
        for m in METRICS.values()
        if m.derived is not None and m.derived.throughput_power
    ]


_PER_PROCESS_NOTE = ", one value per process"
for _metric in (
    Metric(
        "examples_per_s", "throughput", "examples/s", "higher",
        "batch_size / median step time", "process",
        derived=Derived(("step_time_s",), "batch_size / median step time"),
        fields=(
            FieldDef(
                "examples_per_s", "examples/s", "throughput", column="examples/s",
                compare=True, terminal=True, noise="rate",
                objective=Goal("throughput", "throughput", "examples/s", partner="p99_ms"),
            ),
        ),
        gates=(Gate("throughput", "batch_size / step time, per step", rate=True),),
    ),
    Metric(
        "step_time_s", "step time", "s", "lower",
        "wall clock per step after the warm-up steps, synced with the device", "steps",
        fields=(
            FieldDef(
                "median_ms", "ms", "median step time", "median", 1e3, label="median step",
                column="median ms", compare=True, terminal=True, noise="step",
            ),
            FieldDef(
                "p50_ms", "ms", "50th percentile step time (request latency on serve cells)",
                "p50", 1e3, fallback=("request_latency_s",),
            ),
            FieldDef(
                "p90_ms", "ms", "90th percentile step time (request latency on serve cells)",
                "p90", 1e3, fallback=("request_latency_s",),
            ),
            FieldDef(
                "p95_ms", "ms", "95th percentile step time (request latency on serve cells)",
                "p95", 1e3, fallback=("request_latency_s",),
            ),
            FieldDef(
                "p99_ms", "ms",
                "99th percentile step time (latency of one batch for predict; of one request, "
                "at the reported rate, for serve)",
                "p99", 1e3, label="p99 step", column="p99 ms", compare=True, terminal=True,
                fallback=("request_latency_s",),
                objective=Goal("latency", "p99 latency", "ms per batch", partner="examples_per_s"),
            ),
        ),
        gates=(
            Gate("step_time", "wall-clock time of each step"),
            Gate(
                "p99_latency",
                "99th percentile of step time (one batch)" + _PER_PROCESS_NOTE, stat="p99",
            ),
        ),
    ),
    Metric(
        "compile_s", "compile", "s", "lower", "trace + compile time", "process",
        fields=(
            FieldDef(
                "compile_s", "s", "trace + compile time", column="compile s", compare=True
            ),
        ),
        gates=(Gate("compile_time", "trace + compile time" + _PER_PROCESS_NOTE, stat="value"),),
    ),
    Metric(
        "first_step_s", "first step", "s", "lower", "first step after compile, synced",
        "process", fields=(FieldDef("first_step_s", "s", "first step after compile"),),
    ),
    Metric(
        "peak_host_rss_bytes", "peak host memory", "bytes", "lower",
        "VmHWM of the worker process", "process",
        fields=(FieldDef("host_memory_gb", "GiB", "peak host RSS of the worker", scale=1 / GIB),),
        gates=(Gate("host_memory", "peak host RSS of the worker" + _PER_PROCESS_NOTE, "value"),),
    ),
    Metric(
        "peak_device_memory_bytes", "peak device memory", "bytes", "lower",
        "the framework's peak memory statistics of the device", "process",
        fields=(
            FieldDef(
                "memory_gb", "GiB", "peak device memory where measured, else peak host RSS",
                scale=1 / GIB, fallback=("peak_host_rss_bytes",), label="peak memory",
                column="memory GiB", compare=True,
                accelerator_fallback=("device_memory_bytes",),
            ),
            FieldDef("device_memory_gb", "GiB", "peak device memory", scale=1 / GIB),
        ),
        gates=(Gate("device_memory", "peak accelerator memory" + _PER_PROCESS_NOTE, "value"),),
    ),
    Metric(
        "device_memory_bytes", "compiled device memory", "bytes", "lower",
        "XLA memory analysis of the compiled step: arguments + outputs - aliased + temporaries "
        "+ generated code, per device", "process",
        fields=(
            FieldDef(
                "compiled_memory_gb", "GiB", "device memory of the compiled step (XLA analysis)",
                scale=1 / GIB,
            ),
        ),
    ),
    Metric(
        "cost_per_million_examples_usd", "cost / 1M examples", "USD/1M examples", "lower",
        "price per device-hour x devices over the examples processed in that hour", "cell",
        derived=Derived(
            ("examples_per_s", "price_per_hour_usd"),
            "devices x USD/h / 3600 / examples_per_s x 1e6", throughput_power=-1,
        ),
        fields=(
            FieldDef(
                "cost_usd_per_million", "USD", "cost per million examples (generate cells: per "
                "million output tokens)", column="USD / 1M", compare=True, noise="step",
                by_workload=(("generate", "cost_usd_per_million_output_tokens"),),
                objective=Goal("cost", "cost", "USD per 1M examples", partner="examples_per_s"),
            ),
        ),
    ),
    Metric(
        "energy_per_example_j", "energy / 1M examples", "J/example", "lower",
        "energy counters over the timed phase / examples in it", "cell",
        derived=Derived(("energy_j",), "energy_j / examples of the timed phase"),
        fields=(
            FieldDef(
                "energy_kwh_per_million", "kWh", "energy per million examples",
                scale=1e6 / 3.6e6, column="kWh / 1M", compare=True,  # J/example -> kWh / 1M
                objective=Goal("energy", "energy", "kWh per 1M examples", partner="examples_per_s"),
            ),
        ),
    ),
    Metric(
        "mfu", "MFU", "fraction", "higher", "achieved FLOP/s over the devices' peak", "cell",
        derived=Derived(
            ("flops_per_example", "examples_per_s", "peak_flops_per_s"),
            "analytic FLOPs/example x examples/s / (devices x peak FLOP/s)", throughput_power=1,
        ),
        fields=(
            FieldDef(
                "mfu_pct", "%", "model FLOPs utilisation", scale=100.0, column="MFU %",
                compare=True, noise="rate",
            ),
        ),
    ),
    Metric(
        "param_count", "parameters", "parameters", "none", "trainable parameters", "cell",
        fields=(FieldDef("params", "parameters", "trainable parameters"),),
    ),
    Metric(
        "model_file_bytes", "model file", "bytes", "lower",
        "size of the converted model file the runtime loads (LiteRT: the .tflite flatbuffer, "
        "kept in the run folder)", "cell",
        fields=(
            FieldDef("model_file_mb", "MB", "size of the converted model file (LiteRT cells)",
                     scale=1e-6, column="file MB", compare=True, terminal=True),
        ),
        applies="framework: litert cells",
    ),
    Metric(
        "compile_count", "compiles while timed", "compilations", "lower",
        "the framework's compile count at the end minus the start of the timed phase (JAX: XLA "
        "compiles in the worker; TF: traces of the step's tf.function); above 0 makes the cell "
        "invalid", "process",
        fields=(FieldDef("compiles", "compilations", "compilations during the timed phase"),),
    ),
    Metric(
        "traced_busy_share", "busy share (traced)", "fraction", "higher",
        "union of op intervals on the device (CPU: its compute threads) over the wall time of "
        "the steps traced after the timed phase (docs/profiling.md)", "process",
        fields=(
            FieldDef(
                "busy_pct", "%", "share of traced wall time the device ran ops (profiled cells)",
                scale=100.0,
            ),
        ),
        applies="cells run with measure.profile",
    ),
    Metric(
        "tokens_per_s", "tokens/s", "tokens/s", "higher",
        "batch_size x tokens per example / median step time (sequence models)", "cell",
        derived=Derived(
            ("examples_per_s",), "examples_per_s x tokens per example", throughput_power=1
        ),
        fields=(
            FieldDef(
                "tokens_per_s", "tokens/s",
                "tokens per second: batch x tokens per example / median step time (sequence "
                "models; bench tune --objective tokens_per_s)", noise="rate",
            ),
        ),
    ),
    Metric(
        "examples_per_usd", "examples / USD", "examples/USD", "higher",
        "examples processed per dollar of device time", "cell",
        derived=Derived(
            ("examples_per_s", "price_per_hour_usd"),
            "examples_per_s / (devices x USD/h / 3600)", throughput_power=1,
        ),
    ),
    Metric(
        "energy_j", "energy", "J", "lower",
        "energy counters (NVML total energy, RAPL) over the timed phase", "process",
    ),
    Metric(
        "examples_per_j", "examples / J", "examples/J", "higher",
        "examples of the timed phase / energy_j", "cell",
        derived=Derived(("energy_j",), "examples of the timed phase / energy_j"),
    ),
    Metric(
        "others_cpu_share", "others' CPU share", "fraction", "none",
        "share of all CPUs' time other processes used during the timed phase", "process",
    ),
    Metric(
        "machine_matmul_s", "machine before the cell", "s", "none",
        "median time of the reference matmul, timed by the runner just before the process got "
        "the cell (bench.measure.reference.cell_kernel)", "process",
    ),
    Metric(
        "flops_per_example", "FLOPs / example", "FLOP/example", "none",
        "the model's analytic formula", "cell",
    ),
    Metric(
        "peak_flops_per_s", "peak FLOP/s", "FLOP/s", "none",
        "datasheet peak of the device, or a calibration matmul on CPUs", "cell",
    ),
    Metric(
        "price_per_hour_usd", "price", "USD/h", "none",
        "dated list price per device-hour (bench/data/prices.yaml) or an override", "cell",
    ),
    Metric(
        "scaling_efficiency", "scaling efficiency", "fraction", "higher",
        "throughput on N replicas / (N x throughput of the same cell on 1 replica)", "run",
        derived=Derived(
            ("examples_per_s",),
            "examples_per_s(N replicas) / (N x examples_per_s(1 replica)), same run",
        ),
        fields=(
            FieldDef(
                "scaling_efficiency", "fraction",
                "strong scaling: vs 1 replica on the same global batch (multi-replica cells)",
                "strong", label="scaling (same global batch)",
                column="scaling (same global batch)", compare=True, terminal=True,
            ),
            FieldDef(
                "weak_scaling_efficiency", "fraction",
                "weak scaling: vs 1 replica on this cell's per-device batch",
                "weak", label="scaling (same per-device batch)",
                column="scaling (same per-device batch)", compare=True, terminal=True,
            ),
        ),
        applies="cells on more than one replica whose 1-replica reference is in the same run",
    ),
    # Online serving (workload: serve): the reported rate's numbers (the max compliant rate
    # under target_qps: search, else the one rate offered); every probed rate is in the
    # record's ``serve.probes``. Throughput and cost of a serve cell are at that rate, a
    # request being one example: cost_usd_per_million is USD per million requests.
    Metric(
        "request_latency_s", "request latency", "s", "lower",
        "scheduled arrival to result on the host, nearest-rank percentiles", "cell",
        fields=(
            FieldDef("latency_p50_ms", "ms", "median request latency (serve)", "p50", 1e3),
            FieldDef("latency_p90_ms", "ms", "90th percentile request latency (serve)", "p90", 1e3),
            FieldDef("latency_p95_ms", "ms", "95th percentile request latency (serve)", "p95", 1e3),
            FieldDef(
                "latency_p99_ms", "ms", "99th percentile request latency (serve)", "p99", 1e3,
                label="p99 request latency", column="req p99 ms", compare=True,
            ),
            FieldDef(
                "latency_p99_9_ms", "ms", "99.9th percentile request latency (serve)", "p99_9",
                1e3,
            ),
        ),
        applies="workload: serve and generate cells",
    ),
    Metric(
        "max_compliant_qps", "max QPS under the SLO", "requests/s", "higher",
        "highest offered rate measured to meet the SLO (target_qps: search)", "cell",
        fields=(
            FieldDef(
                "max_qps", "requests/s", "highest request rate meeting the SLO (serve, search)",
                column="max QPS", compare=True, terminal=True,
                objective=Goal("serve_rate", "max QPS under the SLO", "requests/s",
                               partner="latency_p99_ms"),
            ),
        ),
        applies="workload: serve and generate cells with target_qps: search",
    ),
    Metric(
        "realised_batch_size", "realised batch size", "requests", "none",
        "mean requests per batch the dynamic batcher formed", "cell",
        fields=(
            FieldDef("mean_batch", "requests", "mean realised batch size (serve)",
                     column="mean batch", compare=True),
            FieldDef("padding_waste", "fraction", "share of bucket rows that were padding (serve)",
                     "padding_waste"),
        ),
        applies="workload: serve cells with batching",
    ),
    Metric(
        "queue_time_s", "queueing time", "s", "lower",
        "scheduled arrival to the start of the request's batch, mean", "cell",
        fields=(FieldDef("queue_ms", "ms", "mean queueing time per request (serve)", "mean", 1e3,
                         column="queue ms", compare=True),),
        applies="workload: serve cells with batching",
    ),
    Metric(
        "compute_time_s", "compute time", "s", "lower",
        "start of the request's batch to its results on the host, mean", "cell",
        fields=(FieldDef("compute_ms", "ms", "mean compute time per request (serve)", "mean",
                         1e3, column="compute ms", compare=True),),
        applies="workload: serve cells with batching",
    ),
    Metric(
        "late_requests", "late requests", "fraction", "lower",
        "share of requests over the SLO latency", "cell",
        fields=(FieldDef("late_pct", "%", "requests over the SLO latency (serve)", scale=100.0),),
        applies="workload: serve cells",
    ),
    Metric(
        "dropped_requests", "dropped requests", "requests", "lower",
        "requests not answered by the end of the load plus the drain time", "cell",
        fields=(FieldDef("dropped", "requests", "unanswered requests (serve)"),),
        applies="workload: serve cells",
    ),
    Metric(
        "issue_lateness_s", "generator lateness", "s", "lower",
        "when the load generator handed a request over minus when it was due", "cell",
        fields=(FieldDef("lateness_p99_ms", "ms", "load generator's issue lateness, p99 (serve)",
                         "p99", 1e3),),
        applies="workload: serve cells",
    ),
    # Prediction parity (bench.measure.parity): a predict cell's outputs on the run's fixed
    # evaluation set against the float32 CPU reference, same weights (bench.backends.parity).
    Metric(
        "parity_max_abs", "parity: max abs diff", "abs difference", "lower",
        "max |prediction - float32 CPU reference| over the evaluation set's outputs", "cell",
        fields=(FieldDef("parity_max_abs", "abs difference",
                         "largest |output - float32 CPU reference| on the evaluation set",
                         label="parity max |diff|", column="max |diff|", compare=True),),
        applies="predict cells",
    ),
    Metric(
        "parity_mean_abs", "parity: mean abs diff", "abs difference", "lower",
        "mean |prediction - float32 CPU reference| over the evaluation set's outputs", "cell",
        fields=(FieldDef("parity_mean_abs", "abs difference",
                         "mean |output - float32 CPU reference| on the evaluation set",
                         label="parity mean |diff|", compare=True),),
        applies="predict cells",
    ),
    Metric(
        "top1_agreement", "top-1 agreement", "fraction", "higher",
        "share of evaluation examples whose arg-max class is the float32 CPU reference's", "cell",
        fields=(FieldDef("top1_agreement", "fraction",
                         "share of evaluation examples predicted the reference's top-1 class",
                         column="top-1 agree", compare=True, terminal=True),),
        applies="predict cells of classification models",
    ),
    # Endpoint cells (workload: serve with an endpoint): a model server driven over the
    # network (bench.workloads.serve.cell.endpoint). Failed requests count as infinitely late in the
    # latency percentiles; their share is its own metric.
    Metric(
        "error_rate", "request errors", "fraction", "lower",
        "share of requests that failed (HTTP or gRPC error, refused, timed out, malformed body)",
        "cell",
        fields=(FieldDef("error_pct", "%", "requests that failed (serve endpoint)", scale=100.0,
                         column="errors %", compare=True),),
        applies="workload: serve cells with an endpoint",
    ),
    Metric(
        "round_trip_s", "round trip", "s", "lower",
        "request sent to its answer read on this host, mean (server + network)", "cell",
        fields=(FieldDef("round_trip_ms", "ms", "mean round trip per request (serve endpoint)",
                         "mean", 1e3, column="round trip ms", compare=True),),
        applies="workload: serve cells with an endpoint",
    ),
    Metric(
        "client_wait_s", "client wait", "s", "lower",
        "handed over by the generator to sent: waiting for a free sender of max_in_flight",
        "cell",
        fields=(FieldDef("client_wait_p99_ms", "ms",
                         "wait for a free sender, p99 (serve endpoint; client saturation)",
                         "p99", 1e3),),
        applies="workload: serve cells with an endpoint",
    ),
    Metric(
        "server_overhead_s", "server overhead", "s", "lower",
        "endpoint cell's latency at the SLO percentile minus the in-process cell's of the same "
        "model, framework, device, precision and batching, at the same offered rate", "run",
        fields=(FieldDef("server_overhead_ms", "ms",
                         "endpoint minus in-process latency at the SLO percentile, same rate "
                         "(serve endpoint)", scale=1e3, column="overhead ms", compare=True),),
        applies="workload: serve cells with an endpoint and an in-process twin in the run",
    ),
):  # fmt: skip
    register(_metric)

# Text generation (workload: generate, bench.workloads.generate): the reported load's numbers
# (the highest compliant rate under target_qps: search, else the one load). Percentiles are
# nearest-rank over every request, a failed one counting as infinitely late; end-to-end latency
# is ``request_latency_s`` and the searched rate ``max_compliant_qps``, as for serve cells.
_GENERATE = "workload: generate cells"
for _metric in (
    Metric(
        "ttft_s", "time to first token", "s", "lower",
        "scheduled arrival to the first output token on the host, nearest-rank percentiles",
        "cell",
        fields=(
            FieldDef("ttft_p50_ms", "ms", "median time to first token (generate)", "p50", 1e3,
                     column="TTFT p50 ms"),
            FieldDef("ttft_p90_ms", "ms", "90th percentile time to first token (generate)",
                     "p90", 1e3),
            FieldDef("ttft_p99_ms", "ms", "99th percentile time to first token (generate)",
                     "p99", 1e3, label="TTFT p99", column="TTFT p99 ms", compare=True,
                     terminal=True),
        ),
        gates=(Gate("ttft", "time to first token of each request (generate)", sample="ttft_s"),),
        applies=_GENERATE,
    ),
    Metric(
        "tpot_s", "time per output token", "s", "lower",
        "per request: (last token - first token) / (output tokens - 1), nearest-rank percentiles",
        "cell",
        fields=(
            FieldDef("tpot_p50_ms", "ms", "median time per output token (generate)", "p50", 1e3,
                     column="TPOT p50 ms"),
            FieldDef("tpot_p90_ms", "ms", "90th percentile time per output token (generate)",
                     "p90", 1e3),
            FieldDef("tpot_p99_ms", "ms", "99th percentile time per output token (generate)",
                     "p99", 1e3, label="TPOT p99", column="TPOT p99 ms", compare=True,
                     terminal=True),
        ),
        gates=(Gate("tpot", "time per output token of each request (generate)", sample="tpot_s"),),
        applies=_GENERATE,
    ),
    Metric(
        "server_ttft_overhead_s", "server TTFT overhead", "s", "lower",
        "generate endpoint cell's median TTFT minus its in-process twin's, at the same offered "
        "rate (the server's HTTP stack, streaming and network path)", "run",
        fields=(FieldDef("server_ttft_overhead_ms", "ms",
                         "endpoint minus in-process median TTFT, same rate (generate endpoint)",
                         scale=1e3, column="TTFT overhead ms", compare=True),),
        applies="workload: generate cells with an endpoint and an in-process twin in the run",
    ),
    Metric(
        "server_tpot_overhead_s", "server TPOT overhead", "s", "lower",
        "generate endpoint cell's median TPOT minus its in-process twin's, at the same offered "
        "rate", "run",
        fields=(FieldDef("server_tpot_overhead_ms", "ms",
                         "endpoint minus in-process median TPOT, same rate (generate endpoint)",
                         scale=1e3, column="TPOT overhead ms", compare=True),),
        applies="workload: generate cells with an endpoint and an in-process twin in the run",
    ),
    Metric(
        "inter_token_s", "inter-token latency", "s", "lower",
        "every gap between consecutive output tokens of every request, pooled", "cell",
        fields=(
            FieldDef("itl_p50_ms", "ms", "median inter-token latency (generate)", "p50", 1e3),
            FieldDef("itl_p99_ms", "ms", "99th percentile inter-token latency (generate)", "p99",
                     1e3),
        ),
        applies=_GENERATE,
    ),
    Metric(
        "output_tokens_per_s", "output tokens/s", "tokens/s", "higher",
        "output tokens of the load / its duration (first arrival to last token)", "cell",
        fields=(
            FieldDef("output_tokens_per_s", "tokens/s", "output tokens per second (generate)",
                     column="out tok/s", compare=True, terminal=True,
                     objective=Goal("tokens_per_s", "output tokens/s", "tokens/s",
                                    partner="ttft_p99_ms")),
        ),
        gates=(Gate("tokens_per_s", "active rows / decode step time, per step (generate)",
                    sample="decode_tokens_per_s"),),
        applies=_GENERATE,
    ),
    Metric(
        "total_tokens_per_s", "total tokens/s", "tokens/s", "higher",
        "prompt and output tokens of the load / its duration", "cell",
        fields=(FieldDef("total_tokens_per_s", "tokens/s",
                         "prompt plus output tokens per second (generate)"),),
        applies=_GENERATE,
    ),
    Metric(
        "goodput_rps", "goodput", "requests/s", "higher",
        "requests meeting every stated limit of the slo / the load's duration", "cell",
        fields=(
            FieldDef("goodput_rps", "requests/s", "requests/s meeting every slo limit (generate)",
                     column="goodput rps", compare=True),
            FieldDef("goodput_pct", "%", "share of requests meeting every slo limit (generate)",
                     "fraction", 100.0),
        ),
        applies=_GENERATE,
    ),
    Metric(
        "prefill_tokens_per_s", "prefill tokens/s", "tokens/s", "higher",
        "prompt tokens / time in prefill calls (host to host)", "cell",
        fields=(FieldDef("prefill_tokens_per_s", "tokens/s", "prefill throughput (generate)",
                         compare=True),),
        applies="workload: generate cells in process",
    ),
    Metric(
        "decode_step_s", "decode step", "s", "lower",
        "median host-to-host time of one decode step of every slot; by active rows in "
        "``by_active``", "cell",
        fields=(FieldDef("decode_step_ms", "ms", "median decode step (generate)", "value", 1e3,
                         column="decode ms", compare=True),),
        applies="workload: generate cells in process",
    ),
    Metric(
        "kv_cache_bytes", "KV cache", "bytes", "none",
        "analytic: layers x 2 (keys, values) x slots x cache_len x d_model x bytes per element",
        "cell",
        fields=(FieldDef("kv_cache_mib", "MiB", "KV cache size (generate)", scale=1 / 2**20),),
        applies="workload: generate cells in process",
    ),
    Metric(
        "decode_bandwidth_util", "decode bandwidth utilisation", "fraction", "higher",
        "(weight bytes + KV cache bytes) read per decode step / step time / the device's peak "
        "memory bandwidth", "cell",
        fields=(FieldDef("decode_bw_pct", "%", "decode step's memory-bandwidth utilisation "
                         "(generate)", scale=100.0, column="decode BW %", compare=True),),
        applies="workload: generate cells in process on a device with a known bandwidth",
    ),
    Metric(
        "decode_mfu", "decode MFU", "fraction", "higher",
        "analytic decode FLOPs of the active rows per step / step time / the devices' peak",
        "cell",
        fields=(FieldDef("decode_mfu_pct", "%", "decode step's model FLOPs utilisation "
                         "(generate)", scale=100.0),),
        applies="workload: generate cells in process",
    ),
    Metric(
        "cost_usd_per_million_output_tokens", "cost / 1M output tokens", "USD/1M output tokens",
        "lower",
        "device price per hour / 3600 / output tokens per second x 1e6", "cell",
        applies=_GENERATE,
    ),
):  # fmt: skip
    register(_metric)

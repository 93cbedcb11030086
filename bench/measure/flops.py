"""Peak FLOP/s per device and model FLOPs utilisation (MFU).

MFU = achieved FLOP/s / peak FLOP/s, where achieved = analytic FLOPs per example (declared by
the model) x examples/s. The peak comes from a vendor-datasheet table shipped as data
(``bench/data/peaks.yaml``, dense figures, one source per entry) or, on CPUs, from a calibration
matmul measured on the host, because no datasheet number is achievable on a shared VM CPU.
MFU above 1.0 is impossible for a correct measurement: ``mfu`` flags it and the caller marks the
cell invalid.

The peak is the one of the precision matmuls actually ran at, which is not always the cell's
``precision``: on NVIDIA GPUs of compute capability 8.0 and later (Ampere, Hopper, Blackwell)
JAX and TensorFlow run float32 matmuls as TF32 on the tensor cores by default, and against the
FP32 peak such a cell would show MFU far above 1 (an H200 ran float32 matmuls at ~360 TFLOP/s;
its FP32 peak is 67). ``matmul_precision`` decides it from what the backend reports
(``matmul_settings`` of each backend); ``mfu_peak`` looks that precision up.

XLA's own count (``xla_cost_flops``) is a cross-check only: on GPU it misses library calls such
as cuDNN convolutions and cuBLAS custom calls, so it under-counts.

Nothing here imports a framework: JAX objects are used duck-typed.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

import yaml

from bench.metrics import metric, unavailable, value_of

# Precision names accepted from scenarios, Keras policies and frameworks -> table column.
_PRECISION_ALIASES = {
    "float32": "float32",
    "fp32": "float32",
    "f32": "float32",
    "tf32": "tf32",
    "tensorfloat32": "tf32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "mixed_bfloat16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "f16": "float16",
    "half": "float16",
    "mixed_float16": "float16",
}

# Host CPUs have no table entry: their peak is calibrated (see calibrate_cpu_peak).
_CPU_NAME = re.compile(
    r"(?<![a-z])cpu(?![a-z])|xeon|epyc|ryzen|core\(tm\)|neoverse|graviton|ampere", re.I
)


@functools.cache
def load_peaks() -> dict[str, Any]:
    """The shipped peak table (parsed once per process)."""
    text = resources.files("bench").joinpath("data/peaks.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def normalize_precision(precision: str) -> str:
    return _PRECISION_ALIASES.get(precision.strip().lower(), precision.strip().lower())


def find_entry(device_name: str, table: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The first table entry whose ``match`` patterns hit the device name (case-insensitive)."""
    table = load_peaks() if table is None else table
    for entry in table.get("devices", []):
        if any(re.search(p, device_name, re.I) for p in entry.get("match", [])):
            return entry
    return None


def device_key(device_name: str, table: Mapping[str, Any] | None = None) -> str | None:
    """Stable key for a device name ("NVIDIA H100 80GB HBM3" -> "h100-sxm"); "cpu" for host CPUs.

    Prices (cost.py) are keyed the same way, so one name normalisation serves both tables.
    """
    entry = find_entry(device_name, table)
    if entry is not None:
        return str(entry["key"])
    return "cpu" if _CPU_NAME.search(device_name) else None


def peak_flops(
    device_name: str, precision: str, table: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Datasheet peak FLOP/s of ONE framework device at a precision, or ``unavailable`` and why.

    float32 on GPUs is the non-tensor-core FP32 peak; ask for "tf32" when float32 matmuls ran as
    TF32 (JAX's and TensorFlow's default on Ampere and later).
    """
    column = normalize_precision(precision)
    entry = find_entry(device_name, table)
    if entry is None:
        if _CPU_NAME.search(device_name):
            return unavailable(
                f"no datasheet peak for CPU {device_name!r}: use calibrate_cpu_peak", "FLOP/s"
            )
        return unavailable(f"no peak-table entry matches device {device_name!r}", "FLOP/s")
    tflops = entry.get("tflops", {})
    if column not in tflops:
        return unavailable(
            f"peak table has no {column!r} figure for {entry['name']} "
            f"(has: {', '.join(sorted(tflops))})",
            "FLOP/s",
        )
    if tflops[column] is None:
        note = entry.get("note", "no such hardware path")
        return unavailable(f"{entry['name']} has no {column} peak: {note}", "FLOP/s")
    per_chip = float(tflops[column]) * 1e12
    per_device = per_chip / int(entry.get("devices_per_chip", 1))
    split = (
        f", / {entry['devices_per_chip']} devices per chip" if "devices_per_chip" in entry else ""
    )
    return metric(
        per_device,
        "FLOP/s",
        f"datasheet dense peak, {entry['name']}, {column}{split}: {entry['source']}",
        device_key=entry["key"],
        precision=column,
    )


def peak_bandwidth(device_name: str, table: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Datasheet peak memory bandwidth (bytes/s) of ONE framework device, or why not."""
    entry = find_entry(device_name, table)
    if entry is None:
        return unavailable(f"no datasheet memory bandwidth for device {device_name!r}", "B/s")
    gbps = entry.get("memory_gbps")
    if gbps is None:
        return unavailable(f"no memory bandwidth in the table for {entry['name']}", "B/s")
    per_device = float(gbps) * 1e9 / int(entry.get("devices_per_chip", 1))
    return metric(
        per_device,
        "B/s",
        f"datasheet peak memory bandwidth, {entry['name']}",
        device_key=entry["key"],
    )


TF32_MIN_COMPUTE_CAPABILITY = 8.0  # Ampere: the first NVIDIA tensor cores with TF32


def _capability(value: Any) -> float | None:
    """8.0 from "8.0", (8, 0), [8, 0] or 8.0; None when absent or unreadable."""
    if isinstance(value, list | tuple) and len(value) == 2:
        value = f"{value[0]}.{value[1]}"
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def matmul_precision(
    precision: str,
    device: str,
    settings: Mapping[str, Any] | None,
    device_name: str = "",
    table: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The precision a cell's matmuls ran at (a metric whose value is a peak-table column).

    ``precision`` is the cell's axis value, ``device`` its kind (cpu, gpu, tpu), ``settings``
    what the backend reports (``Backend.matmul_settings``): ``tf32_allowed`` (whether the
    framework's setting lets float32 matmuls run as TF32; None when it cannot tell),
    ``setting`` (that setting, for people), on GPUs ``compute_capability``, and
    ``nvidia_tf32_override`` (the NVIDIA_TF32_OVERRIDE variable, which turns TF32 off in
    cuBLAS and cuDNN when "0"). Only float32 on a GPU can differ from the axis: bf16 and fp16
    cells run their matmuls in those types, CPUs have no TF32, and on TPUs the peak table maps
    float32 to the bf16 peak.
    """
    column = normalize_precision(precision)
    settings = settings or {}
    if column != "float32" or device != "gpu":
        why = "the cell's precision" if column != "float32" else f"float32 on {device}"
        return metric(column, "precision", f"{why}: matmuls run at it")
    if str(settings.get("nvidia_tf32_override", "")).strip() == "0":
        return metric("float32", "precision", "NVIDIA_TF32_OVERRIDE=0 turns TF32 off")
    cc = _capability(settings.get("compute_capability"))
    if cc is None:
        entry = find_entry(device_name, table) if device_name else None
        tf32_hw = bool(entry and (entry.get("tflops") or {}).get("tf32"))
        hardware = f"compute capability unknown; peak table: {'has' if tf32_hw else 'no'} TF32"
    else:
        tf32_hw = cc >= TF32_MIN_COMPUTE_CAPABILITY
        hardware = f"compute capability {cc:g}"
    if not tf32_hw:
        return metric("float32", "precision", f"float32 on a GPU without TF32 ({hardware})")
    allowed = settings.get("tf32_allowed")
    shown = str(settings.get("setting") or "the backend reports no TF32 setting")
    if allowed is None:
        return metric("float32", "precision", f"{shown}: not a known setting, taken as float32")
    if allowed:
        return metric("tf32", "precision", f"{shown}: float32 matmuls run as TF32 ({hardware})")
    return metric("float32", "precision", f"{shown}: full float32 ({hardware})")


def mfu_peak(
    device_name: str,
    in_effect: Mapping[str, Any],
    table: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The datasheet peak of the matmul precision in effect (``matmul_precision``'s metric)."""
    column = str(in_effect.get("value", "float32"))
    found = peak_flops(device_name, column, table)
    if "method" in found:
        found["method"] += f"; matmul precision in effect: {column} ({in_effect.get('method')})"
    return found


def calibrate_cpu_peak(
    dtype: str = "float32",
    matmul: Callable[[], object] | None = None,
    *,
    n: int = 2048,
    repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Achievable CPU peak: the best of ``repeats`` timed n x n x n matmuls (2 n^3 FLOPs each).

    A datasheet peak (cores x clock x SIMD width) is neither published for cloud vCPUs nor
    reachable, so MFU on CPU is measured against what a tuned BLAS matmul actually attains.
    ``matmul`` runs ONE n x n x n product and returns when it is done; pass a framework matmul
    (e.g. a jitted bfloat16 jnp.dot with block_until_ready) to calibrate other dtypes. Without
    it numpy's float32 BLAS is used, which has no bfloat16.
    """
    column = normalize_precision(dtype)
    if matmul is None:
        if column != "float32":
            return unavailable(
                f"numpy has no {column} matmul: pass a framework matmul to calibrate it", "FLOP/s"
            )
        import numpy as np

        rng = np.random.default_rng(0)
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)

        def matmul() -> object:
            return a @ b

        how = "numpy float32 matmul"
    else:
        how = f"injected {column} matmul"
    matmul()  # warm-up: first-call costs (BLAS thread pool start, page faults) are not peak
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = clock()
        matmul()
        best = min(best, clock() - start)
    if best <= 0:
        return unavailable("calibration matmul took no measurable time", "FLOP/s")
    return metric(
        2.0 * n**3 / best,
        "FLOP/s",
        f"measured calibration matmul: {how}, {n}x{n}x{n}, best of {max(1, repeats)}",
        precision=column,
    )


def mfu(
    flops_per_example: float | None,
    examples_per_s: float | None,
    peak: Mapping[str, Any] | float | None,
    n_devices: int = 1,
) -> dict[str, Any]:
    """MFU as a fraction of the peak of ``n_devices`` devices; ``exceeds_peak`` flags MFU > 1.

    ``peak`` is a peak metric (from ``peak_flops`` or ``calibrate_cpu_peak``) or FLOP/s of one
    device. An MFU above 1 means the FLOP count is overstated, the peak is the wrong one (float32
    matmuls run as TF32 on GPU), or timing missed device work: the caller marks the cell invalid.
    """
    if isinstance(peak, Mapping):
        if "unavailable" in peak:
            return unavailable(f"no peak FLOP/s: {peak['unavailable']}", "fraction")
        peak_value, peak_method = value_of(peak), str(peak.get("method", ""))
    else:
        peak_value, peak_method = peak, "given"
    if not flops_per_example:
        return unavailable("model declares no analytic FLOPs per example", "fraction")
    if not examples_per_s:
        return unavailable("no throughput measured", "fraction")
    if not peak_value or peak_value <= 0:
        return unavailable("peak FLOP/s is missing or not positive", "fraction")
    achieved = flops_per_example * examples_per_s
    total_peak = peak_value * n_devices
    value = achieved / total_peak
    result = metric(
        value,
        "fraction",
        f"analytic FLOPs/example x examples/s / ({n_devices} x peak); peak: {peak_method}",
        achieved_flops_per_s=achieved,
        peak_flops_per_s=total_peak,
        exceeds_peak=value > 1.0,
    )
    if value > 1.0:
        result["invalid_reason"] = (
            f"MFU {value:.2f} > 1: FLOPs per example overstated, wrong peak (float32 run as "
            "TF32?), or step timing missed device work"
        )
    return result


def xla_cost_flops(compiled: Any) -> float | None:
    """FLOPs XLA's cost analysis reports for a compiled computation, or None when it has none.

    ``cost_analysis()`` returns a dict in recent JAX and a one-element list of dicts in older
    releases, may be None, and raises on some backends; all of those end as None here.
    """
    try:
        analysis = compiled.cost_analysis()
    except Exception:
        return None
    if isinstance(analysis, list | tuple):
        analysis = next((a for a in analysis if isinstance(a, Mapping) and "flops" in a), None)
    if not isinstance(analysis, Mapping):
        return None
    flops = analysis.get("flops")
    if not isinstance(flops, int | float) or flops < 0:
        return None
    return float(flops)

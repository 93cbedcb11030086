"""A memory probe: compile one cell and read its compiled program's memory, running no step.

``bench tune`` asks before it measures (``bench.tune.memory``): a cell whose compiled program
needs more than the device holds is ruled out for the price of its compile, and never run out
of memory. The need is the backend's ``device_memory_bytes`` (JAX: XLA's memory analysis);
a backend that has none (TensorFlow) answers None, with the reason. The limit is the device's
``bytes_limit`` where the framework reports one (GPU, TPU), else, on a CPU, the memory the host
has available now.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.metrics import value_of
from bench.workloads.cell.context import CellContext
from bench.workloads.cell.message import CellMessage, as_message


def host_available() -> float | None:
    """MemAvailable of /proc/meminfo in bytes, None where unreadable."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def device_limit(workload: Any, device: str) -> float | None:
    if device == "cpu":
        return host_available()
    for dev in getattr(workload, "local_devices", None) or []:
        stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
        if stats and "bytes_limit" in stats:
            return float(stats["bytes_limit"])
    return None


def probe_cell(backend: Any, msg: CellMessage | Mapping[str, Any]) -> dict[str, Any]:
    """``{"needed": bytes | None, "limit": bytes | None, "compile_s", "cached", "reason"}``;
    ``cached``: the program came from the tune's compilation cache, so no compile was timed."""
    msg = as_message(msg)
    ctx = CellContext.open(msg)
    started = time.perf_counter()
    workload = backend.build(ctx.req)
    compile_s = time.perf_counter() - started
    try:
        entry = (workload.memory() or {}).get("device_memory_bytes")
    finally:
        if workload.batches is not None:
            workload.batches.close()
    needed = value_of(entry)
    reason = "" if needed is not None else str((entry or {}).get("unavailable") or "no analysis")
    limit = device_limit(workload, str(msg.key.get("device")))
    cached = bool(getattr(workload, "compile_cached", False))
    return {
        "needed": needed, "limit": limit, "compile_s": compile_s, "cached": cached,
        "reason": reason,
    }  # fmt: skip

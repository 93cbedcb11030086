"""The reference kernel: a fixed numpy workload timed at the start and at the end of every run.

A gate that compares today's candidate with last week's baseline must tell a slower program
from a slower machine: another tenant on a shared CI runner, a throttled CPU, a different
instance type behind the same CPU name. The same fixed work, timed beside every run, measures
the machine itself; the gate reads it (``bench.gate.fingerprint.machine_check``) and calls the
machine UNSTABLE when it got slower or noisier.

Two kernels, because a machine slows down in two ways:

- ``matmul_s``: 100 products of two 64x64 float64 matrices (26 MFLOP). Products this small stay
  on one thread in OpenBLAS and MKL, so the number measures one core, not how the BLAS library
  happened to split the work across busy cores (a 256x256 product varied 30x on a loaded
  2-core VM; this one stays within a few percent).
- ``copy_s``: a copy of 64 MiB of float64, beyond the last-level cache of common CI machines,
  so it measures memory bandwidth (STREAM's "copy").

Each kernel runs once untimed (first touch of the pages, BLAS set-up), then ``SAMPLES`` timed
times. Pure numpy: the runner calls it, and the runner never imports a framework. About 0.25 s
per call on a busy 2-core VM (0.8 s at worst when other processes held both cores); see
``wall_s`` in each entry. Twenty timings per kernel leave 20 per side for the start-to-end
comparison within one run, twice the gate's minimum of 10.

The kernel samples the machine at two moments only. What slows cells down in between is, on
shared machines, mostly other processes taking CPU time (on a 2-core VM, a neighbour using one
core made MLP steps 1.5x slower while the kernel saw nothing). So the runner also counts, over
the whole run, the CPU time the machine spent on anything but this run (``others_cpu``).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Bump when the workload changes: timings of different workloads cannot be compared.
VERSION = 1
SAMPLES = 20
MATMUL_N = 64
MATMUL_REPEATS = 100
COPY_BYTES = 64 * 2**20
KERNELS = ("matmul_s", "copy_s")
METHOD = (
    f"numpy, perf_counter around each call after one untimed call, {SAMPLES} calls per kernel: "
    f"matmul_s = {MATMUL_REPEATS} products of {MATMUL_N}x{MATMUL_N} float64 matrices "
    f"(single-threaded in BLAS), copy_s = np.copyto of {COPY_BYTES // 2**20} MiB of float64"
)


def _timed(fn: Callable[[], object], samples: int, clock: Callable[[], float]) -> list[float]:
    fn()  # untimed: page faults and library set-up are not the machine's speed
    times = []
    for _ in range(samples):
        start = clock()
        fn()
        times.append(clock() - start)
    return times


def run_reference_kernel(
    samples: int = SAMPLES, clock: Callable[[], float] = time.perf_counter
) -> dict[str, Any]:
    """Time both kernels; returns ``{"matmul_s": [...], "copy_s": [...], "wall_s": ...}``."""
    began = clock()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((MATMUL_N, MATMUL_N))
    b = rng.standard_normal((MATMUL_N, MATMUL_N))
    src = np.ones(COPY_BYTES // 8, dtype=np.float64)
    dst = np.empty_like(src)

    def matmul() -> None:
        for _ in range(MATMUL_REPEATS):
            np.matmul(a, b)

    def copy() -> None:
        np.copyto(dst, src)

    found: dict[str, Any] = {
        "matmul_s": _timed(matmul, samples, clock),
        "copy_s": _timed(copy, samples, clock),
    }
    found["wall_s"] = clock() - began
    return found


CELL_SAMPLES = 10
CELL_METHOD = (
    f"median of {CELL_SAMPLES} timings of the reference matmul ({MATMUL_REPEATS} products of "
    f"{MATMUL_N}x{MATMUL_N} float64 matrices) after one untimed call, timed by the runner just "
    "before it sent the cell to its worker process"
)


def cell_kernel(
    samples: int = CELL_SAMPLES, clock: Callable[[], float] = time.perf_counter
) -> dict[str, Any]:
    """The machine as one cell met it: the matmul kernel, timed just before the cell starts.

    About 20 ms. The kernels at the start and end of a run say how the machine moved over the
    whole run, but not where each cell fell in it, and on the project's 2-core VM the end
    timing was 1.3-2x the start in almost every run, nothing else running, while the cells of
    a run and of its rerun agreed. Read per cell and compared like for like (the same cell in
    baseline and candidate), the machine's own slowdown is what that cell met
    (``bench.gate.regression``).
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((MATMUL_N, MATMUL_N))
    b = rng.standard_normal((MATMUL_N, MATMUL_N))

    def matmul() -> None:
        for _ in range(MATMUL_REPEATS):
            np.matmul(a, b)

    times = sorted(_timed(matmul, samples, clock))
    return {
        "value": times[len(times) // 2],
        "unit": "s",
        "method": CELL_METHOD,
        "version": VERSION,
    }


OTHERS_METHOD = (
    "machine-wide busy CPU time from /proc/stat (user, nice, system, irq, softirq and steal, "
    "all CPUs) minus the CPU time of the runner and its workers (getrusage self + children), "
    "over the run's wall-clock time"
)


def cpu_snapshot(proc_stat: Path = Path("/proc/stat")) -> dict[str, float] | None:
    """Busy CPU seconds of the machine and of this process tree, now; None off Linux.

    Steal time counts as busy: it is CPU time the hypervisor gave to other guests while this
    one wanted it. Children count once they have been waited for, as workers are by the end.
    """
    try:
        fields = proc_stat.read_text().split("\n", 1)[0].split()
        ticks = [int(v) for v in fields[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    hz = os.sysconf("SC_CLK_TCK")
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "machine_busy_s": (user + nice + system + irq + softirq + steal) / hz,
        "own_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
        "clock_s": time.monotonic(),
        "cpus": float(os.cpu_count() or 1),
    }


def others_cpu(
    before: dict[str, float] | None, after: dict[str, float] | None
) -> dict[str, Any] | None:
    """How much of the machine other processes used between two snapshots.

    ``others_share`` is the fraction of all CPUs' time (0 to 1); the gate reads it.
    """
    if not before or not after:
        return None
    seconds = after["clock_s"] - before["clock_s"]
    if seconds <= 0:
        return None
    busy = after["machine_busy_s"] - before["machine_busy_s"]
    own = after["own_s"] - before["own_s"]
    cores = max(0.0, busy - own) / seconds  # tick rounding can make it slightly negative
    return {
        "others_cores": round(cores, 3),
        "others_share": round(min(1.0, cores / after["cpus"]), 4),
        "cpus": int(after["cpus"]),
        "seconds": round(seconds, 3),
        "method": OTHERS_METHOD,
    }

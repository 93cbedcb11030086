"""Background telemetry around a cell's timed phase: GPU (NVML), TPU (tpu-info) and host CPU.

Why a thread: the step loop must not pay for telemetry. One tick is a fixed, small set of NVML
queries per GPU plus one read of /proc/stat; samples go into plain lists, and every signal that
fails once is switched off with its reason, so a broken counter costs one exception, not one per
tick. NVML calls release the GIL inside the C library, so the step loop keeps running.

NVML "utilisation" is the share of its last sample period (1/6 s to 1 s by GPU) in which any
kernel ran: 100% does not mean the SMs were full, which is what MFU is for.

Summaries are the spread of sparse samples (mean/min/max). They describe the phase; they are not
a substitute for counters: energy comes from energy.py, never from integrating these powers.

GPU indices are NVML indices (PCI bus order). They match CUDA's only with
CUDA_DEVICE_ORDER=PCI_BUS_ID and no CUDA_VISIBLE_DEVICES remapping.

pynvml (from nvidia-ml-py) and tpu_info are imported lazily, so this module loads without them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.metrics import metric, unavailable

# NVML error codes (nvml.h); read from the module when it has them.
_NVML_ERROR_NOT_SUPPORTED = 3
_NVML_NO_FUNCTION = 13

# nvmlClocksEventReason* bits (nvml.h; the same bits were called ClocksThrottleReason* before).
CLOCK_EVENT_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
# Idle clocks and user-set application clocks lower the clock on purpose: not throttling.
NOT_THROTTLING = 0x1 | 0x2


def open_nvml(nvml: Any | None = None) -> tuple[Any | None, str | None]:
    """Initialise NVML: (module, None) or (None, why not). Pair with ``close_nvml``.

    ``nvml`` is injectable (tests pass a fake module); by default pynvml is imported here.
    """
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return None, "nvidia-ml-py is not installed (no module pynvml)"
    try:
        nvml.nvmlInit()
    except Exception as err:  # NVMLError (no driver, no GPU) or a loader OSError
        return None, f"NVML could not start ({err}): no NVIDIA driver or GPU here"
    return nvml, None


def close_nvml(nvml: Any) -> None:
    with contextlib.suppress(Exception):  # a failed shutdown loses nothing already measured
        nvml.nvmlShutdown()


def nvml_error_code(nvml: Any, err: BaseException) -> int | None:
    return getattr(err, "value", None) if isinstance(err, nvml.NVMLError) else None


def is_not_supported(nvml: Any, err: BaseException) -> bool:
    code = getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", _NVML_ERROR_NOT_SUPPORTED)
    return nvml_error_code(nvml, err) == code


def gpu_name(nvml: Any, handle: Any) -> str:
    try:
        name = nvml.nvmlDeviceGetName(handle)
    except Exception:
        return "unknown GPU"
    return name.decode() if isinstance(name, bytes) else str(name)


def reason_names(mask: int) -> list[str]:
    return [
        CLOCK_EVENT_REASONS.get(1 << bit, f"unknown_0x{1 << bit:x}")
        for bit in range(mask.bit_length())
        if mask >> bit & 1
    ]


def read_cpu_times(proc_stat: str | Path = "/proc/stat") -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from the first line of /proc/stat."""
    with open(proc_stat) as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    # user nice system idle iowait irq softirq steal (guest time is already inside user).
    total = sum(fields)
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return total - idle, total


def tpu_snapshot(module: Any | None = None) -> tuple[dict[str, list[float]] | None, str | None]:
    """Per-chip HBM use and duty cycle from tpu-info: (values, None) or (None, why not).

    tpu-info asks libtpu's metrics server (localhost:8431) over gRPC, so a TPU program must be
    running on this host. Its API is young and has changed; any failure becomes a reason.
    """
    try:
        if module is None:
            import tpu_info.device
            import tpu_info.metrics

            module = tpu_info
        chip_type, count = module.device.get_local_chips()
        if chip_type is None or not count:
            return None, "tpu-info found no TPU chips on this host"
        usages = module.metrics.get_chip_usage(chip_type)
    except ImportError:
        return None, "tpu-info is not installed (pip install tpu-info)"
    except Exception as err:
        return None, (
            f"tpu-info could not read libtpu metrics ({type(err).__name__}: {err}); "
            "is a TPU program running on this host?"
        )
    if not usages:
        return None, "tpu-info returned no per-chip usage"
    return {
        "tpu_hbm_used_bytes": [float(u.memory_usage) for u in usages],
        "tpu_hbm_total_bytes": [float(u.total_memory) for u in usages],
        "tpu_duty_cycle_pct": [float(u.duty_cycle_pct) for u in usages],
    }, None


_TPU_SIGNALS = {
    "tpu_hbm_used_bytes": "bytes",
    "tpu_hbm_total_bytes": "bytes",
    "tpu_duty_cycle_pct": "%",
}


def read_tpu_info(module: Any | None = None) -> dict[str, dict[str, Any]]:
    """One tpu-info snapshot as metrics (pooled over chips), or ``unavailable`` entries."""
    values, reason = tpu_snapshot(module)
    if values is None:
        return {key: unavailable(str(reason), unit) for key, unit in _TPU_SIGNALS.items()}
    return {
        key: _stats(values[key], unit, "tpu-info snapshot, per chip")
        for key, unit in _TPU_SIGNALS.items()
    }


def _stats(samples: list[float], unit: str, method: str) -> dict[str, Any]:
    mean = sum(samples) / len(samples)
    return metric(mean, unit, method, n=len(samples), mean=mean, min=min(samples), max=max(samples))


class _Signal:
    """Samples of one signal, or the reason it could not be read."""

    __slots__ = ("method", "reason", "samples", "unit")

    def __init__(self, unit: str, method: str) -> None:
        self.unit, self.method = unit, method
        self.samples: list[float] = []
        self.reason: str | None = None

    def summary(self) -> dict[str, Any]:
        if self.reason is not None:
            return unavailable(self.reason, self.unit)
        if not self.samples:
            return unavailable("no sample was taken", self.unit)
        return _stats(self.samples, self.unit, self.method)


class TelemetrySampler:
    """Samples GPU, TPU and host signals every ``interval_s`` on a daemon thread.

    Use as a context manager around the timed phase, then read ``summary()``. One sample is
    taken at start and one at stop, so even a phase shorter than a tick has two. ``sample()``
    is public so tests (and callers without threads) can drive ticks directly.
    """

    def __init__(
        self,
        interval_s: float = 0.1,
        gpu_indices: Sequence[int] = (),
        nvml: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        host_cpu: bool = True,
        proc_stat: str | Path = "/proc/stat",
        tpu: bool = False,
        tpu_info: Any | None = None,
        tpu_interval_s: float = 1.0,
    ) -> None:
        self.interval_s = interval_s
        self.gpu_indices = tuple(gpu_indices)
        self._nvml_arg = nvml
        self._clock = clock
        self._host_cpu = host_cpu
        self._proc_stat = proc_stat
        self._tpu = tpu
        self._tpu_info = tpu_info
        # tpu-info is a gRPC round trip: sampled less often than NVML.
        self._tpu_interval_s = tpu_interval_s
        self._nvml: Any | None = None
        self._handles: list[Any] = []
        self._reasons_fn: Callable[[Any], int] | None = None
        self._signals: dict[str, _Signal] = {}
        self._reason_mask = 0
        self._throttled_ticks = 0
        self._reason_ticks = 0
        self._reason_error: str | None = None
        self._last_cpu: tuple[int, int] | None = None
        self._last_tpu: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> TelemetrySampler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._setup()
        self.sample()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bench-telemetry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample()
        if self._nvml is not None:
            close_nvml(self._nvml)
            self._nvml = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def _setup(self) -> None:
        self._signals = {}
        self._handles, self._reasons_fn = [], None
        self._reason_mask = self._throttled_ticks = self._reason_ticks = 0
        self._reason_error = None
        self._last_cpu = self._last_tpu = None
        gpus = f"GPUs {list(self.gpu_indices)}" if len(self.gpu_indices) > 1 else "the GPU"
        every = f"every {self.interval_s:g} s"
        if self.gpu_indices:
            for key, unit, what in [
                ("gpu_util_pct", "%", "nvmlDeviceGetUtilizationRates().gpu"),
                ("gpu_mem_used_bytes", "bytes", "nvmlDeviceGetMemoryInfo().used"),
                ("gpu_power_w", "W", "nvmlDeviceGetPowerUsage() / 1000"),
                ("gpu_sm_clock_mhz", "MHz", "nvmlDeviceGetClockInfo(NVML_CLOCK_SM)"),
            ]:
                self._signals[key] = _Signal(unit, f"NVML {what} {every}, per GPU, {gpus}")
            self._open_gpus()
        if self._host_cpu:
            self._signals["host_cpu_util_pct"] = _Signal(
                "%", f"busy share of all host CPUs from /proc/stat deltas {every}"
            )
        if self._tpu:
            for key, unit in _TPU_SIGNALS.items():
                self._signals[key] = _Signal(
                    unit, f"tpu-info every {self._tpu_interval_s:g} s, per chip"
                )

    def _open_gpus(self) -> None:
        nvml, reason = open_nvml(self._nvml_arg)
        if nvml is None:
            self._disable_gpu(str(reason))
            return
        self._nvml = nvml
        try:
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in self.gpu_indices]
        except Exception as err:
            self._disable_gpu(f"NVML has no GPU among indices {list(self.gpu_indices)}: {err}")
            return
        self._reasons_fn = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if self._reasons_fn is None:  # nvidia-ml-py older than 12.535
            self._reasons_fn = getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
        if self._reasons_fn is None:
            self._reason_error = "this pynvml has no clocks-event (throttle) reasons call"

    def _disable_gpu(self, reason: str) -> None:
        for key in ("gpu_util_pct", "gpu_mem_used_bytes", "gpu_power_w", "gpu_sm_clock_mhz"):
            self._signals[key].reason = reason
        self._reason_error = reason

    # -- one tick ------------------------------------------------------------------------

    def sample(self) -> None:
        """Take one sample of every signal still readable."""
        with self._lock:
            if self._handles and self._nvml is not None:
                self._sample_gpus(self._nvml)
            if self._host_cpu:
                self._sample_cpu()
            if self._tpu:
                now = self._clock()
                if self._last_tpu is None or now - self._last_tpu >= self._tpu_interval_s:
                    self._last_tpu = now
                    self._sample_tpu()

    def _read(self, key: str, what: str, read: Callable[[], float]) -> None:
        signal = self._signals[key]
        if signal.reason is not None:
            return
        try:
            signal.samples.append(float(read()))
        except Exception as err:
            signal.reason = self._gpu_error(what, err)

    def _gpu_error(self, what: str, err: BaseException) -> str:
        assert self._nvml is not None
        if is_not_supported(self._nvml, err):
            names = {gpu_name(self._nvml, h) for h in self._handles}
            return f"NVML {what} not supported on {', '.join(sorted(names))}"
        return f"NVML {what} failed: {err}"

    def _sample_gpus(self, nvml: Any) -> None:
        sm_clock = getattr(nvml, "NVML_CLOCK_SM", 1)
        for handle in self._handles:
            self._read(
                "gpu_util_pct",
                "utilisation",
                lambda h=handle: nvml.nvmlDeviceGetUtilizationRates(h).gpu,
            )
            self._read(
                "gpu_mem_used_bytes",
                "memory info",
                lambda h=handle: nvml.nvmlDeviceGetMemoryInfo(h).used,
            )
            self._read(
                "gpu_power_w", "power usage", lambda h=handle: nvml.nvmlDeviceGetPowerUsage(h) / 1e3
            )
            self._read(
                "gpu_sm_clock_mhz",
                "SM clock",
                lambda h=handle: nvml.nvmlDeviceGetClockInfo(h, sm_clock),
            )
        self._sample_reasons(nvml)

    def _sample_reasons(self, nvml: Any) -> None:
        if self._reasons_fn is None or self._reason_error is not None:
            return
        mask = 0
        for handle in self._handles:
            try:
                mask |= int(self._reasons_fn(handle))
            except Exception as err:
                code = getattr(nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", _NVML_NO_FUNCTION)
                fallback = getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
                if nvml_error_code(nvml, err) == code and fallback not in (None, self._reasons_fn):
                    # The driver predates the ClocksEvent name: the same bits, older call.
                    self._reasons_fn = fallback
                    return self._sample_reasons(nvml)
                self._reason_error = self._gpu_error("clocks-event reasons", err)
                return
        self._reason_ticks += 1
        self._reason_mask |= mask
        if mask & ~NOT_THROTTLING:
            self._throttled_ticks += 1

    def _sample_cpu(self) -> None:
        signal = self._signals["host_cpu_util_pct"]
        if signal.reason is not None:
            return
        try:
            busy, total = read_cpu_times(self._proc_stat)
        except (OSError, ValueError, IndexError) as err:
            signal.reason = f"{self._proc_stat} not readable ({err}): not a Linux host?"
            return
        if self._last_cpu is not None and total > self._last_cpu[1]:
            signal.samples.append(100.0 * (busy - self._last_cpu[0]) / (total - self._last_cpu[1]))
        self._last_cpu = (busy, total)

    def _sample_tpu(self) -> None:
        if self._signals["tpu_duty_cycle_pct"].reason is not None:
            return
        values, reason = tpu_snapshot(self._tpu_info)
        for key in _TPU_SIGNALS:
            if values is None:
                self._signals[key].reason = reason
            else:
                self._signals[key].samples.extend(values[key])

    # -- result --------------------------------------------------------------------------

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per-signal mean/min/max/n as metrics, ``throttled`` with the reasons seen."""
        with self._lock:
            out = {key: signal.summary() for key, signal in self._signals.items()}
            if self.gpu_indices:
                out["throttled"] = self._throttle_summary()
        return out

    def _throttle_summary(self) -> dict[str, Any]:
        if self._reason_error is not None:
            return unavailable(self._reason_error, "bool")
        if not self._reason_ticks:
            return unavailable("no sample was taken", "bool")
        throttling = self._reason_mask & ~NOT_THROTTLING
        return metric(
            bool(throttling),
            "bool",
            "NVML clocks-event reasons each tick; idle and application-clock settings ignored",
            reasons=reason_names(throttling),
            other_reasons=reason_names(self._reason_mask & NOT_THROTTLING),
            ticks_throttled=self._throttled_ticks,
            n=self._reason_ticks,
        )

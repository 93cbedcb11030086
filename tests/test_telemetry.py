"""Telemetry sampler: NVML signals and clocks-event reasons (fake NVML), /proc/stat deltas,
tpu-info snapshots (fake module), and the background thread itself.

Ticks are driven by hand: the sampler's interval is an hour, so its thread never ticks on its own
between the sample taken at start() and the one taken at stop().
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.measure.telemetry import TelemetrySampler, read_tpu_info, reason_names

HOUR = 3600.0


class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {3: "Not Supported", 13: "Function Not Found"}.get(self.value, "Unknown Error")


class FakeNVML:
    """pynvml's sampling surface. Each per-GPU list is returned one value per call, the last
    value repeating; a value that is an exception instance is raised instead."""

    NVMLError = FakeNVMLError
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_FUNCTION_NOT_FOUND = 13
    NVML_CLOCK_SM = 1

    def __init__(self, **series: dict[int, list[Any]]) -> None:
        self.series = series
        self.calls: dict[tuple[str, int], int] = {}
        self.shutdowns = 0

    def _next(self, key: str, handle: int) -> Any:
        values = self.series[key][handle]
        i = self.calls.get((key, handle), 0)
        self.calls[(key, handle)] = i + 1
        value = values[min(i, len(values) - 1)]
        if isinstance(value, Exception):
            raise value
        return value

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "NVIDIA H200"

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=self._next("util", handle), memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=self._next("mem", handle), total=141 * 2**30)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return self._next("power_mw", handle)

    def nvmlDeviceGetClockInfo(self, handle: int, clock: int) -> int:
        assert clock == self.NVML_CLOCK_SM
        return self._next("sm", handle)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: int) -> int:
        return self._next("reasons", handle)

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: int) -> int:
        return self._next("old_reasons", handle)


def one_gpu(**overrides: list[Any]) -> FakeNVML:
    series = {
        "util": [40, 60, 80],
        "mem": [1e9, 2e9, 3e9],
        "power_mw": [100_000, 200_000, 300_000],
        "sm": [1980, 1980, 1755],
        "reasons": [0x1, 0x0, 0x4],  # idle, nothing, SW power cap
        "old_reasons": [0x0],
    }
    series.update(overrides)
    return FakeNVML(**{k: {0: v} for k, v in series.items()})


def stat_line(user: int, system: int, idle: int) -> str:
    return f"cpu  {user} 0 {system} {idle} 0 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"


def test_gpu_and_host_signals_summarised(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text(stat_line(100, 100, 800))  # busy 200 of 1000 jiffies
    nvml = one_gpu()
    sampler = TelemetrySampler(HOUR, [0], nvml=nvml, proc_stat=stat)
    with sampler:  # tick 1 at start
        stat.write_text(stat_line(150, 150, 900))  # +100 busy of +200 -> 50%
        sampler.sample()  # tick 2
        stat.write_text(stat_line(300, 200, 1000))  # +200 busy of +300 -> 66.67%
    # tick 3 at stop
    s = sampler.summary()
    # utilisation 40, 60, 80 -> mean 60, min 40, max 80, n 3
    assert s["gpu_util_pct"] == {
        "value": 60.0,
        "unit": "%",
        "method": s["gpu_util_pct"]["method"],
        "n": 3,
        "mean": 60.0,
        "min": 40.0,
        "max": 80.0,
    }
    assert "nvmlDeviceGetUtilizationRates" in s["gpu_util_pct"]["method"]
    # power 100, 200, 300 W (NVML reports mW) -> mean 200 W
    assert s["gpu_power_w"]["mean"] == pytest.approx(200.0) and s["gpu_power_w"]["unit"] == "W"
    assert s["gpu_mem_used_bytes"]["max"] == 3e9
    assert s["gpu_sm_clock_mhz"]["min"] == 1755.0
    # host CPU: (50 + 66.67) / 2 = 58.33 %, two deltas from three reads
    assert s["host_cpu_util_pct"]["mean"] == pytest.approx((50 + 200 / 3) / 2)
    assert s["host_cpu_util_pct"]["n"] == 2
    # SW power cap seen once -> throttled; idle is listed apart and is not throttling.
    throttled = s["throttled"]
    assert throttled["value"] is True and throttled["unit"] == "bool"
    assert throttled["reasons"] == ["sw_power_cap"]
    assert throttled["other_reasons"] == ["gpu_idle"]
    assert (throttled["ticks_throttled"], throttled["n"]) == (1, 3)
    assert nvml.shutdowns == 1


def test_idle_and_application_clocks_are_not_throttling() -> None:
    sampler = TelemetrySampler(HOUR, [0], nvml=one_gpu(reasons=[0x1, 0x2]), host_cpu=False)
    with sampler:
        pass
    throttled = sampler.summary()["throttled"]
    assert throttled["value"] is False
    assert throttled["reasons"] == []
    assert throttled["other_reasons"] == ["gpu_idle", "applications_clocks_setting"]


def test_unsupported_signal_is_unavailable_and_not_retried() -> None:
    nvml = one_gpu(power_mw=[FakeNVMLError(3)])
    sampler = TelemetrySampler(HOUR, [0], nvml=nvml, host_cpu=False)
    with sampler:
        sampler.sample()
    s = sampler.summary()
    assert s["gpu_power_w"] == {
        "unavailable": "NVML power usage not supported on NVIDIA H200",
        "unit": "W",
    }
    assert nvml.calls[("power_mw", 0)] == 1  # switched off after the first failure
    assert s["gpu_util_pct"]["n"] == 3  # the other signals carry on


def test_clocks_event_reasons_fall_back_to_throttle_reasons() -> None:
    # A driver older than the ClocksEvent name: FUNCTION_NOT_FOUND, then the old call's bits.
    nvml = one_gpu(reasons=[FakeNVMLError(13)], old_reasons=[0x40])
    sampler = TelemetrySampler(HOUR, [0], nvml=nvml, host_cpu=False)
    with sampler:
        pass
    throttled = sampler.summary()["throttled"]
    assert throttled["value"] is True
    assert throttled["reasons"] == ["hw_thermal_slowdown"]

    class OldNVML(FakeNVML):  # nvidia-ml-py without the new name at all
        nvmlDeviceGetCurrentClocksEventReasons = None  # type: ignore[assignment]

    old = OldNVML(**one_gpu(old_reasons=[0x8]).series)
    sampler = TelemetrySampler(HOUR, [0], nvml=old, host_cpu=False)
    with sampler:
        pass
    assert sampler.summary()["throttled"]["reasons"] == ["hw_slowdown"]


def test_no_nvml_makes_every_gpu_signal_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    sampler = TelemetrySampler(HOUR, [0], host_cpu=False)
    with sampler:
        pass
    s = sampler.summary()
    for key in ("gpu_util_pct", "gpu_mem_used_bytes", "gpu_power_w", "gpu_sm_clock_mhz"):
        assert "nvidia-ml-py is not installed" in s[key]["unavailable"]
    assert "nvidia-ml-py is not installed" in s["throttled"]["unavailable"]


def test_cpu_only_sampler_has_no_gpu_entries(tmp_path: Path) -> None:
    sampler = TelemetrySampler(HOUR, proc_stat=tmp_path / "absent")
    with sampler:
        pass
    s = sampler.summary()
    assert set(s) == {"host_cpu_util_pct"}
    assert "not readable" in s["host_cpu_util_pct"]["unavailable"]


def test_thread_samples_on_its_own() -> None:
    sampler = TelemetrySampler(0.001, [0], nvml=one_gpu(), host_cpu=False)
    with sampler:
        deadline = time.monotonic() + 2.0
        while sampler.summary()["gpu_util_pct"]["n"] < 4 and time.monotonic() < deadline:
            time.sleep(0.001)
    assert sampler.summary()["gpu_util_pct"]["n"] >= 5  # >= 4 ticks, plus the one at stop


def fake_tpu_info(duty: list[float]) -> SimpleNamespace:
    usage = SimpleNamespace(memory_usage=4 * 2**30, total_memory=16 * 2**30)
    calls = iter(duty)

    def get_chip_usage(chip_type: str) -> list[SimpleNamespace]:
        d = next(calls)
        return [SimpleNamespace(device_id=i, duty_cycle_pct=d, **vars(usage)) for i in (0, 1)]

    return SimpleNamespace(
        device=SimpleNamespace(get_local_chips=lambda: ("v5e", 2)),
        metrics=SimpleNamespace(get_chip_usage=get_chip_usage),
    )


def test_tpu_info_sampled_at_its_own_interval() -> None:
    times = iter([0.0, 0.5, 1.0])  # start, manual tick (too soon: skipped), stop
    sampler = TelemetrySampler(
        HOUR,
        host_cpu=False,
        tpu=True,
        tpu_info=fake_tpu_info([50.0, 90.0]),
        clock=lambda: next(times),
        tpu_interval_s=1.0,
    )
    with sampler:
        sampler.sample()
    s = sampler.summary()
    # Two snapshots x two chips: duty 50, 50, 90, 90 -> mean 70, n 4.
    assert s["tpu_duty_cycle_pct"]["mean"] == pytest.approx(70.0)
    assert s["tpu_duty_cycle_pct"]["n"] == 4
    assert s["tpu_hbm_used_bytes"]["max"] == 4 * 2**30


def test_read_tpu_info_defensive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tpu_info", None)
    out = read_tpu_info()
    assert out["tpu_duty_cycle_pct"]["unavailable"].startswith("tpu-info is not installed")
    assert out["tpu_hbm_used_bytes"]["unit"] == "bytes"

    def broken(chip_type: str) -> list[Any]:
        raise RuntimeError("failed to connect to all addresses")

    module = fake_tpu_info([1.0])
    module.metrics.get_chip_usage = broken
    reason = read_tpu_info(module)["tpu_duty_cycle_pct"]["unavailable"]
    assert "RuntimeError: failed to connect" in reason
    assert read_tpu_info(fake_tpu_info([25.0]))["tpu_duty_cycle_pct"]["value"] == 25.0


def test_reason_names() -> None:
    assert reason_names(0x4 | 0x40 | 0x1000) == [
        "sw_power_cap",
        "hw_thermal_slowdown",
        "unknown_0x1000",
    ]

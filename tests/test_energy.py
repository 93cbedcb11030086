"""Energy from counters: NVML total-energy differences and RAPL package counters (with wrap).

NVML is a fake module with pynvml's names; RAPL is a fake /sys/class/powercap tree in tmp_path.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.measure.energy import EnergyMeter, per_example


class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {3: "Not Supported", 9: "Driver Not Loaded"}.get(self.value, "Unknown Error")


class FakeNVML:
    """pynvml's energy-related surface; ``energy_mj[i]`` lists readings returned in turn."""

    NVMLError = FakeNVMLError
    NVML_ERROR_NOT_SUPPORTED = 3

    def __init__(
        self,
        energy_mj: dict[int, list[int]],
        unsupported: tuple[int, ...] = (),
        init_error: int | None = None,
    ) -> None:
        self.energy_mj = {i: iter(v) for i, v in energy_mj.items()}
        self.unsupported = unsupported
        self.init_error = init_error
        self.inits = self.shutdowns = 0

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise FakeNVMLError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "Tesla P100-PCIE-16GB" if handle in self.unsupported else "NVIDIA H200"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        if handle in self.unsupported:
            raise FakeNVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return next(self.energy_mj[handle])


def ticking(*times: float):
    it = iter(times)
    return lambda: next(it)


def test_gpu_energy_is_the_counter_difference_summed_over_gpus() -> None:
    # GPU 0: 1,000,000 -> 1,150,000 mJ = 150 J; GPU 1: 20,000 -> 70,500 mJ = 50.5 J; sum 200.5 J.
    nvml = FakeNVML({0: [1_000_000, 1_150_000], 1: [20_000, 70_500]})
    meter = EnergyMeter("gpu", [0, 1], nvml=nvml, host_energy=False, clock=ticking(10.0, 12.0))
    meter.start()
    out = meter.stop()
    assert out["energy_j"]["value"] == pytest.approx(200.5)
    assert out["energy_j"]["unit"] == "J"
    assert out["energy_j"]["per_gpu_j"] == pytest.approx([150.0, 50.5])
    assert "nvmlDeviceGetTotalEnergyConsumption" in out["energy_j"]["method"]
    # 200.5 J over 12.0 - 10.0 = 2 s -> 100.25 W average.
    assert out["avg_power_w"]["value"] == pytest.approx(100.25)
    assert "host_energy_j" not in out
    assert nvml.inits == nvml.shutdowns == 1


def test_gpu_counter_not_supported_is_unavailable_with_reason() -> None:
    nvml = FakeNVML({0: [0, 0]}, unsupported=(0,))
    meter = EnergyMeter("gpu", [0], nvml=nvml, host_energy=False)
    meter.start()
    out = meter.stop()
    reason = out["energy_j"]["unavailable"]
    assert "not supported on GPU 0 (Tesla P100-PCIE-16GB)" in reason
    assert "Volta" in reason
    assert out["avg_power_w"]["unavailable"] == reason
    assert nvml.shutdowns == 1


def test_no_driver_and_no_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    meter = EnergyMeter("gpu", [0], nvml=FakeNVML({}, init_error=9), host_energy=False)
    meter.start()
    assert "NVML could not start (Driver Not Loaded)" in meter.stop()["energy_j"]["unavailable"]
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml now raises ImportError
    meter = EnergyMeter("gpu", [0], host_energy=False)
    meter.start()
    assert "nvidia-ml-py is not installed" in meter.stop()["energy_j"]["unavailable"]


def _package(root: Path, n: int, energy_uj: int, max_uj: int, name: str = "") -> Path:
    domain = root / f"intel-rapl:{n}"
    domain.mkdir(parents=True)
    (domain / "name").write_text(name or f"package-{n}\n")
    (domain / "energy_uj").write_text(f"{energy_uj}\n")
    (domain / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return domain


def test_rapl_package_energy_with_counter_wrap(tmp_path: Path) -> None:
    p0 = _package(tmp_path, 0, energy_uj=5_000_000, max_uj=262_143_328_850)
    # Package 1 is near the top of its range and wraps during the phase.
    p1 = _package(tmp_path, 1, energy_uj=999_000_000, max_uj=1_000_000_000)
    core = tmp_path / "intel-rapl:0:0"  # a sub-domain inside package 0: must not be added
    core.mkdir()
    (core / "name").write_text("core\n")
    (core / "energy_uj").write_text("1\n")
    _package(tmp_path, 2, energy_uj=0, max_uj=10**12, name="psys\n")  # overlaps packages
    meter = EnergyMeter("cpu", powercap_root=tmp_path, clock=ticking(0.0, 4.0))
    meter.start()
    (p0 / "energy_uj").write_text("45000000\n")  # +40,000,000 uJ = 40 J
    (p1 / "energy_uj").write_text("2000000\n")  # wrapped: 1e9 - 999e6 + 2e6 = 3,000,000 uJ = 3 J
    (core / "energy_uj").write_text("999999999\n")
    out = meter.stop()
    assert out["energy_j"]["value"] == pytest.approx(43.0)  # 40 J + 3 J
    assert out["energy_j"]["counter_wraps"] == 1
    assert "intel-rapl:0, intel-rapl:1" in out["energy_j"]["method"]
    assert out["avg_power_w"]["value"] == pytest.approx(43.0 / 4.0)


def test_rapl_absent_or_not_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meter = EnergyMeter("cpu", powercap_root=tmp_path / "missing")
    meter.start()
    assert "no RAPL package domains" in meter.stop()["energy_j"]["unavailable"]

    _package(tmp_path, 0, energy_uj=1, max_uj=10)
    real_read_text = Path.read_text

    def deny(self: Path, *args: object, **kwargs: object) -> str:
        if self.name == "energy_uj":  # root-only since Linux 5.10, whoever runs the tests
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", deny)
    meter = EnergyMeter("cpu", powercap_root=tmp_path)
    meter.start()
    reason = meter.stop()["energy_j"]["unavailable"]
    assert "not readable: permission denied" in reason


def test_gpu_cell_reports_host_packages_and_tpu_has_no_counter(tmp_path: Path) -> None:
    _package(tmp_path, 0, energy_uj=0, max_uj=10**12)
    nvml = FakeNVML({0: [0, 2_000]})
    meter = EnergyMeter("gpu", [0], nvml=nvml, powercap_root=tmp_path)
    meter.start()
    out = meter.stop()
    assert out["energy_j"]["value"] == pytest.approx(2.0)
    assert out["host_energy_j"]["value"] == 0.0
    meter = EnergyMeter("tpu", powercap_root=tmp_path / "missing")
    meter.start()
    out = meter.stop()
    assert "no energy counter is exposed for tpu" in out["energy_j"]["unavailable"]
    assert "no RAPL package domains" in out["host_energy_j"]["unavailable"]


def test_per_example_arithmetic() -> None:
    energy = {"energy_j": {"value": 200.0, "unit": "J", "method": "NVML ..."}}
    out = per_example(energy, 50_000)
    # 200 J / 50,000 examples = 0.004 J/example; 50,000 / 200 J = 250 examples/J.
    assert out["energy_per_example_j"]["value"] == pytest.approx(0.004)
    assert out["energy_per_example_j"]["unit"] == "J/example"
    assert out["examples_per_j"]["value"] == pytest.approx(250.0)
    missing = per_example({"energy_j": {"unavailable": "no RAPL", "unit": "J"}}, 10)
    assert missing["examples_per_j"] == {"unavailable": "no RAPL", "unit": "examples/J"}
    assert "cannot divide" in per_example(energy, 0)["energy_per_example_j"]["unavailable"]

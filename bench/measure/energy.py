"""Energy of a cell's timed phase, from hardware energy counters.

Why counters: power readings are sparse samples (NVML refreshes power every ~100 ms or slower,
and averages it), so integrating them misses bursts and short steps. Counters accumulate every
joule: the difference of two readings is exact whatever the phase length.

- NVIDIA GPUs: ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load; Volta and later),
  summed over the GPUs in use.
- CPUs: RAPL package domains under /sys/class/powercap (``intel-rapl:N/energy_uj``; AMD Zen uses
  the same files). A counter wraps at ``max_energy_range_uj``; one wrap per phase is undone
  (the range is hundreds of kJ, many minutes at full package power). RAPL counts the whole
  package: other processes on the host are included.
- TPUs expose no energy counter (neither libtpu nor tpu-info reports one).

Anything not measurable comes back as ``unavailable`` with the precise reason.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.measure.telemetry import close_nvml, gpu_name, is_not_supported, open_nvml
from bench.metrics import metric, unavailable, value_of

_PACKAGE_DIR = re.compile(r"^intel-rapl:\d+$")


class _CounterError(Exception):
    """A counter that cannot be read; the message is the reason recorded."""


class _Rapl:
    """RAPL package counters: ``read()`` gives µJ per domain, or raises OSError/ValueError."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.domains: list[Path] = []
        self.max_uj: dict[Path, int | None] = {}
        if not root.is_dir():
            return
        for path in sorted(root.iterdir()):
            if not _PACKAGE_DIR.match(path.name):
                continue  # sub-domains (intel-rapl:0:0 core, dram) are inside their package
            try:
                name = (path / "name").read_text().strip()
            except OSError:
                name = "package"
            if name.startswith("package"):  # skip psys: it overlaps the packages
                self.domains.append(path)
                self.max_uj[path] = _read_int(path / "max_energy_range_uj")

    def read(self) -> dict[Path, int]:
        return {d: int((d / "energy_uj").read_text()) for d in self.domains}

    def names(self) -> str:
        return ", ".join(d.name for d in self.domains)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


class EnergyMeter:
    """Energy counters read at ``start()`` and ``stop()`` around a timed phase.

    ``device`` is the kind running the cell ("gpu", "cpu" or "tpu"): it decides what
    ``energy_j`` measures (the GPUs in ``gpu_indices``, by NVML index; the CPU packages; nothing
    on TPU). On GPU and TPU cells the host CPU packages are reported as ``host_energy_j``.
    ``nvml`` (a pynvml-like module) and ``powercap_root`` are injectable for tests.
    """

    def __init__(
        self,
        device: str = "cpu",
        gpu_indices: Sequence[int] = (),
        *,
        nvml: Any | None = None,
        powercap_root: str | Path = "/sys/class/powercap",
        clock: Callable[[], float] = time.perf_counter,
        host_energy: bool = True,
    ) -> None:
        self.device = device.lower()
        self.gpu_indices = tuple(gpu_indices)
        self._nvml_arg = nvml
        self._root = Path(powercap_root)
        self._clock = clock
        self._host_energy = host_energy
        self._nvml: Any | None = None
        self._handles: list[Any] = []
        self._gpu_start: list[int] | None = None
        self._gpu_reason: str | None = None
        self._rapl: _Rapl | None = None
        self._rapl_start: dict[Path, int] | None = None
        self._rapl_reason: str | None = None
        self._t0 = 0.0

    @property
    def _wants_rapl(self) -> bool:
        return self.device == "cpu" or self._host_energy

    def start(self) -> None:
        if self.device == "gpu":
            self._start_gpu()
        if self._wants_rapl:
            self._start_rapl()
        self._t0 = self._clock()

    def stop(self) -> dict[str, dict[str, Any]]:
        """Metrics: ``energy_j``, ``avg_power_w`` and (GPU/TPU cells) ``host_energy_j``."""
        elapsed = self._clock() - self._t0
        out: dict[str, dict[str, Any]] = {}
        rapl = self._stop_rapl() if self._wants_rapl else None
        if self.device == "gpu":
            out["energy_j"] = self._stop_gpu()
        elif self.device == "cpu":
            assert rapl is not None
            out["energy_j"] = rapl
        else:
            out["energy_j"] = unavailable(
                f"no energy counter is exposed for {self.device} devices "
                "(libtpu and tpu-info report none)",
                "J",
            )
        if rapl is not None and self.device != "cpu":
            out["host_energy_j"] = rapl
        joules = value_of(out["energy_j"])
        if joules is None:
            out["avg_power_w"] = unavailable(str(out["energy_j"]["unavailable"]), "W")
        elif elapsed <= 0:
            out["avg_power_w"] = unavailable("timed phase has no duration", "W")
        else:
            out["avg_power_w"] = metric(
                joules / elapsed, "W", "energy_j / phase duration (counter-based average)"
            )
        return out

    # -- NVIDIA GPUs ---------------------------------------------------------------------

    def _start_gpu(self) -> None:
        if not self.gpu_indices:
            self._gpu_reason = "a GPU cell with no GPU indices to read"
            return
        nvml, reason = open_nvml(self._nvml_arg)
        if nvml is None:
            self._gpu_reason = reason
            return
        self._nvml = nvml
        try:
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in self.gpu_indices]
        except Exception as err:
            self._gpu_reason = f"NVML has no GPU among indices {list(self.gpu_indices)}: {err}"
            return
        try:
            self._gpu_start = self._read_gpus()
        except _CounterError as err:
            self._gpu_reason = str(err)

    def _read_gpus(self) -> list[int]:
        """mJ per GPU; a failure raises _CounterError naming the GPU and why."""
        nvml = self._nvml
        assert nvml is not None
        values = []
        for index, handle in zip(self.gpu_indices, self._handles, strict=True):
            try:
                values.append(int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle)))
            except Exception as err:
                if is_not_supported(nvml, err):
                    raise _CounterError(
                        f"NVML total energy counter not supported on GPU {index} "
                        f"({gpu_name(nvml, handle)}); it needs Volta or newer"
                    ) from err
                raise _CounterError(
                    f"NVML energy counter read failed on GPU {index}: {err}"
                ) from err
        return values

    def _stop_gpu(self) -> dict[str, Any]:
        try:
            if self._gpu_reason is not None or self._gpu_start is None:
                return unavailable(str(self._gpu_reason), "J")
            try:
                end = self._read_gpus()
            except _CounterError as err:
                return unavailable(str(err), "J")
            millijoules = sum(e - s for s, e in zip(self._gpu_start, end, strict=True))
            return metric(
                millijoules / 1e3,
                "J",
                "NVML nvmlDeviceGetTotalEnergyConsumption difference over the timed phase, "
                f"summed over GPUs {list(self.gpu_indices)}",
                per_gpu_j=[(e - s) / 1e3 for s, e in zip(self._gpu_start, end, strict=True)],
            )
        finally:
            if self._nvml is not None:
                close_nvml(self._nvml)
                self._nvml = None

    # -- CPU packages (RAPL) -------------------------------------------------------------

    def _start_rapl(self) -> None:
        self._rapl = _Rapl(self._root)
        if not self._rapl.domains:
            self._rapl_reason = (
                f"no RAPL package domains under {self._root} (no powercap driver, or a VM or "
                "container that hides it)"
            )
            return
        try:
            self._rapl_start = self._rapl.read()
        except PermissionError:
            self._rapl_reason = (
                f"RAPL counters under {self._root} not readable: permission denied "
                "(energy_uj is root-only since Linux 5.10; run as root or grant read access)"
            )
        except (OSError, ValueError) as err:
            self._rapl_reason = f"RAPL counters under {self._root} not readable: {err}"

    def _stop_rapl(self) -> dict[str, Any]:
        if self._rapl_reason is not None or self._rapl is None or self._rapl_start is None:
            return unavailable(str(self._rapl_reason), "J")
        try:
            end = self._rapl.read()
        except (OSError, ValueError) as err:
            return unavailable(f"RAPL counter read failed at stop: {err}", "J")
        total_uj = 0
        wrapped = 0
        for domain, start in self._rapl_start.items():
            delta = end[domain] - start
            if delta < 0:  # the counter wrapped at max_energy_range_uj
                max_uj = self._rapl.max_uj[domain]
                if max_uj is None:
                    return unavailable(
                        f"RAPL counter {domain.name} wrapped and max_energy_range_uj is unknown",
                        "J",
                    )
                delta += max_uj
                wrapped += 1
            total_uj += delta
        return metric(
            total_uj / 1e6,
            "J",
            "RAPL energy_uj difference over the timed phase, summed over packages "
            f"{self._rapl.names()} (whole package: includes other processes)",
            counter_wraps=wrapped,
        )


def per_example(
    energy_metrics: Mapping[str, Mapping[str, Any]], examples: float
) -> dict[str, dict[str, Any]]:
    """``energy_per_example_j`` and ``examples_per_j`` from ``EnergyMeter.stop()`` output.

    ``examples`` is the number processed in the same timed phase the counters covered.
    """
    energy = energy_metrics.get("energy_j") or unavailable("no energy measured", "J")
    joules = value_of(dict(energy))
    if joules is None:
        reason = str(energy.get("unavailable", "no energy measured"))
        return {
            "energy_per_example_j": unavailable(reason, "J/example"),
            "examples_per_j": unavailable(reason, "examples/J"),
        }
    if examples <= 0 or joules <= 0:
        reason = f"cannot divide: {examples} examples, {joules} J"
        return {
            "energy_per_example_j": unavailable(reason, "J/example"),
            "examples_per_j": unavailable(reason, "examples/J"),
        }
    how = f"energy_j ({energy.get('method', '')}) and {examples:g} examples in the timed phase"
    return {
        "energy_per_example_j": metric(
            joules / examples, "J/example", f"energy_j / examples; {how}"
        ),
        "examples_per_j": metric(examples / joules, "examples/J", f"examples / energy_j; {how}"),
    }

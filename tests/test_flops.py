"""Peak table lookup, CPU calibration, MFU arithmetic and XLA cost-analysis parsing."""

from __future__ import annotations

import pytest

from bench.backends.jax.precision import tf32_allowed
from bench.measure.flops import (
    calibrate_cpu_peak,
    device_key,
    load_peaks,
    matmul_precision,
    mfu,
    mfu_peak,
    peak_flops,
    xla_cost_flops,
)
from bench.metrics import value_of


@pytest.mark.parametrize(
    ("name", "key"),
    [
        # Strings as JAX device_kind / NVML nvmlDeviceGetName report them.
        ("NVIDIA H200", "h200"),
        ("NVIDIA H200 NVL", "h200-nvl"),
        ("NVIDIA GH200 480GB", "gh200"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA A100-SXM4-40GB", "a100"),
        ("NVIDIA A100 80GB PCIe", "a100"),
        ("NVIDIA A10G", "a10g"),
        ("NVIDIA L4", "l4"),
        ("Tesla T4", "t4"),
        ("Tesla V100-SXM2-16GB", "v100-sxm2"),
        ("Tesla V100-PCIE-32GB", "v100-pcie"),
        ("NVIDIA B200", "b200"),
        ("TPU v2", "tpu-v2"),
        ("TPU v3", "tpu-v3"),
        ("TPU v4", "tpu-v4"),
        ("TPU v5 lite", "tpu-v5e"),
        ("TPU v5e", "tpu-v5e"),
        ("TPU v5", "tpu-v5p"),
        ("TPU v5p", "tpu-v5p"),
        ("TPU v6 lite", "tpu-v6e"),
        ("tpu V6E", "tpu-v6e"),  # case-insensitive
        ("cpu", "cpu"),
        ("Intel(R) Xeon(R) CPU @ 2.20GHz", "cpu"),
        ("AMD EPYC 7B13", "cpu"),
    ],
)
def test_device_key_from_reported_names(name: str, key: str) -> None:
    assert device_key(name) == key


def test_peaks_are_dense_datasheet_figures() -> None:
    # H100 SXM datasheet: BF16 1,979 TFLOPS with sparsity -> 989.5 dense; FP32 67 (no tensor core).
    bf16 = peak_flops("NVIDIA H100 80GB HBM3", "bfloat16")
    assert bf16["value"] == pytest.approx(989.5e12)
    assert bf16["unit"] == "FLOP/s"
    assert "datasheet" in bf16["method"]
    assert peak_flops("NVIDIA H100 80GB HBM3", "float32")["value"] == pytest.approx(67e12)
    # TF32 on request, for float32 runs that used tensor cores: A100 156 TFLOPS dense.
    assert peak_flops("NVIDIA A100-SXM4-40GB", "tf32")["value"] == pytest.approx(156e12)
    # Precision aliases: "bf16", "mixed_bfloat16" (Keras policy) -> the bfloat16 column.
    assert value_of(peak_flops("NVIDIA H200", "bf16")) == value_of(
        peak_flops("NVIDIA H200", "mixed_bfloat16")
    )


def test_tpu_peaks_per_framework_device() -> None:
    # v5e: 197 TFLOPS per chip, one JAX device per chip; float32 maps to the bf16 MXU peak.
    assert peak_flops("TPU v5 lite", "bfloat16")["value"] == pytest.approx(197e12)
    assert peak_flops("TPU v5 lite", "float32")["value"] == pytest.approx(197e12)
    # v3: 123 TFLOPS per chip, two TensorCores = two JAX devices per chip -> 61.5 per device.
    assert peak_flops("TPU v3", "bfloat16")["value"] == pytest.approx(61.5e12)


def test_every_entry_has_a_source_and_sane_numbers() -> None:
    for entry in load_peaks()["devices"]:
        assert entry["source"].strip(), entry["key"]
        assert entry["match"], entry["key"]
        for precision, tflops in entry["tflops"].items():
            assert tflops is None or 1 < tflops < 5000, (entry["key"], precision)


def test_unavailable_peaks_say_why() -> None:
    assert "no peak-table entry" in peak_flops("Some NPU 9000", "bfloat16")["unavailable"]
    assert "calibrate_cpu_peak" in peak_flops("cpu", "float32")["unavailable"]
    t4 = peak_flops("Tesla T4", "bfloat16")
    assert "no bfloat16 peak" in t4["unavailable"] and t4["unit"] == "FLOP/s"
    assert "has no 'int4'" in peak_flops("NVIDIA L4", "int4")["unavailable"]


def test_calibrate_cpu_peak_with_injected_matmul_and_clock() -> None:
    calls: list[int] = []
    # Clock reads in pairs around each timed run: 0.5 s, then 0.25 s, then 0.4 s -> best 0.25 s.
    ticks = iter([0.0, 0.5, 1.0, 1.25, 2.0, 2.4])
    peak = calibrate_cpu_peak(
        "float32", matmul=lambda: calls.append(1), n=1000, repeats=3, clock=lambda: next(ticks)
    )
    # 2 * 1000^3 = 2e9 FLOPs / 0.25 s = 8e9 FLOP/s; one untimed warm-up call + 3 timed.
    assert peak["value"] == pytest.approx(8e9)
    assert len(calls) == 4
    assert "measured calibration matmul" in peak["method"]


def test_calibrate_cpu_peak_numpy_path_runs() -> None:
    peak = calibrate_cpu_peak("float32", n=64, repeats=1)
    assert peak["value"] > 0 and peak["unit"] == "FLOP/s"
    assert "numpy float32" in peak["method"]
    assert "numpy has no bfloat16" in calibrate_cpu_peak("bfloat16")["unavailable"]


def test_mfu_arithmetic() -> None:
    peak = peak_flops("NVIDIA A100-SXM4-40GB", "bfloat16")  # 312e12 FLOP/s per GPU
    # 1.2e9 FLOPs/example x 52,000 examples/s = 6.24e13 FLOP/s; / 312e12 = 0.2.
    result = mfu(1.2e9, 52_000, peak)
    assert result["value"] == pytest.approx(0.2)
    assert result["unit"] == "fraction"
    assert result["achieved_flops_per_s"] == pytest.approx(6.24e13)
    assert result["exceeds_peak"] is False
    # Same throughput spread over 4 GPUs: 6.24e13 / (4 x 312e12) = 0.05.
    assert mfu(1.2e9, 52_000, peak, n_devices=4)["value"] == pytest.approx(0.05)
    # A bare number is accepted as the peak: 1e6 x 3e3 = 3e9 / 6e9 = 0.5.
    assert mfu(1e6, 3e3, 6e9)["value"] == pytest.approx(0.5)


def test_mfu_over_one_is_flagged() -> None:
    # float32 at TF32 speed measured against the FP32 peak: 1e9 x 30,000 = 3e13 > 19.5e12.
    result = mfu(1e9, 30_000, peak_flops("NVIDIA A100-SXM4-40GB", "float32"))
    assert result["value"] == pytest.approx(3e13 / 19.5e12)
    assert result["exceeds_peak"] is True
    assert "TF32" in result["invalid_reason"]


def test_mfu_unavailable_cases() -> None:
    assert "no peak FLOP/s" in mfu(1e9, 1e3, peak_flops("cpu", "float32"))["unavailable"]
    assert "analytic FLOPs" in mfu(None, 1e3, 1e12)["unavailable"]
    assert "throughput" in mfu(1e9, 0.0, 1e12)["unavailable"]


class _Compiled:
    def __init__(self, analysis: object) -> None:
        self._analysis = analysis

    def cost_analysis(self) -> object:
        if isinstance(self._analysis, Exception):
            raise self._analysis
        return self._analysis


def test_xla_cost_flops_shapes() -> None:
    assert xla_cost_flops(_Compiled({"flops": 2048.0, "bytes accessed": 10.0})) == 2048.0
    assert xla_cost_flops(_Compiled([{"flops": 512}])) == 512.0  # older jax: list of dicts
    assert xla_cost_flops(_Compiled(None)) is None
    assert xla_cost_flops(_Compiled({"bytes accessed": 1.0})) is None
    assert xla_cost_flops(_Compiled({"flops": -1.0})) is None  # XLA's "unknown"
    assert xla_cost_flops(_Compiled(NotImplementedError("no cost model"))) is None
    assert xla_cost_flops(object()) is None


# What the JAX backend reports on an H200 (compute capability 9.0) at JAX's defaults.
H200_JAX = {
    "tf32_allowed": True,
    "setting": "jax_default_matmul_precision=None",
    "compute_capability": "9.0",
}


def test_float32_on_an_ampere_or_later_gpu_runs_as_tf32_and_takes_the_tf32_peak() -> None:
    in_effect = matmul_precision("float32", "gpu", H200_JAX, "NVIDIA H200")
    assert in_effect["value"] == "tf32"
    assert "compute capability 9" in in_effect["method"]
    peak = mfu_peak("NVIDIA H200", in_effect)
    assert value_of(peak) == pytest.approx(494.5e12)  # TF32 dense, not the 67 TFLOP/s FP32 peak
    assert "matmul precision in effect: tf32" in peak["method"]
    # The H200 of the issue: float32 matmuls at ~360 TFLOP/s are 0.73 of TF32, 5.4x FP32.
    assert value_of(mfu(360e12, 1.0, peak)) == pytest.approx(360 / 494.5)
    assert mfu(360e12, 1.0, peak_flops("NVIDIA H200", "float32"))["exceeds_peak"]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        # A100 in TensorFlow: TF32 execution is on by default; compute capability as a tuple.
        ({"tf32_allowed": True, "compute_capability": (8, 0)}, "tf32"),  # TF: TF32 execution on
        ({"tf32_allowed": False, "compute_capability": (8, 0)},
         "float32"),
        ({**H200_JAX, "tf32_allowed": tf32_allowed("highest")}, "float32"),
        ({**H200_JAX, "tf32_allowed": tf32_allowed("tensorfloat32")}, "tf32"),
        ({**H200_JAX, "nvidia_tf32_override": "0"}, "float32"),
        ({**H200_JAX, "compute_capability": "7.0"}, "float32"),  # Volta: no TF32
        ({"tf32_allowed": tf32_allowed(None)}, "tf32"),  # capability unknown
    ],
)  # fmt: skip
def test_matmul_precision_in_effect(settings: dict, expected: str) -> None:
    # capability unknown: the peak table's TF32 figure for the A100 says the hardware has it
    assert (
        matmul_precision("float32", "gpu", settings, "NVIDIA A100-SXM4-40GB")["value"] == expected
    )


def test_only_float32_on_gpus_changes() -> None:
    assert matmul_precision("bfloat16", "gpu", H200_JAX, "NVIDIA H200")["value"] == "bfloat16"
    assert matmul_precision("float32", "cpu", {"tf32_allowed": True}, "cpu")["value"] == "float32"
    assert matmul_precision("float32", "tpu", {"tf32_allowed": True}, "TPU v5 lite")["value"] == (
        "float32"
    )
    unknown_t4 = matmul_precision("float32", "gpu", {"tf32_allowed": True}, "Tesla T4")
    assert unknown_t4["value"] == "float32"  # the table's T4 has no TF32 figure


def test_jax_matmul_precision_settings_read_as_tf32_allowed_or_not() -> None:
    assert tf32_allowed(None) and tf32_allowed("default") and tf32_allowed("TensorFloat32")
    assert tf32_allowed("highest") is False and tf32_allowed("float32") is False
    assert tf32_allowed("float64") is None  # unknown: the cell is taken as float32
    settings = {"tf32_allowed": None, "setting": "x='float64'", "compute_capability": "9.0"}
    found = matmul_precision("float32", "gpu", settings, "NVIDIA H200")
    assert found["value"] == "float32" and "not a known setting" in found["method"]

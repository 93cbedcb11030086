"""What every cell of an offline workload starts from: its message, model, arguments, data
spec, build request and run-length rule, and the device-side metrics every cell records (FLOPs,
the device's peak, memory, price)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

from bench.axes import CellKey
from bench.backends.workload import BuildRequest, Workload
from bench.measure.flops import calibrate_cpu_peak, matmul_precision, mfu_peak
from bench.measure.host_memory import reset_peak_rss
from bench.measure.timing import RunLength
from bench.metrics import metric, unavailable, value_of
from bench.modeldef import load_model
from bench.workloads import registry
from bench.workloads.cell.message import CellMessage

# Sizes of the CPU calibration matmuls: the fastest is the peak, as the best size depends on the
# CPU's caches and the framework's kernels (0.3-17 GFLOP each: well under a second in all).
CALIBRATION_SIZES = (512, 1024, 2048)


@dataclass
class CellContext:
    """The parts of a cell that do not depend on its workload's body."""

    msg: CellMessage
    key: CellKey
    model: Any
    args: Any
    req: BuildRequest
    rule: RunLength
    rss_reset: Any

    @classmethod
    def open(cls, msg: CellMessage) -> CellContext:
        """Model, arguments, data files (made or checked before any clock starts: real jobs
        prepare them offline too) and the build request."""
        from bench.optimizer import Optimizer

        rss_reset = reset_peak_rss()
        key = msg.key
        model = load_model(key["model"])
        args = model.Args.model_validate(msg.model_args)
        spec = model.data_spec(args)
        data = None
        if key["input"] == "tfdata":
            from bench.inputs.datafiles import ensure
            from bench.inputs.settings import DataFiles

            data = ensure(spec, DataFiles(**msg.data), msg.seed)
        workload = registry.spec(key["workload"])
        req = BuildRequest(
            key, model, args, spec, Optimizer(**msg.optimizer), msg.seed, data,
            run_dir=msg.run_dir, training=workload.compiled_pass == "train",
        )  # fmt: skip
        m = msg.measure
        rule = RunLength(
            m["warmup_steps"],
            m["min_steps"],
            m["min_seconds"],
            m["max_seconds"],
            m["target_rel_ci"],
            # Processes must agree on the step count without talking: see timing.RunLength.
            fixed_steps=m["min_steps"] if msg.processes > 1 else None,
        )
        return cls(msg, key, model, args, req, rule, rss_reset)

    def with_weights(self, weights: Any) -> None:
        self.req = replace(self.req, weights=weights)

    def flops_metrics(self, backend: Any, workload: Workload) -> dict[str, Any]:
        """Analytic FLOPs, the compiler's count beside them, and the device peak (MFU is
        derived from them)."""
        key, compiled_pass = self.key, registry.spec(self.key["workload"]).compiled_pass
        out: dict[str, Any] = {
            "flops_per_example": metric(
                self.model.flops_per_example(self.args, compiled_pass),
                "FLOP/example",
                f"analytic formula of model {key['model']!r} ({compiled_pass})",
            )
        }
        compiled = workload.compiler_flops()
        if compiled:
            per_call = workload.steps_per_call
            out["xla_flops_per_example"] = metric(
                compiled / key["batch_size"],
                "FLOP/example",
                "XLA cost_analysis() of the compiled step / batch_size; a cross-check only "
                "(it misses library calls such as GPU convolutions)"
                + (
                    f"; steps_per_call={per_call}: of one step's lowered HLO"
                    if per_call > 1
                    else ""
                ),
            )
        else:
            out["xla_flops_per_example"] = unavailable(
                f"no compiler cost analysis from the {key['framework']} backend", "FLOP/example"
            )
        # float32 may run as TF32 on GPUs: the peak is the one of the precision in effect.
        settings = backend.matmul_settings(key["device"])
        in_effect = matmul_precision(
            key["precision"], key["device"], settings, workload.device_name
        )
        out["matmul_precision"] = in_effect
        if workload.device_name == "cpu":
            out["peak_flops_per_s"] = cpu_peak(backend, key["precision"])
        else:
            out["peak_flops_per_s"] = mfu_peak(workload.device_name, in_effect)
        return out


@functools.cache
def cpu_peak(backend: Any, precision: str) -> dict[str, Any]:
    """Calibrated once per worker with the framework's own matmul: a CPU has no datasheet peak
    its kernels reach, and numpy's BLAS may be slower or faster than the framework's."""
    best: dict[str, Any] = unavailable("no calibration ran", "FLOP/s")
    for n in CALIBRATION_SIZES:
        try:
            matmul = backend.calibration_matmul(precision, n)
        except Exception as exc:
            return unavailable(f"calibration matmul failed: {type(exc).__name__}: {exc}", "FLOP/s")
        found = calibrate_cpu_peak(precision, matmul, n=n, repeats=5)
        if (value_of(found) or 0) > (value_of(best) or 0):
            best = found
    if "value" in best:
        best["method"] += f" (fastest of sizes {', '.join(map(str, CALIBRATION_SIZES))})"
    return best

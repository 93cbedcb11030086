"""Measure a predict cell: the shared timed-steps measurement of a forward pass, its per-batch
latency, and its predictions on the run's evaluation set against the reference (parity)."""

from __future__ import annotations

from typing import Any

from bench.backends.parity import ParitySetError
from bench.backends.workload import Workload
from bench.metrics import unavailable
from bench.workloads.cell.context import CellContext
from bench.workloads.cell.message import CellMessage
from bench.workloads.cell.offline import OfflineCell

PARITY_UNITS = {"parity_max_abs": "abs difference", "parity_mean_abs": "abs difference"}


def measure(backend: Any, msg: CellMessage) -> dict[str, Any]:
    ctx = CellContext.open(msg)
    # The run's shared weights and evaluation set, read (or made, by the first worker) before
    # the clock of time-to-first-result starts: they are the run's, not this cell's.
    shared, why = parity_set(backend, ctx)
    if shared is not None:
        ctx.with_weights(shared.weights)
    cell = OfflineCell(backend, ctx)
    try:
        workload = cell.build()
    except ParitySetError as exc:
        # A model whose twins name their weights differently: the cell is still measured,
        # from its own initialisation, and says why it has no parity.
        shared, why = None, f"the run's shared weights do not load: {exc}"[:400]
        ctx.with_weights(None)
        workload = cell.build()
    found = cell.run()
    metrics = found["metrics"]
    metrics["latency_per_batch_s"] = _latency(metrics["step_time_s"], workload.steps_per_call)
    # After every timed measurement: the evaluation set runs through the compiled step.
    metrics.update(parity_metrics(workload, shared, why, ctx.req.spec.task))
    cell.profile(found)
    return found


def _latency(steps: dict[str, Any], per_call: int) -> dict[str, Any]:
    how = "step time of one batch prediction, synced"
    if per_call > 1:
        # K batches come back together: a share of the call, not one request's latency.
        how = (
            f"call time / steps_per_call={per_call}, synced: {per_call} batches finish "
            "together, so this is each batch's share of the call, not one batch's latency"
        )
    return {"unit": "s", "method": how, "p50": steps["p50"], "p99": steps["p99"]}


def parity_set(backend: Any, ctx: CellContext) -> tuple[Any, str]:
    """The run's parity set for this cell's model, or None and why there is none."""
    from bench.backends.parity import shared_set
    from bench.measure.parity import EVAL_EXAMPLES

    msg = ctx.msg
    examples = msg.measure.get("parity_examples", EVAL_EXAMPLES)
    if not examples:
        return None, "measure.parity_examples is 0"
    if not msg.run_dir:
        return None, "no run folder to hold the shared weights and reference"
    if msg.processes > 1:
        return None, "not measured on multi-host cells"
    if not hasattr(backend, "init_weights") or not hasattr(backend, "reference_outputs"):
        return None, f"the {ctx.key['framework']} backend provides no shared weights"
    try:
        return shared_set(msg.run_dir, ctx.req, backend, ctx.key["framework"], examples), ""
    except Exception as exc:
        return None, f"shared parity set unavailable: {type(exc).__name__}: {exc}"[:400]


def parity_metrics(
    workload: Workload, shared: Any, why: str, task: str
) -> dict[str, dict[str, Any]]:
    """The cell's predictions on the evaluation set against the reference (parity metrics),
    or each metric unavailable with the reason; a failure here never fails the cell."""
    from bench.measure.parity import parity_metrics as compare

    names = [*PARITY_UNITS, *(["top1_agreement"] if task == "classification" else [])]
    if shared is not None:
        try:
            outputs = workload.predict_eval(shared.features)
            return compare(outputs, shared.reference, task, shared.describe())
        except NotImplementedError as exc:
            why = str(exc)
        except Exception as exc:
            why = f"evaluation-set prediction failed: {type(exc).__name__}: {exc}"[:400]
    return {n: unavailable(why, PARITY_UNITS.get(n, "fraction")) for n in names}

"""Prediction parity: how far a cell's predictions are from the float32 CPU reference.

Pure numpy, no framework: every backend (JAX, TensorFlow, LiteRT) calls ``parity_metrics`` with
its predictions on the run's fixed evaluation set (``bench.backends.parity``), and the result
goes into the cell record as three metrics registered in ``bench.metrics``:

- ``parity_max_abs``: the largest absolute difference of any output (logit or regression
  target) of any example, in the model's output units;
- ``parity_mean_abs``: the mean absolute difference over every output of every example;
- ``top1_agreement`` (classification only): the share of examples whose arg-max class is the
  reference's. A tie in the reference (two equal logits) is broken the same way on both sides
  by numpy's first-index rule, so a bit-identical output always agrees.

The reference is itself a prediction, so these say how far a precision, a framework or a
converter moves the outputs, not whether either is right (that is training's business).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.metrics import metric

# How many examples the evaluation set holds, and the seed offset that keeps it apart from the
# cells' own batches (those use the scenario's seed + 0, 1, ...).
EVAL_EXAMPLES = 256
EVAL_SEED_OFFSET = 7919

# What every parity metric's method says, completed with what was compared.
METHOD = "predictions on the run's fixed evaluation set vs the float32 CPU reference"


class ParityError(ValueError):
    """Predictions that cannot be compared with the reference (wrong shape, wrong count)."""


def parity_metrics(
    outputs: Any, reference_outputs: Any, task: str, how: str = ""
) -> dict[str, dict[str, Any]]:
    """The parity metrics of ``outputs`` against ``reference_outputs`` (both ``[N, outputs]``).

    ``task`` is the model's ``DataSpec.task``; ``top1_agreement`` is computed for
    ``classification`` only. ``how`` is appended to each metric's method (e.g. which framework
    wrote the reference). Outputs are compared in float64 so that the comparison adds no error
    of its own; non-finite predictions give an infinite max difference and the NaN count is in
    the method, so a broken cell never reads as agreeing.
    """
    out = np.asarray(outputs, dtype=np.float64)
    ref = np.asarray(reference_outputs, dtype=np.float64)
    if out.shape != ref.shape:
        raise ParityError(
            f"predictions of shape {out.shape} cannot be compared with the reference's "
            f"{ref.shape} (same evaluation set, same outputs expected)"
        )
    if out.ndim != 2 or out.shape[0] == 0:
        raise ParityError(f"expected [examples, outputs] predictions, got shape {out.shape}")
    suffix = f"; {how}" if how else ""
    n = out.shape[0]
    diff = np.abs(out - ref)
    bad = int(np.count_nonzero(~np.isfinite(out)))
    if bad:
        # NaN compares false with everything: say so instead of letting max() hide it.
        diff = np.where(np.isfinite(diff), diff, np.inf)
        suffix += f"; {bad} non-finite prediction(s)"
    found = {
        "parity_max_abs": metric(
            float(diff.max()),
            "abs difference",
            f"max over {n} examples of {METHOD}{suffix}",
            examples=n,
        ),
        "parity_mean_abs": metric(
            float(diff.mean()),
            "abs difference",
            f"mean over {n} examples of {METHOD}{suffix}",
            examples=n,
        ),
    }
    if task == "classification":
        agree = np.argmax(out, axis=1) == np.argmax(ref, axis=1)
        if bad:
            agree &= np.all(np.isfinite(out), axis=1)
        found["top1_agreement"] = metric(
            float(np.mean(agree)),
            "fraction",
            f"share of {n} examples whose arg-max class equals the reference's ({METHOD}{suffix})",
            examples=n,
        )
    return found

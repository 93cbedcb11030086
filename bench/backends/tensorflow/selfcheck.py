"""``bench selfcheck`` for TensorFlow: bench's timed loop through the TF backend's own step and
sync against a plain ``tf.function`` + ``GradientTape`` loop over the same Keras model,
optimizer and batch, in one process, interleaved (``bench.measure.overhead``).

The plain loop is what a user would write: one ``tf.function`` train step, called with the
batch, its loss read back to the host each step (the same sync bench uses on CPU). Bench's loop
is ``Timer`` driving ``TfWorkload.step`` and ``TfWorkload.sync``, exactly as a cell does. Run as
``python -m bench.backends.tensorflow.selfcheck`` so TensorFlow stays out of the CLI.
"""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace
from typing import Any

from bench.measure.overhead import interleaved, main, timer_rate

# A dense MLP train step (no embeddings: their sparse updates would dominate), batch 256;
# ``--size`` sets its width and so the step time (256: 8.7 ms measured on the shared 2-core VM
# at a load average of ~8; pick a size for ~1 ms on the machine checked).
CELL = {
    "model": "mlp",
    "workload": "train",
    "framework": "tensorflow",
    "device": "cpu",
    "batch_size": 256,
    "precision": "float32",
    "input": "synthetic",
}
OPTIMIZER = SimpleNamespace(name="sgd", learning_rate=0.01, momentum=0.9, weight_decay=0.0)


def measure(steps: int, trials: int, size: int) -> dict[str, Any]:
    import tensorflow as tf

    from bench.axes import CellKey
    from bench.backends.tensorflow import backend
    from bench.backends.workload import BuildRequest
    from bench.modeldef import load_model

    key = CellKey.from_dict(CELL)
    model_def = load_model(key["model"])
    args = model_def.Args(hidden=[size, size], num_categorical=0)
    spec = model_def.data_spec(args)
    backend.setup("cpu", None)
    req = BuildRequest(key, model_def, args, spec, OPTIMIZER, seed=0, training=True)
    workload = backend.build(req)
    model, optimizer, task = workload.model, workload.optimizer, spec.task
    batch = workload.batches()  # the synthetic batch, kept on the device

    @tf.function
    def plain_step(batch: dict) -> tf.Tensor:
        features = {k: v for k, v in batch.items() if k != "label"}
        with tf.GradientTape() as tape:
            loss = backend.loss_fn(task, model(features, training=True), batch["label"])
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    for _ in range(5):  # trace and warm both
        plain_step(batch).numpy()
        workload.sync(workload.step())

    def bare() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            plain_step(batch).numpy()
        return steps / (time.perf_counter() - start)

    def timed() -> float:
        return timer_rate(workload.step, workload.sync, steps)

    return {
        "framework": "tensorflow",
        **interleaved(bare, timed, trials),
        "steps_per_trial": steps,
        "method": (
            "median over interleaved trials of steps / wall time; plain tf.function + "
            "GradientTape loop vs bench's Timer over the TF backend's step and sync, same model"
        ),
        "version": tf.__version__,
        "device": "cpu",
        "model": f"mlp hidden [{size}, {size}], batch 256, float32",
    }


if __name__ == "__main__":
    sys.exit(
        main(
            measure,
            "python -m bench.backends.tensorflow.selfcheck",
            "MLP width: sets the step time",
        )
    )

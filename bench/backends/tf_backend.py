"""TensorFlow backend (Keras 3 on the TF backend): placement, tf.function steps, sync, memory.

Imported only inside a TensorFlow worker process. Every step runs through a
``tf.distribute`` strategy: ``OneDeviceStrategy`` on a CPU or GPU, ``TPUStrategy`` on a TPU VM,
so the same step code serves each device. Compile time is the first call of the
``tf.function`` (trace + graph optimisation, plus XLA when ``xla`` is set, plus that one step);
a retrace during the timed phase shows in the function's tracing count.

``steps_per_call`` K > 1 loops K steps (``tf.range``) inside the replica function, so one
``tf.function`` call (and, on a TPU, one device program) runs K steps, as Keras'
``steps_per_execution`` does.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf

from bench.backends.workload import (
    BuildRequest,
    Workload,
    call_inputs,
    host_batches,
    short_reason,
    stacks_batches,
    steps_per_call,
)
from bench.metrics import metric, unavailable

_TPU_STRATEGY: Any = None


def version() -> str:
    return tf.__version__


def probe(device: str) -> tuple[bool, str, list[dict[str, Any]]]:
    """Whether TensorFlow sees a device of this kind, why not, and what it sees."""
    if device == "tpu":
        try:
            _tpu_strategy()
        except Exception as exc:  # the resolver raises several types when no TPU is attached
            detail = short_reason(exc, type(exc).__name__)
            return False, f"no TPU visible to tensorflow ({detail})", []
        return (
            True,
            "",
            [{"name": d.name, "kind": "TPU"} for d in tf.config.list_logical_devices("TPU")],
        )
    kind = device.upper()
    found = tf.config.list_physical_devices(kind)
    if not found:
        return False, f"no {kind} visible to tensorflow", []
    seen = []
    for dev in found:
        details = tf.config.experimental.get_device_details(dev) if kind == "GPU" else {}
        seen.append({"name": dev.name, "kind": details.get("device_name", kind)})
    return True, "", seen


def _tpu_strategy() -> Any:
    global _TPU_STRATEGY
    if _TPU_STRATEGY is None:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        _TPU_STRATEGY = tf.distribute.TPUStrategy(resolver)
    return _TPU_STRATEGY


def device_name(device: str) -> str:
    """The name peak-FLOPs and price tables know: the GPU's model, the TPU's type, or "cpu"."""
    if device == "gpu":
        details = tf.config.experimental.get_device_details(
            tf.config.list_physical_devices("GPU")[0]
        )
        return details.get("device_name", "GPU")
    if device == "tpu":
        # TF names TPU devices only "TPU"; TPU VMs carry their type (e.g. v5litepod-8) in env.
        kind = os.environ.get("TPU_ACCELERATOR_TYPE") or os.environ.get("ACCELERATOR_TYPE") or ""
        generation = kind.split("-")[0]
        # Spell it as JAX's device_kind does, which the peak and price tables match.
        return {"v5litepod": "TPU v5 lite", "v5e": "TPU v5 lite"}.get(
            generation, f"TPU {generation}"
        )
    return "cpu"


def make_strategy(device: str) -> Any:
    if device == "tpu":
        return _tpu_strategy()
    return tf.distribute.OneDeviceStrategy(f"/{device.upper()}:0")


def calibration_matmul(precision: str, n: int) -> Any:
    """One n x n x n matmul through TensorFlow's CPU kernels, synced by a scalar host read."""
    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    with tf.device("/CPU:0"):
        a = tf.ones((n, n), dtype)

    @tf.function
    def matmul() -> tf.Tensor:
        return tf.reduce_sum(tf.cast(tf.linalg.matmul(a, a)[0, :1], tf.float32))

    return lambda: matmul().numpy()


def make_optimizer(opt: Any) -> keras.optimizers.Optimizer:
    """The optimizer optax builds for the same settings (see jax_backend.make_optimizer)."""
    if opt.name == "sgd":
        return keras.optimizers.SGD(
            opt.learning_rate, momentum=opt.momentum, weight_decay=opt.weight_decay or None
        )
    if opt.name == "adam":
        return keras.optimizers.Adam(opt.learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    return keras.optimizers.AdamW(
        opt.learning_rate, weight_decay=opt.weight_decay, beta_1=0.9, beta_2=0.999, epsilon=1e-7
    )


def loss_fn(task: str, outputs: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    outputs = tf.cast(outputs, tf.float32)
    if task == "classification":
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=outputs)
        return tf.reduce_mean(per_example)
    return tf.reduce_mean(tf.square(outputs - labels))


def set_precision(precision: str) -> None:
    # Keras fixes a layer's dtype policy when the layer is built: set it before building.
    keras.mixed_precision.set_global_policy(
        "mixed_bfloat16" if precision == "bfloat16" else "float32"
    )


class TfWorkload(Workload):
    def __init__(self, req: BuildRequest):
        key = req.key
        self.device = key["device"]
        self.workload = key["workload"]
        self.strategy = make_strategy(self.device)
        self.device_name = device_name(self.device)
        set_precision(key["precision"])
        keras.utils.set_random_seed(req.seed)
        hosts = host_batches(req)
        task = req.spec.task
        if self.device == "gpu":
            tf.config.experimental.reset_memory_stats("GPU:0")

        with self.strategy.scope():
            self.model = req.model.build_tf(req.args)
            features0 = {k: tf.constant(v) for k, v in hosts[0].items() if k != "label"}
            self.model(features0, training=False)  # creates the variables
            self.param_count = int(sum(np.prod(v.shape) for v in self.model.trainable_variables))
            if self.workload == "train":
                self.optimizer = make_optimizer(req.optimizer)
                self.optimizer.build(self.model.trainable_variables)

        self.steps_per_call = per_call = steps_per_call(key)
        stacked = stacks_batches(key)
        inputs = call_inputs(req, hosts)
        if key["input"] == "synthetic":
            # Made once and kept on the device: the upper bound with no input cost.
            with tf.device(self._device_name()):
                on_device = {k: tf.identity(tf.constant(v)) for k, v in inputs[0].items()}
            self._next_batch = lambda: on_device
        else:
            cycle = itertools.cycle(inputs)
            self._next_batch = lambda: {k: tf.convert_to_tensor(v) for k, v in next(cycle).items()}

        model, strategy = self.model, self.strategy
        replicas = strategy.num_replicas_in_sync

        def train_replica(batch: dict) -> tf.Tensor:
            features = {k: v for k, v in batch.items() if k != "label"}
            with tf.GradientTape() as tape:
                loss = loss_fn(task, model(features, training=True), batch["label"])
                scaled = loss / replicas  # gradients are summed across replicas
            grads = tape.gradient(scaled, model.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        def predict_replica(batch: dict) -> tf.Tensor:
            features = {k: v for k, v in batch.items() if k != "label"}
            return model(features, training=False)

        one_step = train_replica if self.workload == "train" else predict_replica

        def repeated_replica(batches: dict) -> tf.Tensor:
            # K steps in one call; outputs (losses or predictions) stacked on a leading K axis.
            outputs = tf.TensorArray(tf.float32, size=per_call)
            for i in tf.range(per_call):
                batch = {k: v[i] for k, v in batches.items()} if stacked else batches
                outputs = outputs.write(i, tf.cast(one_step(batch), tf.float32))
            return outputs.stack()

        replica_fn = one_step if per_call == 1 else repeated_replica
        jit = bool(key.get("xla", False))

        @tf.function(jit_compile=jit, reduce_retracing=False)
        def step_fn(batch: dict) -> Any:
            return strategy.run(replica_fn, args=(batch,))

        self._fn = step_fn
        start = time.perf_counter()
        self.sync(step_fn(self._next_batch()))
        self.compile_s = time.perf_counter() - start
        steps = "one step" if per_call == 1 else f"one call of {per_call} steps (tf.range loop)"
        self.compile_method = (
            f"first call of tf.function(jit_compile={jit}): trace + graph optimisation"
            f"{' + XLA compile' if jit else ''} + {steps}, wall clock"
        )

    def _device_name(self) -> str:
        return "/TPU:0" if self.device == "tpu" else f"/{self.device.upper()}:0"

    def step(self) -> Any:
        return self._fn(self._next_batch())

    def sync(self, out: Any) -> None:
        if self.device != "cpu":
            # Waits for every pending kernel on the accelerators, not only those behind `out`.
            tf.test.experimental.sync_devices()
        for local in self.strategy.experimental_local_results(out):
            local.numpy()  # a host read of the output: its step has finished

    def check_output(self, out: Any) -> str | None:
        for local in self.strategy.experimental_local_results(out):
            arr = np.asarray(local.numpy(), dtype=np.float32)
            if not np.all(np.isfinite(arr)):
                what = "loss" if self.workload == "train" else "predictions"
                return f"non-finite {what} ({arr.ravel()[:3].tolist()}...)"
        return None

    def trace_count(self) -> int:
        return int(self._fn.experimental_get_tracing_count())

    def memory(self) -> dict[str, Any]:
        if self.device == "cpu":
            # get_memory_info("CPU:0") answers, but with zeros: TF does not track host allocations.
            reason = "tensorflow does not track CPU device memory; see peak_host_rss_bytes"
            return {"peak_device_memory_bytes": unavailable(reason, "bytes")}
        name = {"gpu": "GPU:0", "tpu": "TPU:0"}[self.device]
        try:
            info = tf.config.experimental.get_memory_info(name)
        except (ValueError, tf.errors.OpError) as exc:
            reason = f"tensorflow get_memory_info({name!r}) unsupported: {str(exc).splitlines()[0][:100]}"
            return {"peak_device_memory_bytes": unavailable(reason, "bytes")}
        method = "tf.config.experimental.get_memory_info peak (reset at cell start)"
        return {"peak_device_memory_bytes": metric(int(info["peak"]), "bytes", method)}


def build(req: BuildRequest) -> Workload:
    return TfWorkload(req)

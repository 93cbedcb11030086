"""TensorFlow backend (a ``bench.backends.protocol.Backend``; Keras 3 on TF): placement,
tf.function steps, sync, memory.

Imported only inside a TensorFlow worker process. Every step runs through a
``tf.distribute`` strategy: ``OneDeviceStrategy`` on one CPU or GPU, ``MirroredStrategy`` over
several (``replicas``; on CPUs over logical devices split from the host), ``TPUStrategy`` on a
TPU VM or legacy node (a device assignment picks fewer replicas than cores), and
``MultiWorkerMirroredStrategy`` in a multi-host run, so the same step code serves each device.
The global batch is cut into one slice per replica (``shard_batch``). Compile time is the first call of the
``tf.function`` (trace + graph optimisation, plus XLA when ``xla`` is set, plus that one step);
a retrace during the timed phase shows in the function's tracing count.

``steps_per_call`` K > 1 loops K steps (``tf.range``) inside the replica function, so one
``tf.function`` call (and, on a TPU, one device program) runs K steps, as Keras'
``steps_per_execution`` does.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf

from bench.backends.parity import eval_calls, join_outputs, keras_name, match_names
from bench.backends.replicas import BatchSplitError
from bench.backends.tensorflow import SPEC as SPEC  # the protocol's SPEC, declared in __init__
from bench.backends.tensorflow import sync as device_sync
from bench.backends.tensorflow.feed import open_batches
from bench.backends.workload import (
    ENV_CPU_DEVICES,
    ENV_TPU_RESOLVER,
    BuildRequest,
    Split,
    Workload,
    host_batches,
    paid_devices,
    plan_split,
    short_reason,
    stacks_batches,
    steps_per_call,
)
from bench.inputs.synthetic import make_batch
from bench.metrics import metric, unavailable
from bench.platform.cluster import Cluster
from bench.platform.tpu import device_name as tpu_device_name

# The TPU system is initialised once per process: resolver, topology, and a strategy per
# replica count (all cores under "all").
_TPU: dict[Any, Any] = {}
_MIRRORED: dict[tuple[str, int], Any] = {}
_MULTI_WORKER: Any = None
_CLUSTER: Cluster | None = None


def setup(device: str, cluster: Cluster | None) -> None:
    """Before TensorFlow initialises its devices: split the CPU into logical devices, or join a
    multi-worker job (MultiWorkerMirroredStrategy must exist before any other TF op runs)."""
    global _MULTI_WORKER, _CLUSTER
    if cluster is not None and cluster.num_processes > 1:
        if device == "tpu":
            raise RuntimeError(
                "TensorFlow drives a multi-host TPU slice with TPUStrategy from the slice's "
                "resolver, not MultiWorkerMirroredStrategy; run it single-process"
            )
        if _MULTI_WORKER is None:
            os.environ["TF_CONFIG"] = json.dumps(cluster.tf_config())
            _MULTI_WORKER = tf.distribute.MultiWorkerMirroredStrategy()
            _CLUSTER = cluster
        return
    count = int(os.environ.get(ENV_CPU_DEVICES) or 0)
    if device == "cpu" and count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        if not tf.config.get_logical_device_configuration(cpu):
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
            )


def teardown() -> None:
    """Nothing to leave: a multi-worker job's collectives end with the worker process."""


def all_gather_text(text: str) -> list[str]:
    """Every worker's ``text``, in process order, through the strategy's all-reduce: each
    worker writes its bytes into its own row of a zero matrix and the SUM is every row (each
    of a worker's local replicas adds the same row, hence the division)."""
    assert _MULTI_WORKER is not None and _CLUSTER is not None
    procs, pid = _CLUSTER.num_processes, _CLUSTER.process_id
    local = _MULTI_WORKER.num_replicas_in_sync // procs
    data = np.frombuffer(text.encode(), np.uint8).astype(np.int32)
    lengths = np.zeros(procs, np.int32)
    lengths[pid] = data.size
    lengths = _sum_over_replicas(lengths) // local
    rows = np.zeros((procs, int(lengths.max())), np.int32)
    rows[pid, : data.size] = data
    rows = _sum_over_replicas(rows) // local
    return [bytes(rows[i, : lengths[i]].astype(np.uint8)).decode() for i in range(procs)]


def _sum_over_replicas(arr: np.ndarray) -> np.ndarray:
    strategy = _MULTI_WORKER
    value = strategy.experimental_distribute_values_from_function(lambda ctx: tf.constant(arr))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None).numpy()


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


def _tpu_strategy(replicas: int | None = None) -> Any:
    """TPUStrategy over all cores, or over the first ``replicas`` through a device assignment.
    A legacy node's resolver arguments come from the runner; on a TPU VM, tpu="local"."""
    if not _TPU:
        target = json.loads(os.environ.get(ENV_TPU_RESOLVER) or '{"tpu": "local"}')
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            **{k: v for k, v in target.items() if v}
        )
        tf.config.experimental_connect_to_cluster(resolver)
        topology = tf.tpu.experimental.initialize_tpu_system(resolver)
        _TPU.update(resolver=resolver, topology=topology, all=tf.distribute.TPUStrategy(resolver))
    if replicas is None or replicas == _TPU["all"].num_replicas_in_sync:
        return _TPU["all"]
    if replicas not in _TPU:
        assignment = tf.tpu.experimental.DeviceAssignment.build(
            _TPU["topology"], num_replicas=replicas
        )
        _TPU[replicas] = tf.distribute.TPUStrategy(
            _TPU["resolver"], experimental_device_assignment=assignment
        )
    return _TPU[replicas]


def device_name(device: str) -> str:
    """The name peak-FLOPs and price tables know: the GPU's model, the TPU's type, or "cpu"."""
    if device == "gpu":
        details = tf.config.experimental.get_device_details(
            tf.config.list_physical_devices("GPU")[0]
        )
        return details.get("device_name", "GPU")
    if device == "tpu":
        # TF names TPU devices only "TPU"; TPU VMs carry their type (e.g. v5litepod-8) in env,
        # and the runner sets it from the API for a legacy node.
        kind = os.environ.get("TPU_ACCELERATOR_TYPE") or os.environ.get("ACCELERATOR_TYPE")
        return tpu_device_name(kind)
    return "cpu"


def available_replicas(device: str) -> int:
    """Devices a cell may spread over: every replica of the multi-worker job, every TPU core,
    or every (logical) local device of the kind."""
    if _MULTI_WORKER is not None:
        return int(_MULTI_WORKER.num_replicas_in_sync)
    if device == "tpu":
        return int(_tpu_strategy().num_replicas_in_sync)
    return len(tf.config.list_logical_devices(device.upper()))


def make_strategy(device: str, split: Split) -> Any:
    """The strategy that runs one cell's step on ``split.replicas`` devices."""
    if _MULTI_WORKER is not None:
        if split.replicas != _MULTI_WORKER.num_replicas_in_sync:
            raise BatchSplitError(
                "TensorFlow's MultiWorkerMirroredStrategy runs on every local GPU (or the "
                f"CPU) of every worker: replicas must be all "
                f"({_MULTI_WORKER.num_replicas_in_sync}), not {split.replicas}"
            )
        return _MULTI_WORKER
    if device == "tpu":
        return _tpu_strategy(split.replicas)
    kind = device.upper()
    if split.replicas == 1:
        return tf.distribute.OneDeviceStrategy(f"/{kind}:0")
    # One strategy per device set for the worker's life: each new one would open another
    # collective group (the runner already gives each replica count its own worker).
    if (kind, split.replicas) not in _MIRRORED:
        devices = [f"/{kind}:{i}" for i in range(split.replicas)]
        _MIRRORED[kind, split.replicas] = tf.distribute.MirroredStrategy(devices)
    return _MIRRORED[kind, split.replicas]


def strategy_name(strategy: Any) -> str:
    # MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy: say the public name.
    return "MultiWorkerMirroredStrategy" if strategy is _MULTI_WORKER else type(strategy).__name__


def shard_batch(strategy: Any, batch: dict[str, np.ndarray], stacked: bool = False) -> Any:
    """One slice of the GLOBAL batch per replica, on that replica's device: replica i gets rows
    [i * b, (i + 1) * b) with b = batch / replicas (a worker builds only its own replicas').
    ``stacked`` inputs hold K batches on a leading axis (steps_per_call): slice the next one."""
    n = strategy.num_replicas_in_sync
    axis = 1 if stacked else 0
    rows = next(iter(batch.values())).shape[axis] // n
    devices = strategy.extended.worker_devices
    on_tpu = isinstance(strategy, tf.distribute.TPUStrategy)

    def value_fn(ctx: Any) -> dict[str, tf.Tensor]:
        i = ctx.replica_id_in_sync_group
        cut = slice(i * rows, (i + 1) * rows)
        part = {k: v[:, cut] if stacked else v[cut] for k, v in batch.items()}
        if on_tpu:  # TPUStrategy feeds each core from the host itself
            return {k: tf.constant(v) for k, v in part.items()}
        with tf.device(devices[i % len(devices)]):
            return {k: tf.identity(tf.constant(v)) for k, v in part.items()}

    return strategy.experimental_distribute_values_from_function(value_fn)


def calibration_matmul(precision: str, n: int) -> Any:
    """One n x n x n matmul through TensorFlow's CPU kernels, synced by a scalar host read."""
    dtype = {"bfloat16": tf.bfloat16, "float16": tf.float16}.get(precision, tf.float32)
    with tf.device("/CPU:0"):
        a = tf.ones((n, n), dtype)

    @tf.function
    def matmul() -> tf.Tensor:
        return tf.reduce_sum(tf.cast(tf.linalg.matmul(a, a)[0, :1], tf.float32))

    return lambda: matmul().numpy()


def make_optimizer(opt: Any) -> keras.optimizers.Optimizer:
    """The optimizer optax builds for the same settings (see the JAX backend's make_optimizer)."""
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


# Keras dtype policy per precision: compute in the low precision, variables in float32.
POLICIES = {"bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def set_precision(precision: str) -> None:
    # Keras fixes a layer's dtype policy when the layer is built: set it before building.
    keras.mixed_precision.set_global_policy(POLICIES.get(precision, "float32"))


def load_shared_weights(model: Any, weights: Any) -> None:
    """Assign the run's shared weights (canonical names, bench.backends.parity) to ``model``'s
    variables, matched by name and shape."""
    by_name = {keras_name(v.path): v for v in model.weights}
    match_names(weights, {k: tuple(v.shape) for k, v in by_name.items()}, "keras model")
    for name, variable in by_name.items():
        variable.assign(np.asarray(weights[name], dtype=np.float32))


def _float32_model(req: BuildRequest, features: Any) -> Any:
    set_precision("float32")
    keras.utils.set_random_seed(req.seed)
    with tf.device("/CPU:0"):
        model = req.model.build_tf(req.args)
        model({k: tf.constant(v) for k, v in features.items()}, training=False)
    return model


def init_weights(req: BuildRequest) -> dict[str, np.ndarray]:
    """The model's float32 variables initialised from ``req.seed``, by canonical name (the
    run's shared weight set when this worker is the first: bench.backends.parity)."""
    features = {k: v for k, v in make_batch(req.spec, 1, req.seed).items() if k != "label"}
    model = _float32_model(req, features)
    return {keras_name(v.path): np.asarray(v) for v in model.weights}


# Examples per call of the reference prediction: bounds its memory for large models.
REFERENCE_BATCH = 32


def reference_outputs(req: BuildRequest, weights: Any, features: Any) -> np.ndarray:
    """float32 inference on the CPU (whatever this worker's device) with ``weights``."""
    calls = eval_calls(features, REFERENCE_BATCH)
    model = _float32_model(req, calls[0])
    load_shared_weights(model, weights)
    forward = tf.function(lambda f: model(f, training=False))
    with tf.device("/CPU:0"):
        outputs = [forward({k: tf.constant(v) for k, v in call.items()}).numpy() for call in calls]
    return join_outputs(outputs, len(next(iter(features.values()))))


def memory_metrics(device: str, gpus: list[str]) -> dict[str, Any]:
    """Peak device memory since the last reset (``reset_memory_stats``) of ``gpus`` (names
    like ``GPU:0``), or the TPU's; unavailable on the CPU, which TF does not track."""
    if device == "cpu":
        # get_memory_info("CPU:0") answers, but with zeros: TF does not track host allocations.
        reason = "tensorflow does not track CPU device memory; see peak_host_rss_bytes"
        return {"peak_device_memory_bytes": unavailable(reason, "bytes")}
    names = gpus if device == "gpu" else ["TPU:0"]
    peaks = []
    for name in names:
        try:
            peaks.append(int(tf.config.experimental.get_memory_info(name)["peak"]))
        except (ValueError, tf.errors.OpError) as exc:
            reason = f"tensorflow get_memory_info({name!r}) unsupported: {str(exc).splitlines()[0][:100]}"
            return {"peak_device_memory_bytes": unavailable(reason, "bytes")}
    across = f", the largest of {len(peaks)} devices" if len(peaks) > 1 else ""
    method = f"tf.config.experimental.get_memory_info peak (reset at cell start){across}"
    return {"peak_device_memory_bytes": metric(max(peaks), "bytes", method)}


class TfWorkload(Workload):
    def __init__(self, req: BuildRequest):
        key = req.key
        self.device = key["device"]
        self.training = req.training
        processes = _CLUSTER.num_processes if _CLUSTER else 1
        self.split = split = plan_split(key, available_replicas(self.device), processes)
        self.strategy = make_strategy(self.device, split)
        self.device_name = device_name(self.device)
        self.sync_method = device_sync.method(self.device)
        self.device_count = paid_devices(self.device, split)
        self.parallel_method = (
            f"tf.distribute.{strategy_name(self.strategy)} over {split.replicas} replica(s), "
            f"{processes} worker(s); loss / replicas, gradients summed by the optimizer"
        )
        set_precision(key["precision"])
        keras.utils.set_random_seed(req.seed)
        hosts = host_batches(req)  # the global batch: shard_batch hands each replica its rows
        # One device and no cluster: the batch goes in whole, as before data parallelism.
        distribute = split.replicas > 1 or processes > 1 or self.device == "tpu"
        self._gpus = [f"GPU:{i}" for i in range(split.local_replicas)]
        if self.device == "gpu":
            for gpu in self._gpus:
                tf.config.experimental.reset_memory_stats(gpu)
        self._build_model(req, hosts)
        self.steps_per_call = steps_per_call(key)
        stacked = stacks_batches(req)
        self._open_input(req, hosts, distribute, stacked)
        self._jit = bool(key.get("xla", False))
        scaling = self.training and key["precision"] == "float16"
        self._fn = self._step_function(self._replica_step(req.spec.task, scaling), stacked)
        self._compile()

    def _build_model(self, req: BuildRequest, hosts: list[dict]) -> None:
        """The model's variables (and the optimizer's, to train), under the strategy's scope
        so each replica holds its copy."""
        with self.strategy.scope():
            self.model = req.model.build_tf(req.args)
            features0 = {k: tf.constant(v) for k, v in hosts[0].items() if k != "label"}
            self.model(features0, training=False)  # creates the variables
            if req.weights is not None:
                load_shared_weights(self.model, req.weights)
            self.param_count = int(sum(np.prod(v.shape) for v in self.model.trainable_variables))
            if self.training:
                self.optimizer = make_optimizer(req.optimizer)
                if req.key["precision"] == "float16":
                    # Dynamic loss scaling (Keras' own): scale_loss before the gradient,
                    # apply_gradients unscales, skips non-finite steps and adapts the scale.
                    self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
                self.optimizer.build(self.model.trainable_variables)

    def _open_input(
        self, req: BuildRequest, hosts: list[dict], distribute: bool, stacked: bool
    ) -> None:
        """The cell's input: sliced per replica by the strategy, or host tensors the step
        copies to its one device (synthetic input: made once and kept there)."""
        if distribute:
            place = keep = functools.partial(shard_batch, self.strategy, stacked=stacked)
            device = None
        else:
            device = self._device_name()

            def place(batch: dict) -> dict:  # the step copies host tensors to its device
                return {k: tf.convert_to_tensor(v) for k, v in batch.items()}

            def keep(batch: dict) -> dict:  # synthetic: made once and kept on the device
                with tf.device(device):
                    return {k: tf.identity(tf.constant(v)) for k, v in batch.items()}

        self.batches = open_batches(req, hosts, place, keep, device)
        self._place = place
        self._spec = req.spec
        self._next_batch = self.batches

    def _replica_step(self, task: str, scaling: bool) -> Callable[[dict], tf.Tensor]:
        """One step on one replica's batch: a training step returning the loss, or a forward
        pass returning the predictions."""
        model = self.model
        replicas = self.strategy.num_replicas_in_sync

        def train_replica(batch: dict) -> tf.Tensor:
            features = {k: v for k, v in batch.items() if k != "label"}
            with tf.GradientTape() as tape:
                loss = loss_fn(task, model(features, training=True), batch["label"])
                scaled = loss / replicas  # gradients are summed across replicas
                if scaling:
                    scaled = self.optimizer.scale_loss(scaled)
            grads = tape.gradient(scaled, model.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        def predict_replica(batch: dict) -> tf.Tensor:
            features = {k: v for k, v in batch.items() if k != "label"}
            return model(features, training=False)

        return train_replica if self.training else predict_replica

    def _step_function(self, one_step: Callable[[dict], tf.Tensor], stacked: bool) -> Any:
        """The compiled call: ``one_step`` on every replica, ``steps_per_call`` times."""
        strategy, per_call = self.strategy, self.steps_per_call

        def repeated_replica(batches: dict) -> tf.Tensor:
            # K steps in one call; outputs (losses or predictions) stacked on a leading K axis.
            outputs = tf.TensorArray(tf.float32, size=per_call)
            for i in tf.range(per_call):
                batch = {k: v[i] for k, v in batches.items()} if stacked else batches
                outputs = outputs.write(i, tf.cast(one_step(batch), tf.float32))
            return outputs.stack()

        replica_fn = one_step if per_call == 1 else repeated_replica
        # Training on several replicas syncs gradients (a merge_call) in every step, which TF
        # refuses inside control flow in the replica function: there the K-step loop goes
        # around strategy.run instead, as Keras' steps_per_execution does. The call returns the
        # last step's losses (a NaN earlier on propagates into them).
        replicas = strategy.num_replicas_in_sync
        loop_outside = per_call > 1 and self.training and replicas > 1

        def step_at(batches: dict, i: tf.Tensor) -> tf.Tensor:
            return one_step({k: v[i] for k, v in batches.items()} if stacked else batches)

        @tf.function(jit_compile=self._jit, reduce_retracing=False)
        def step_fn(batch: dict) -> Any:
            if not loop_outside:
                return strategy.run(replica_fn, args=(batch,))
            for i in tf.range(per_call - 1):
                strategy.run(step_at, args=(batch, i))
            return strategy.run(step_at, args=(batch, tf.constant(per_call - 1)))

        return step_fn

    def _compile(self) -> None:
        """The first call, timed apart: tracing and compiling happen in it."""
        jit, per_call = self._jit, self.steps_per_call
        start = time.perf_counter()
        # Kept for the compiler's IR (program_text): the function is specialised to its input.
        self._example = self._next_batch()
        self.sync(self._fn(self._example))
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
        device_sync.sync(self.strategy, self.device, out)

    def infer(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        out = self._fn(self._place(batch))
        # .numpy() copies each replica's predictions to the host, waiting for them.
        return np.concatenate([r.numpy() for r in self.strategy.experimental_local_results(out)])

    def predict_eval(self, features: Any) -> np.ndarray:
        if self.training:
            raise NotImplementedError("parity is measured on forward passes (predict cells)")
        stacked = self.steps_per_call > 1
        outputs = []
        for call in eval_calls(features, self.split.global_batch, self.steps_per_call):
            # The step was traced with a label beside the features: zeros keep its signature,
            # so the evaluation set runs the very graph that was timed, with no retrace.
            rows = next(iter(call.values())).shape[: 2 if stacked else 1]
            if self._spec.task == "classification":
                call["label"] = np.zeros(rows, np.int32)
            else:
                call["label"] = np.zeros((*rows, self._spec.num_outputs), np.float32)
            out = self._fn(self._place(call))
            # Replicas hold consecutive rows of the batch; K stacked steps lead each result.
            parts = [r.numpy() for r in self.strategy.experimental_local_results(out)]
            outputs.append(np.concatenate(parts, axis=1 if stacked else 0))
        return join_outputs(outputs, len(next(iter(features.values()))))

    def check_output(self, out: Any) -> str | None:
        for local in self.strategy.experimental_local_results(out):
            arr = np.asarray(local.numpy(), dtype=np.float32)
            if not np.all(np.isfinite(arr)):
                what = "loss" if self.training else "predictions"
                return f"non-finite {what} ({arr.ravel()[:3].tolist()}...)"
        return None

    def trace_count(self) -> int:
        return int(self._fn.experimental_get_tracing_count())

    # A tf.function compiles (graph optimisation, and XLA with jit_compile) once per trace.
    compile_count_method = "traces of the step's tf.function (experimental_get_tracing_count)"
    trace_tool = "tf.profiler.experimental.start/stop (XSpace .xplane.pb)"

    def compile_count(self) -> int:
        return self.trace_count()

    def start_trace(self, folder: Path) -> None:
        tf.profiler.experimental.start(str(folder))

    def stop_trace(self) -> None:
        tf.profiler.experimental.stop()

    def trace_events(self, folder: Path) -> tuple[list[Any], str]:
        from bench.backends.tensorflow.trace import read_events, xplane_file

        return read_events(xplane_file(folder))

    def program_text(self) -> tuple[str, str]:
        if not self._jit:
            raise ValueError(
                "xla: false: TensorFlow runs the graph op by op, there is no XLA program"
            )
        ir = self._fn.experimental_get_compiler_ir(self._example)
        return ir(stage="optimized_hlo"), "program.hlo.txt"

    def memory(self) -> dict[str, Any]:
        return memory_metrics(self.device, self._gpus)

    def params(self) -> list[np.ndarray]:
        """The trained parameters, as numpy (replica 0's copy; for equivalence tests)."""
        return [v.numpy() for v in self.model.trainable_variables]


def build(req: BuildRequest) -> Workload:
    return TfWorkload(req)


def matmul_settings(device: str) -> dict[str, Any]:
    """What decides the precision of float32 matmuls (read by bench.measure.flops)."""
    enabled = bool(tf.config.experimental.tensor_float_32_execution_enabled())
    found: dict[str, Any] = {
        "tf32_allowed": enabled,
        "setting": f"tf.config.experimental.tensor_float_32_execution_enabled()={enabled}",
        "nvidia_tf32_override": os.environ.get("NVIDIA_TF32_OVERRIDE"),
    }
    if device == "gpu":
        gpu = tf.config.list_physical_devices("GPU")[0]
        found["compute_capability"] = tf.config.experimental.get_device_details(gpu).get(
            "compute_capability"
        )
    return found

"""JAX backend (a ``bench.backends.protocol.Backend``): devices, AOT-compiled steps, memory.

Imported only inside a JAX worker process. Steps are compiled ahead of time
(``jit(...).lower(...).compile()``), so compile time is measured on its own and the timed phase
cannot recompile: an AOT executable refuses inputs of another shape instead of retracing.

JAX always compiles through XLA, so the scenario's ``xla`` axis has nothing to switch here (the
scenario records it as true for JAX cells). ``steps_per_call`` K > 1 runs K steps in one
executable with ``jax.lax.scan``, so a small step is not bound by the ~50 us dispatch of a call.

Data parallelism (the ``replicas`` axis): a 1-D device mesh over ``data``, the batch sharded
along it and parameters, optimizer and model state replicated, compiled once with those
in/out shardings; XLA's SPMD partitioner inserts the gradient all-reduce. Multi-host: the mesh
spans every process's devices (``jax.distributed.initialize`` in ``setup``), each process
feeding its own rows of the global batch.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bench.backends.jax import SPEC as SPEC  # the protocol's SPEC, declared in __init__
from bench.backends.jax import cache as compile_cache
from bench.backends.jax import sync as device_sync
from bench.backends.jax.feed import open_batches
from bench.backends.parity import eval_calls, flatten, join_outputs, match_names, unflatten
from bench.backends.workload import (
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
from bench.platform.cluster import Cluster

PLATFORMS = {"cpu": "cpu", "gpu": "gpu", "tpu": "tpu"}
DATA_AXIS = "data"
_DISTRIBUTED = False

# Every XLA compile in this process, counted from JAX's own monitoring event (one per backend
# compile: a jit cache miss, an AOT compile, an eager op's first run).
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_COMPILES = [0]


def _count_compile(event: str, duration_s: float, **_: Any) -> None:
    if event == COMPILE_EVENT:
        _COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compile)


def setup(device: str, cluster: Cluster | None) -> None:
    """Join the multi-host job before any device is used (JAX's rule for initialize)."""
    global _DISTRIBUTED
    if cluster is None or cluster.num_processes == 1 or _DISTRIBUTED:
        return
    if device == "cpu":
        # CPU collectives across processes need an implementation; gloo ships with jaxlib.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=cluster.coordinator,
        num_processes=cluster.num_processes,
        process_id=cluster.process_id,
    )
    _DISTRIBUTED = True


def teardown() -> None:
    if _DISTRIBUTED:
        jax.distributed.shutdown()


def all_gather_text(text: str) -> list[str]:
    """Every process's ``text``, in process order, through JAX's own collectives (so the
    results need no shared disk); each call is a collective every process must make."""
    from jax.experimental import multihost_utils

    data = np.frombuffer(text.encode(), np.uint8).astype(np.int32)
    lengths = np.asarray(multihost_utils.process_allgather(np.array([data.size], np.int32)))
    padded = np.zeros(int(lengths.max()), np.int32)
    padded[: data.size] = data
    rows = np.asarray(multihost_utils.process_allgather(padded))
    return [
        bytes(rows[i, : int(lengths[i].item())].astype(np.uint8)).decode()
        for i in range(rows.shape[0])
    ]


def data_mesh(platform: str, split: Split) -> Mesh:
    """A 1-D mesh of ``split.replicas`` devices: the first ``local_replicas`` of each process,
    in process order, so process i's devices hold the i-th block of every global batch."""
    devices = jax.devices(platform)
    by_process: dict[int, list[Any]] = {}
    for d in devices:
        by_process.setdefault(d.process_index, []).append(d)
    chosen = [d for p in sorted(by_process) for d in by_process[p][: split.local_replicas]]
    return Mesh(np.array(chosen), (DATA_AXIS,))


def batch_sharding(mesh: Mesh, stacked: bool = False) -> NamedSharding:
    """Examples split along the mesh: each device holds batch / replicas of them. ``stacked``
    inputs carry K batches on a leading axis (steps_per_call): split the axis after it."""
    spec = PartitionSpec(None, DATA_AXIS) if stacked else PartitionSpec(DATA_AXIS)
    return NamedSharding(mesh, spec)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def replicate(tree: Any, sharding: NamedSharding) -> Any:
    """The same host values on every device of the mesh. Built from a callback, which works
    when the mesh spans other processes' devices too (each process places its own copies)."""

    def put(leaf: Any) -> jax.Array:
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree_util.tree_map(put, tree)


def shard_batch(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """This process's rows of a global batch, spread over its devices of the mesh."""
    if jax.process_count() == 1:
        return jax.device_put(batch, sharding)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def local_values(arr: jax.Array) -> np.ndarray:
    """This process's part of an array (a replicated scalar, or its rows of a sharded one)."""
    shards = sorted(arr.addressable_shards, key=lambda s: (s.index[0].start or 0) if s.index else 0)
    if arr.sharding.is_fully_replicated:
        return np.asarray(shards[0].data)
    return np.concatenate([np.asarray(s.data) for s in shards])


def version() -> str:
    return jax.__version__


def probe(device: str) -> tuple[bool, str, list[dict[str, Any]]]:
    """Whether jax sees a device of this kind, why not, and what it sees."""
    try:
        devices = jax.devices(PLATFORMS[device])
    except Exception as exc:  # RuntimeError, or AssertionError when no plugin for the platform
        detail = short_reason(exc, "no jax backend for this platform installed")
        return False, f"no {device.upper()} visible to jax ({detail})", []
    seen = [
        {"id": d.id, "platform": d.platform, "kind": getattr(d, "device_kind", d.platform)}
        for d in devices
    ]
    return True, "", seen


def calibration_matmul(precision: str, n: int) -> Any:
    """One n x n x n matmul through XLA, synced: what the CPU peak is calibrated against."""
    dtype = compute_dtype(precision)
    a = jnp.ones((n, n), dtype)
    matmul = jax.jit(jnp.matmul)
    return lambda: matmul(a, a).block_until_ready()


def scale_by_keras_adam(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
    """Adam's direction as Keras (and TF) compute it, which differs from ``optax.adam``.

    Keras adds epsilon to sqrt(v) before the bias correction (Kingma & Ba's "epsilon hat" form):
    ``m / (sqrt(v) + eps) * sqrt(1 - b2^t) / (1 - b1^t)``; optax adds it after:
    ``m_hat / (sqrt(v_hat) + eps)``. The two differ wherever sqrt(v) is near epsilon (early
    steps, rarely updated embedding rows), so the JAX twin uses Keras' form.
    """

    def init(params: Any) -> optax.ScaleByAdamState:
        # Two trees, not one twice: the train step donates its carry, buffer by buffer.
        mu = jax.tree_util.tree_map(jnp.zeros_like, params)
        nu = jax.tree_util.tree_map(jnp.zeros_like, params)
        return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu)

    def update(updates: Any, state: optax.ScaleByAdamState, params: Any = None) -> Any:
        del params
        mu = jax.tree_util.tree_map(lambda g, m: b1 * m + (1 - b1) * g, updates, state.mu)
        nu = jax.tree_util.tree_map(lambda g, v: b2 * v + (1 - b2) * g * g, updates, state.nu)
        count = state.count + 1
        t = count.astype(jnp.float32)
        correction = jnp.sqrt(1 - b2**t) / (1 - b1**t)
        direction = jax.tree_util.tree_map(
            lambda m, v: correction * m / (jnp.sqrt(v) + eps), mu, nu
        )
        return direction, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


# Keras' Adam/AdamW defaults; the scenario sets only the learning rate and weight decay.
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-7


def make_optimizer(opt: Any) -> optax.GradientTransformation:
    """The optimizer keras.optimizers builds for the same settings (see the TF backend)."""
    if opt.name == "sgd":
        # optax's trace (v = g + mu v; w -= lr v) equals Keras' (m = mu m - lr g; w += m).
        tx = optax.sgd(opt.learning_rate, momentum=opt.momentum or None)
        if opt.weight_decay:
            # Decoupled decay, as keras.optimizers.SGD(weight_decay=...) applies it.
            tx = optax.chain(tx, optax.add_decayed_weights(-opt.learning_rate * opt.weight_decay))
        return tx
    adam = scale_by_keras_adam(ADAM_B1, ADAM_B2, ADAM_EPS)
    if opt.name == "adam":
        return optax.chain(adam, optax.scale_by_learning_rate(opt.learning_rate))
    # AdamW as Keras applies it: w -= lr * (adam direction + weight_decay * w).
    return optax.chain(
        adam,
        optax.add_decayed_weights(opt.weight_decay),
        optax.scale_by_learning_rate(opt.learning_rate),
    )


def loss_fn(task: str, outputs: jax.Array, labels: jax.Array) -> jax.Array:
    outputs = outputs.astype(jnp.float32)
    if task == "classification":
        return optax.softmax_cross_entropy_with_integer_labels(outputs, labels).mean()
    return jnp.mean((outputs - labels) ** 2)


def init_variables(module: Any, features: dict[str, Any], seed: int, platform: str = "cpu") -> Any:
    """``module.init`` compiled as one program, at the lowest XLA optimisation level on CPU.

    Op by op, initialising a ResNet-18 costs ~15 s of per-op compiles on a 2-core CPU; jitted at
    the default level, XLA's CPU backend spends as long optimising the random-number code.
    Initialisation runs once, so its speed does not matter, only its compile time does.
    """
    init = jax.jit(functools.partial(module.init, train=False))
    key = jax.random.PRNGKey(seed)
    lowered = init.lower(key, features)
    options = {"xla_backend_optimization_level": 0} if platform == "cpu" else {}
    return lowered.compile(compiler_options=options)(key, features)


def shared_variables(module: Any, features: dict[str, Any], weights: Mapping[str, Any]) -> Any:
    """The module's variables taken from the run's shared weights, checked by name and shape
    against the module's own (from ``eval_shape``: nothing is initialised or compiled)."""
    shapes = jax.eval_shape(
        functools.partial(module.init, train=False), jax.random.PRNGKey(0), features
    )
    wanted = {k: tuple(v.shape) for k, v in flatten(shapes, arrays=False).items()}
    match_names(weights, wanted, "jax module")
    return unflatten({k: np.asarray(weights[k], np.float32) for k in wanted})


def init_weights(req: BuildRequest) -> dict[str, np.ndarray]:
    """The model's float32 variables initialised from ``req.seed``, by canonical name (the
    run's shared weight set when this worker is the first: bench.backends.parity)."""
    module = req.model.build_jax(req.args, jnp.float32)
    features = {k: v for k, v in make_batch(req.spec, 1, req.seed).items() if k != "label"}
    platform = jax.devices()[0].platform
    return flatten(jax.device_get(init_variables(module, features, req.seed, platform)))


# Examples per call of the reference prediction: bounds its memory for large models.
REFERENCE_BATCH = 32


def reference_outputs(
    req: BuildRequest, weights: Mapping[str, np.ndarray], features: Mapping[str, np.ndarray]
) -> np.ndarray:
    """float32 inference on the CPU (whatever this worker's device) with ``weights``."""
    module = req.model.build_jax(req.args, jnp.float32)
    cpu = jax.devices("cpu")[0]
    variables = jax.device_put(unflatten(dict(weights)), cpu)
    forward = jax.jit(lambda v, f: module.apply(v, f, train=False))
    outputs = [
        np.asarray(forward(variables, jax.device_put(call, cpu)))
        for call in eval_calls(features, REFERENCE_BATCH)
    ]
    return join_outputs(outputs, len(next(iter(features.values()))))


def split_variables(variables: Any) -> tuple[Any, dict[str, Any]]:
    variables = dict(variables)
    return variables.pop("params"), variables


def compute_dtype(precision: str) -> Any:
    """The dtype a cell's module computes in (parameters stay float32)."""
    return {"bfloat16": jnp.bfloat16, "float16": jnp.float16}.get(precision, jnp.float32)


# Dynamic loss scaling for float16 training, as Keras' LossScaleOptimizer does it (its defaults):
# the loss is multiplied by ``scale`` so that small float16 gradients do not flush to zero; a
# step whose unscaled gradients are not all finite is skipped and halves the scale; after
# GROWTH_STEPS finite steps in a row the scale doubles. optax has no such transformation.
INITIAL_LOSS_SCALE = 2.0**15
GROWTH_STEPS = 2000


def loss_scale_init(scale: float = INITIAL_LOSS_SCALE) -> dict[str, Any]:
    return {"scale": np.float32(scale), "good_steps": np.int32(0)}


def loss_scale_update(ls: dict[str, Any], finite: jax.Array) -> dict[str, Any]:
    """The next loss-scale state after a step whose gradients were (or were not) finite."""
    grown = ls["good_steps"] + 1 >= GROWTH_STEPS
    scale = jnp.where(
        finite, jnp.where(grown, ls["scale"] * 2, ls["scale"]), jnp.maximum(ls["scale"] / 2, 1.0)
    )
    good = jnp.where(finite & ~grown, ls["good_steps"] + 1, 0)
    return {"scale": scale.astype(jnp.float32), "good_steps": good.astype(jnp.int32)}


def make_train_step(
    module: Any, tx: optax.GradientTransformation, task: str, loss_scaling: bool = False
):
    """A pure step ``(params, state, opt_state), batch -> new carry, loss``.

    ``state`` holds non-trainable collections such as batch_stats, updated in training mode.
    ``loss_scaling`` (float16): ``opt_state`` is ``(optimizer state, loss-scale state)`` and
    the step scales the loss, unscales the gradients and skips the update where they are not
    finite (``loss_scale_update``); batch statistics are updated either way, as in Keras.
    """

    def compute_loss(params, state, batch):
        features = {k: v for k, v in batch.items() if k != "label"}
        variables = {"params": params, **state}
        if state:
            outputs, new_state = module.apply(variables, features, train=True, mutable=list(state))
        else:
            outputs, new_state = module.apply(variables, features, train=True), state
        return loss_fn(task, outputs, batch["label"]), new_state

    def train_step(carry, batch):
        params, state, opt_state = carry
        (loss, state), grads = jax.value_and_grad(compute_loss, has_aux=True)(params, state, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, state, opt_state), loss

    def scaled_loss(params, state, batch, scale):
        loss, new_state = compute_loss(params, state, batch)
        return loss * scale, (loss, new_state)

    def scaled_train_step(carry, batch):
        params, state, (opt_state, ls) = carry
        grads, (loss, state) = jax.grad(scaled_loss, has_aux=True)(
            params, state, batch, ls["scale"]
        )
        grads = jax.tree_util.tree_map(lambda g: g / ls["scale"], grads)
        finite = jnp.all(
            jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
        )
        updates, new_opt_state = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        keep = functools.partial(
            jax.tree_util.tree_map, lambda new, old: jnp.where(finite, new, old)
        )
        carry = (
            keep(new_params, params),
            state,
            (keep(new_opt_state, opt_state), loss_scale_update(ls, finite)),
        )
        return carry, loss

    return scaled_train_step if loss_scaling else train_step


def make_predict_step(module: Any):
    def predict_step(params, state, features):
        return module.apply({"params": params, **state}, features, train=False)

    return predict_step


def repeat_train_step(train_step, k: int, stacked: bool):
    """K training steps in one function: ``carry, batch(es) -> carry, losses[K]``.

    ``stacked``: the batch has a leading K axis, one batch per step; otherwise every step
    reuses the one batch (synthetic input), as K single steps would.
    """

    def steps(carry, batches):
        if stacked:
            return jax.lax.scan(train_step, carry, batches)
        return jax.lax.scan(lambda c, _: train_step(c, batches), carry, None, length=k)

    return steps


def repeat_predict_step(predict_step):
    """K batch predictions in one function over ``[K, batch, ...]`` features."""

    def steps(params, state, features):
        return jax.lax.map(lambda f: predict_step(params, state, f), features)

    return steps


class JaxWorkload(Workload):
    def __init__(self, req: BuildRequest):
        key = req.key
        platform = PLATFORMS[key["device"]]
        processes = jax.process_count()
        self.split = split = plan_split(key, len(jax.devices(platform)), processes)
        self.mesh = mesh = data_mesh(platform, split)
        self.local_devices = [
            d for d in mesh.devices.flat if d.process_index == jax.process_index()
        ]
        self.device = self.local_devices[0]
        self.device_name = "cpu" if self.device.platform == "cpu" else self.device.device_kind
        self.device_count = paid_devices(key["device"], split)
        self.parallel_method = (
            f"jax.jit over a {split.replicas}-device mesh ('{DATA_AXIS}',): batch sharded, "
            f"parameters replicated, {processes} process(es)"
        )
        rep = replicated(mesh)
        module = req.model.build_jax(req.args, compute_dtype(key["precision"]))
        hosts = host_batches(req, jax.process_index(), processes)
        features0 = {k: v for k, v in hosts[0].items() if k != "label"}
        host_params, host_state = split_variables(self._variables(req, module, features0))
        params, state = replicate(host_params, rep), replicate(host_state, rep)
        self.param_count = int(sum(np.size(p) for p in jax.tree_util.tree_leaves(host_params)))
        self.steps_per_call = per_call = steps_per_call(key)
        stacked = stacks_batches(req)
        data = batch_sharding(mesh, stacked)
        # how parameters (replicated) and batches (split on the data axis) sit on the mesh
        self._rep, self._data_sharding = rep, data

        # This process's rows of each call's input, spread over its devices of the mesh.
        self.batches = open_batches(req, hosts, lambda batch: shard_batch(batch, data))
        self._next_batch = self.batches
        # Compiled for the first call's input without taking it, so the first step sees the
        # first batch (steps_per_call equivalence relies on the order).
        example = self.batches.example

        # One step's function and argument shapes, for the compiler's FLOP count when K > 1.
        first = functools.partial(jax.tree_util.tree_map, lambda x: x[0])
        one = jax.eval_shape(first, example) if stacked else example
        cache_before = compile_cache.counts()
        start = time.perf_counter()
        if req.training:
            single, single_args = self._compile_train(
                req, module, host_params, params, state, example, one
            )
        else:
            single, single_args = self._compile_predict(module, params, state, example, one)
        self._single = (
            single,
            jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), single_args),
        )
        self.compile_s = time.perf_counter() - start
        self.compile_cached = compile_cache.loaded(cache_before)
        self.compile_method = "jax AOT: jit(step).lower(args).compile(), wall clock" + (
            f"; {per_call} steps per call (lax.scan)" if per_call > 1 else ""
        )
        self.training = req.training
        self.sync_method = device_sync.METHOD

    def _variables(self, req: BuildRequest, module: Any, features0: dict) -> Any:
        """The model's variables on the host: the run's shared weights (prediction parity),
        matched to the module by name, or initialised from the cell's seed."""
        if req.weights is not None:
            return shared_variables(module, features0, req.weights)
        with jax.default_device(self.device):
            return jax.device_get(init_variables(module, features0, req.seed, self.device.platform))

    def _compile_train(
        self,
        req: BuildRequest,
        module: Any,
        host_params: Any,
        params: Any,
        state: Any,
        example: Any,
        one: Any,
    ) -> tuple[Any, tuple]:
        """The training call, compiled ahead of time; the carry (parameters, model state and
        optimizer state, donated to each call) kept for the steps. Returns one step's function
        and arguments, for the FLOP count."""
        rep, data = self._rep, self._data_sharding
        tx = make_optimizer(req.optimizer)
        with jax.default_device(self.device):
            opt_state = replicate(jax.device_get(tx.init(host_params)), rep)
        scaling = req.key["precision"] == "float16"
        if scaling:  # the loss scale travels with the optimizer's state
            opt_state = (opt_state, replicate(loss_scale_init(), rep))
        carry = (params, state, opt_state)
        single = step = make_train_step(module, tx, req.spec.task, scaling)
        if self.steps_per_call > 1:
            step = repeat_train_step(step, self.steps_per_call, stacks_batches(req))
        jitted = jax.jit(step, in_shardings=(rep, data), out_shardings=(rep, rep), donate_argnums=0)
        self._compiled = jitted.lower(carry, example).compile()
        self._carry = carry
        return single, (carry, one)

    def _compile_predict(
        self, module: Any, params: Any, state: Any, example: Any, one: Any
    ) -> tuple[Any, tuple]:
        """The prediction call, compiled ahead of time over the features (labels dropped).
        Returns one step's function and arguments, for the FLOP count."""
        rep, data = self._rep, self._data_sharding
        feats = {k: v for k, v in example.items() if k != "label"}
        single = step = make_predict_step(module)
        if self.steps_per_call > 1:
            step = repeat_predict_step(step)
        jitted = jax.jit(step, in_shardings=(rep, rep, data), out_shardings=data)
        self._compiled = jitted.lower(params, state, feats).compile()
        self._params, self._state = params, state
        return single, (params, state, {k: v for k, v in one.items() if k != "label"})

    def params(self) -> Any:
        """This process's copy of the trained parameters, as numpy (for equivalence tests)."""
        params = self._carry[0] if self.training else self._params
        return jax.tree_util.tree_map(local_values, params)

    def step(self) -> Any:
        if self.training:
            self._carry, loss = self._compiled(self._carry, self._next_batch())
            return self._carry, loss
        batch = self._next_batch()
        feats = {k: v for k, v in batch.items() if k != "label"}
        return self._compiled(self._params, self._state, feats)

    def sync(self, out: Any) -> None:
        device_sync.sync(out)

    def infer(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        feats = {k: v for k, v in batch.items() if k != "label"}
        out = self._compiled(self._params, self._state, shard_batch(feats, self._data_sharding))
        return np.asarray(out)  # a host copy: the result is on the host when this returns

    def check_output(self, out: Any) -> str | None:
        value = out[1] if self.training else out
        arr = np.asarray(local_values(value), dtype=np.float32)
        if not np.all(np.isfinite(arr)):
            what = "loss" if self.training else "predictions"
            return f"non-finite {what} ({arr.ravel()[:3].tolist()}...)"
        return None

    def predict_eval(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.training:
            raise NotImplementedError("parity is measured on forward passes (predict cells)")
        calls = eval_calls(features, self.split.global_batch, self.steps_per_call)
        outputs = []
        for call in calls:
            out = self._compiled(self._params, self._state, shard_batch(call, self._data_sharding))
            outputs.append(np.asarray(out))  # one process (parity's rule): every row is here
        return join_outputs(outputs, len(next(iter(features.values()))))

    def trace_count(self) -> int:
        return 0  # an AOT executable never retraces

    compile_count_method = (
        f"XLA compiles in the worker process (jax.monitoring event {COMPILE_EVENT})"
    )
    trace_tool = "jax.profiler.start_trace(create_perfetto_trace=True)"

    def compile_count(self) -> int:
        return _COMPILES[0]

    def start_trace(self, folder: Path) -> None:
        jax.profiler.start_trace(str(folder), create_perfetto_trace=True)

    def stop_trace(self) -> None:
        jax.profiler.stop_trace()

    def trace_events(self, folder: Path) -> tuple[list[Any], str]:
        from bench.backends.jax.trace import perfetto_file, read_events

        return read_events(perfetto_file(folder))

    def program_text(self) -> tuple[str, str]:
        return self._compiled.as_text(), "program.hlo.txt"

    def compiler_flops(self) -> float | None:
        """XLA's count for one step of the global batch. A K-step executable is a while loop, whose body XLA's cost
        analysis counts once (not K times) today; rather than lean on that, K > 1 asks for the
        count of one step's lowered (not yet optimised) program, which costs no compile."""
        from bench.measure.flops import xla_cost_flops

        if self.steps_per_call == 1 and self.split is not None and self.split.replicas == 1:
            return xla_cost_flops(self._compiled)
        # A partitioned executable is one device's share of the step; the lowered program
        # (before SPMD partitioning) is the whole global batch's, as the caller expects.
        single, shapes = self._single
        return xla_cost_flops(jax.jit(single).lower(*shapes))

    def memory(self) -> dict[str, Any]:
        return memory_metrics(self._compiled, self.local_devices)


def build(req: BuildRequest) -> Workload:
    return JaxWorkload(req)


# Each device's lifetime peak at the end of the worker's previous cell (bench.measure.memory).
_PEAK_SEEN: dict[int, int] = {}


def memory_metrics(compiled: Any, devices: list[Any]) -> dict[str, Any]:
    """The compiled step's memory analysis, and the runtime peak where it is this cell's."""
    from bench.measure.memory import analysis_dict, compiled_memory, runtime_peak

    try:
        analysis, why = analysis_dict(compiled.memory_analysis()), ""
    except Exception as exc:  # unimplemented on some backends and releases
        analysis, why = None, f"jax memory_analysis() failed: {short_reason(exc, 'no reason')}"
    peaks: list[int | None] = []
    for device in devices:
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        peaks.append(
            int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None
        )
    previous = [_PEAK_SEEN.get(d.id) for d in devices]
    for device, peak in zip(devices, peaks, strict=True):
        if peak is not None:
            _PEAK_SEEN[device.id] = peak
    what = f"jax Device.memory_stats() on {devices[0].platform}"
    return {
        "device_memory_bytes": compiled_memory(analysis, why),
        "peak_device_memory_bytes": runtime_peak(peaks, previous, what),
    }


def matmul_settings(device: str) -> dict[str, Any]:
    """What decides the precision of float32 matmuls (read by bench.measure.flops)."""
    import os

    from bench.backends.jax.precision import tf32_allowed

    configured = jax.config.jax_default_matmul_precision
    found: dict[str, Any] = {
        "tf32_allowed": tf32_allowed(configured),
        "setting": f"jax_default_matmul_precision={configured!r}",
        "nvidia_tf32_override": os.environ.get("NVIDIA_TF32_OVERRIDE"),
    }
    if device == "gpu":
        found["compute_capability"] = getattr(jax.devices("gpu")[0], "compute_capability", None)
    return found

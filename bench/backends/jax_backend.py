"""JAX backend: device lookup, ahead-of-time compiled train/predict steps, sync, memory stats.

Imported only inside a JAX worker process. Steps are compiled ahead of time
(``jit(...).lower(...).compile()``), so compile time is measured on its own and the timed phase
cannot recompile: an AOT executable refuses inputs of another shape instead of retracing.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.backends.workload import BuildRequest, Workload, host_batches, short_reason
from bench.metrics import metric, unavailable

PLATFORMS = {"cpu": "cpu", "gpu": "gpu", "tpu": "tpu"}


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
    dtype = jnp.bfloat16 if precision == "bfloat16" else jnp.float32
    a = jnp.ones((n, n), dtype)
    matmul = jax.jit(jnp.matmul)
    return lambda: matmul(a, a).block_until_ready()


def make_optimizer(opt: Any) -> optax.GradientTransformation:
    if opt.name == "sgd":
        tx = optax.sgd(opt.learning_rate, momentum=opt.momentum or None)
        if opt.weight_decay:
            # Decoupled decay, as keras.optimizers.SGD(weight_decay=...) applies it.
            tx = optax.chain(tx, optax.add_decayed_weights(-opt.learning_rate * opt.weight_decay))
        return tx
    if opt.name == "adam":
        return optax.adam(opt.learning_rate, b1=0.9, b2=0.999, eps=1e-7)
    return optax.adamw(opt.learning_rate, b1=0.9, b2=0.999, eps=1e-7, weight_decay=opt.weight_decay)


def loss_fn(task: str, outputs: jax.Array, labels: jax.Array) -> jax.Array:
    outputs = outputs.astype(jnp.float32)
    if task == "classification":
        return optax.softmax_cross_entropy_with_integer_labels(outputs, labels).mean()
    return jnp.mean((outputs - labels) ** 2)


def split_variables(variables: Any) -> tuple[Any, dict[str, Any]]:
    variables = dict(variables)
    return variables.pop("params"), variables


def make_train_step(module: Any, tx: optax.GradientTransformation, task: str):
    """A pure step ``(params, state, opt_state), batch -> new carry, loss``.

    ``state`` holds non-trainable collections such as batch_stats, updated in training mode.
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

    return train_step


def make_predict_step(module: Any):
    def predict_step(params, state, features):
        return module.apply({"params": params, **state}, features, train=False)

    return predict_step


class JaxWorkload(Workload):
    def __init__(self, req: BuildRequest):
        key = req.key
        self.device = jax.devices(PLATFORMS[key["device"]])[0]
        self.device_name = "cpu" if self.device.platform == "cpu" else self.device.device_kind
        dtype = jnp.bfloat16 if key["precision"] == "bfloat16" else jnp.float32
        module = req.model.build_jax(req.args, dtype)
        hosts = host_batches(req)
        features0 = {k: v for k, v in hosts[0].items() if k != "label"}
        with jax.default_device(self.device):
            variables = module.init(jax.random.PRNGKey(req.seed), features0, train=False)
        params, state = split_variables(jax.device_put(variables, self.device))
        self.param_count = int(sum(np.size(p) for p in jax.tree_util.tree_leaves(params)))

        if key["input"] == "synthetic":
            # Made once and kept on the device: the upper bound with no input cost.
            on_device = jax.device_put(hosts[0], self.device)
            self._next_batch = lambda: on_device
        else:
            cycle = itertools.cycle(hosts)
            self._next_batch = lambda: jax.device_put(next(cycle), self.device)

        start = time.perf_counter()
        if key["workload"] == "train":
            tx = make_optimizer(req.optimizer)
            carry = (params, state, jax.device_put(tx.init(params), self.device))
            jitted = jax.jit(make_train_step(module, tx, req.spec.task), donate_argnums=0)
            self._compiled = jitted.lower(carry, self._next_batch()).compile()
            self._carry = carry
        else:
            feats = {k: v for k, v in self._next_batch().items() if k != "label"}
            self._compiled = (
                jax.jit(make_predict_step(module)).lower(params, state, feats).compile()
            )
            self._params, self._state = params, state
        self.compile_s = time.perf_counter() - start
        self.compile_method = "jax AOT: jit(step).lower(args).compile(), wall clock"
        self.workload = key["workload"]

    def step(self) -> Any:
        if self.workload == "train":
            self._carry, loss = self._compiled(self._carry, self._next_batch())
            return self._carry, loss
        batch = self._next_batch()
        feats = {k: v for k, v in batch.items() if k != "label"}
        return self._compiled(self._params, self._state, feats)

    def sync(self, out: Any) -> None:
        jax.block_until_ready(out)

    def check_output(self, out: Any) -> str | None:
        value = out[1] if self.workload == "train" else out
        arr = np.asarray(jax.device_get(value), dtype=np.float32)
        if not np.all(np.isfinite(arr)):
            what = "loss" if self.workload == "train" else "predictions"
            return f"non-finite {what} ({arr.ravel()[:3].tolist()}...)"
        return None

    def trace_count(self) -> int:
        return 0  # an AOT executable never retraces

    def compiler_flops(self) -> float | None:
        from bench.measure.flops import xla_cost_flops

        return xla_cost_flops(self._compiled)

    def memory(self) -> dict[str, Any]:
        stats = self.device.memory_stats() if hasattr(self.device, "memory_stats") else None
        if not stats or "peak_bytes_in_use" not in stats:
            reason = f"jax reports no memory_stats for {self.device.platform} devices"
            return {"peak_device_memory_bytes": unavailable(reason, "bytes")}
        return {
            "peak_device_memory_bytes": metric(
                int(stats["peak_bytes_in_use"]),
                "bytes",
                "jax Device.memory_stats() peak_bytes_in_use",
            )
        }


def build(req: BuildRequest) -> Workload:
    return JaxWorkload(req)

"""One framework's side of the twin checks, run in its own process (TF and JAX never share one).

    python -m tests.twins {jax|tensorflow} JOBS.json OUT.npz

``JOBS.json`` is a list of jobs (see ``KINDS``; a job runs on each side that has its kind, or
on those its ``frameworks`` names); every result lands in ``OUT.npz`` under
``<job id>/<name>``. The test process (tests/test_models.py) imports neither framework: it
writes the jobs, runs the JAX side, then the TensorFlow side (which may read the JAX side's
file, e.g. to load the same weights), and compares the arrays.

Weights travel by name. A variable's canonical name is its Flax path with the collection first
(``params/layer_0/attention/query/kernel``, ``batch_stats/stem_bn/mean``); a Keras variable's
path (``transformer/layer_0/attention/query/kernel``) maps onto it by dropping the model's name
and renaming the few leaves Keras names differently: ``keras_name`` of bench/backends/parity.py,
the rule every parity cell loads the run's shared weights by. The zoo's twins name their layers
alike so that this is all it takes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.backends.parity import keras_name
from bench.backends.workload import BuildRequest
from bench.inputs.synthetic import make_batch
from bench.modeldef import load_model
from bench.run.scenario import Optimizer

Results = dict[str, np.ndarray]


def flax_names(variables: Any) -> dict[str, np.ndarray]:
    from flax import traverse_util

    flat = traverse_util.flatten_dict(dict(variables))
    return {"/".join(path): np.asarray(value) for path, value in flat.items()}


def features_of(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in batch.items() if k != "label"}


def perturb_normalisation(weights: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Random norm scales/offsets, biases and moving statistics: initialised to 1 or 0 they
    would let a twin that ignores one of them pass the parity check."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, value in sorted(weights.items()):
        leaf = name.rsplit("/", 1)[-1]
        if leaf == "var":
            value = rng.uniform(0.5, 1.5, value.shape)
        elif leaf == "scale":
            value = 1.0 + 0.2 * rng.standard_normal(value.shape)
        elif leaf in ("bias", "mean"):
            value = 0.2 * rng.standard_normal(value.shape)
        out[name] = np.asarray(value, dtype=np.float32)
    return out


def build_request(job: dict[str, Any], framework: str) -> BuildRequest:
    model = load_model(job["model"])
    args = model.Args.model_validate(job["args"])
    key = {
        "model": job["model"],
        "workload": job.get("workload", "train"),
        "framework": framework,
        "device": "cpu",
        "batch_size": job["batch"],
        "precision": job.get("precision", "float32"),
        "input": job.get("input", "synthetic"),
        "xla": framework == "jax" or job.get("xla", False),
        "steps_per_call": job.get("steps_per_call", 1),
    }
    opt = Optimizer(**job.get("optimizer", {"name": "adam", "learning_rate": 1e-3}))
    training = key["workload"] == "train"
    return BuildRequest(
        key, model, args, model.data_spec(args), opt, job.get("seed", 0), training=training
    )


# ---------------------------------------------------------------------------------------- JAX


def jax_params(job: dict[str, Any], out: Results) -> None:
    import jax
    import jax.numpy as jnp

    model = load_model(job["model"])
    args = model.Args.model_validate(job["args"])
    batch = features_of(make_batch(model.data_spec(args), 1, 0))
    module = model.build_jax(args, jnp.float32)
    # Shapes only: a BERT-base-sized check costs no memory or init time.
    shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), batch, train=False))
    out["count"] = np.array(sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes["params"])))


def jax_forward(job: dict[str, Any], out: Results) -> None:
    import jax
    import jax.numpy as jnp
    from flax import traverse_util

    from bench.backends.jax.backend import init_variables

    model = load_model(job["model"])
    args = model.Args.model_validate(job["args"])
    batch = features_of(make_batch(model.data_spec(args), job["batch"], job.get("seed", 0)))
    module = model.build_jax(args, jnp.float32)
    variables = init_variables(module, batch, job.get("seed", 0))
    weights = perturb_normalisation(flax_names(variables), job.get("seed", 0))
    variables = traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in weights.items()})
    state = [c for c in variables if c != "params"]

    @jax.jit
    def forward(variables: Any, batch: Any) -> tuple[Any, Any]:
        infer = module.apply(variables, batch, train=False)
        if state:  # training mode normalises with the batch's statistics
            train, _ = module.apply(variables, batch, train=True, mutable=state)
        else:
            train = module.apply(variables, batch, train=True)
        return infer, train

    infer, train = forward(variables, batch)
    out["infer"], out["train"] = np.asarray(infer), np.asarray(train)
    for name, value in weights.items():
        out[f"w/{name}"] = value


def jax_flops(job: dict[str, Any], out: Results) -> None:
    """XLA's count for the forward pass and for the gradient (the train step's bulk)."""
    import jax
    import jax.numpy as jnp

    from bench.backends.jax.backend import init_variables, loss_fn
    from bench.measure.flops import xla_cost_flops

    model = load_model(job["model"])
    args = model.Args.model_validate(job["args"])
    spec = model.data_spec(args)
    full = make_batch(spec, job["batch"], 0)
    batch = features_of(full)
    module = model.build_jax(args, jnp.float32)
    variables = init_variables(module, batch, 0)
    params = variables["params"]
    state = {k: v for k, v in variables.items() if k != "params"}

    def forward(params: Any, state: Any) -> Any:
        return module.apply({"params": params, **state}, batch, train=False)

    def loss(params: Any, state: Any) -> Any:
        if state:
            outputs, _ = module.apply(
                {"params": params, **state}, batch, train=True, mutable=list(state)
            )
        else:
            outputs = module.apply({"params": params}, batch, train=True)
        return loss_fn(spec.task, outputs, full["label"])

    for name, fn in (("predict", forward), ("train", jax.grad(loss)))[: 2 if job["train"] else 1]:
        flops = xla_cost_flops(jax.jit(fn).lower(params, state).compile())
        assert flops is not None, "XLA reported no cost analysis on CPU"
        out[f"xla_{name}"] = np.array(flops / job["batch"])
        out[f"analytic_{name}"] = np.array(model.flops_per_example(args, name))


def jax_train(job: dict[str, Any], out: Results) -> None:
    import jax

    from bench.backends.jax import backend as jax_backend

    workload = jax_backend.build(build_request(job, "jax"))
    losses = []
    for _ in range(job["steps"] // workload.steps_per_call):
        _, loss = workload.step()
        losses.append(np.atleast_1d(np.asarray(jax.device_get(loss))))
    out["losses"] = np.concatenate(losses)
    params, state, _ = workload._carry
    for name, value in flax_names({"params": params, **state}).items():
        out[f"w/{name}"] = value


def jax_optimizer(job: dict[str, Any], out: Results) -> None:
    import jax.numpy as jnp
    import optax

    from bench.backends.jax.backend import make_optimizer

    params, grads = optimizer_problem(job)
    tx = make_optimizer(Optimizer(**job["optimizer"]))
    tree = {k: jnp.asarray(v) for k, v in params.items()}
    opt_state = tx.init(tree)
    for step in grads:
        updates, opt_state = tx.update(
            {k: jnp.asarray(v) for k, v in step.items()}, opt_state, tree
        )
        tree = optax.apply_updates(tree, updates)
    for name, value in tree.items():
        out[f"w/{name}"] = np.asarray(value)


# ----------------------------------------------------------------------------------------- TF


def tf_model(job: dict[str, Any]) -> tuple[Any, Any, dict[str, np.ndarray]]:
    import keras
    import tensorflow as tf

    # A bfloat16 train job before this one left its global policy behind.
    keras.mixed_precision.set_global_policy("float32")

    model_def = load_model(job["model"])
    args = model_def.Args.model_validate(job["args"])
    batch = features_of(make_batch(model_def.data_spec(args), job["batch"], job.get("seed", 0)))
    model = model_def.build_tf(args)
    model({k: tf.constant(v) for k, v in batch.items()}, training=False)  # creates variables
    return model, tf, batch


def tf_params(job: dict[str, Any], out: Results) -> None:
    model, _, _ = tf_model({**job, "batch": 1})
    out["count"] = np.array(sum(int(np.prod(v.shape)) for v in model.trainable_variables))


def tf_forward(job: dict[str, Any], out: Results) -> None:
    model, tf, batch = tf_model(job)
    source = np.load(job["weights_from"])
    prefix = f"{job['id']}/w/"
    given = {k[len(prefix) :]: source[k] for k in source.files if k.startswith(prefix)}
    names = {keras_name(v.path): v for v in model.weights}
    missing, extra = sorted(set(given) - set(names)), sorted(set(names) - set(given))
    assert not missing and not extra, f"unmatched weights: jax only {missing}, keras only {extra}"
    for name, variable in names.items():
        assert tuple(variable.shape) == given[name].shape, (name, variable.shape)
        variable.assign(given[name])
    feats = {k: tf.constant(v) for k, v in batch.items()}
    out["infer"] = np.asarray(model(feats, training=False))
    out["train"] = np.asarray(model(feats, training=True))


def tf_train(job: dict[str, Any], out: Results) -> None:
    from bench.backends.tensorflow import backend as tf_backend

    workload = tf_backend.build(build_request(job, "tensorflow"))
    # Building ran the first call (it is how TensorFlow compiles): one call of K steps is done.
    losses = []
    for _ in range(job["steps"] // workload.steps_per_call - 1):
        loss = workload.step()
        losses.append(np.atleast_1d(np.asarray(loss)))
    out["losses"] = np.concatenate(losses)
    for variable in workload.model.weights:
        out[f"w/{keras_name(variable.path)}"] = np.asarray(variable)


def tf_optimizer(job: dict[str, Any], out: Results) -> None:
    import keras

    from bench.backends.tensorflow.backend import make_optimizer

    params, grads = optimizer_problem(job)
    variables = {k: keras.Variable(v, name=k) for k, v in params.items()}
    opt = make_optimizer(Optimizer(**job["optimizer"]))
    opt.build(list(variables.values()))
    for step in grads:
        opt.apply_gradients([(step[k], variables[k]) for k in variables])
    for name, value in variables.items():
        out[f"w/{name}"] = np.asarray(value)


def optimizer_problem(job: dict[str, Any]) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Seeded parameters and a sequence of gradients, some tiny (where Adam's epsilon shows)."""
    rng = np.random.default_rng(0)
    shapes = {"kernel": (4, 3), "bias": (3,)}
    params = {k: rng.standard_normal(s, dtype=np.float32) for k, s in shapes.items()}
    grads = []
    for step in range(job["steps"]):
        scale = 1e-7 if step % 2 else 1.0
        grads.append(
            {k: scale * rng.standard_normal(s, dtype=np.float32) for k, s in shapes.items()}
        )
    return params, grads


KINDS: dict[str, dict[str, Callable[[dict[str, Any], Results], None]]] = {
    "jax": {
        "params": jax_params,
        "forward": jax_forward,
        "flops": jax_flops,
        "train": jax_train,
        "optimizer": jax_optimizer,
    },
    "tensorflow": {
        "params": tf_params,
        "forward": tf_forward,
        "train": tf_train,
        "optimizer": tf_optimizer,
    },
}


def main(argv: list[str]) -> int:
    framework, jobs_path, out_path = argv
    if framework == "tensorflow":
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with open(jobs_path) as f:
        jobs = json.load(f)
    results: Results = {}
    for job in jobs:
        run = KINDS[framework].get(job["kind"])
        if run is None or framework not in job.get("frameworks", KINDS):
            continue
        found: Results = {}
        start = time.perf_counter()
        run(job, found)
        print(f"{framework} {job['id']}: {time.perf_counter() - start:.1f}s", file=sys.stderr)
        results.update({f"{job['id']}/{name}": value for name, value in found.items()})
    np.savez(out_path, **results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""One framework's side of the parity checks, run in its own process (TF and JAX never share one).

    python -m tests.parity_twins {jax|tensorflow} JOBS.json RUN_DIR OUT.npz

For each job (a zoo model at small ``args``) it does what a predict cell does: takes the run's
shared parity set from ``RUN_DIR`` (the first process makes it: weights, evaluation set,
float32 CPU reference), builds the backend's predict workload from those weights at each
precision and batch size asked, and predicts the evaluation set (``predict_eval``). It also
recomputes the float32 CPU reference with its own framework. Jobs of ``kind: train`` run
training steps instead (float16's dynamic loss scaling). Everything lands in ``OUT.npz``
as ``<job>/<what>``; tests/test_parity.py compares the arrays without importing a framework.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Any

import numpy as np

from bench.backends import registry
from bench.backends.parity import shared_set
from bench.backends.workload import BuildRequest
from bench.modeldef import load_model
from bench.run.scenario import Optimizer


def request(job: dict[str, Any], framework: str, precision: str, batch: int) -> BuildRequest:
    model = load_model(job["model"])
    args = model.Args.model_validate(job["args"])
    key = {
        "model": job["model"],
        "workload": "predict",
        "framework": framework,
        "device": "cpu",
        "batch_size": batch,
        "precision": precision,
        "input": "synthetic",
        "xla": framework == "jax",
        "steps_per_call": job.get("steps_per_call", 1),
    }
    opt = Optimizer(name="adam", learning_rate=1e-3)
    training = key["workload"] == "train"
    return BuildRequest(
        key, model, args, model.data_spec(args), opt, job.get("seed", 0), training=training
    )


def train(job: dict[str, Any], framework: str, backend: Any) -> dict[str, np.ndarray]:
    """Train steps of the backend's real workload at ``job['precision']``: the losses, and the
    loss scale the step ends with (float16: dynamic loss scaling)."""
    req = request(job, framework, job["precision"], job["batches"][0])
    key = {**req.key, "workload": "train"}
    workload = backend.build(dataclasses.replace(req, key=key, training=True))
    losses = []
    for _ in range(job["steps"]):
        out = workload.step()
        losses.append(float(np.asarray(out[1] if framework == "jax" else out)))
    found = {"losses": np.array(losses)}
    if job["precision"] == "float16":
        if framework == "jax":
            scale = workload._carry[2][1]["scale"]
        else:
            scale = workload.optimizer.dynamic_scale
        found["scale"] = np.asarray(scale)
    if framework == "jax" and job["precision"] == "float16":
        found.update(jax_overflow_step(req))
    return found


def jax_overflow_step(req: BuildRequest) -> dict[str, np.ndarray]:
    """One float16 step from a loss scale so large that the gradients overflow: skipped."""
    import jax

    from bench.backends.jax import backend as jb
    from bench.inputs.synthetic import make_batch

    module = req.model.build_jax(req.args, jb.compute_dtype("float16"))
    batch = make_batch(req.spec, 8, 0)
    params, state = jb.split_variables(
        jb.init_variables(module, {k: v for k, v in batch.items() if k != "label"}, 0)
    )
    tx = jb.make_optimizer(req.optimizer)
    carry = (params, state, (tx.init(params), jb.loss_scale_init(2.0**60)))
    step = jax.jit(jb.make_train_step(module, tx, req.spec.task, loss_scaling=True))
    (new_params, _, (_, ls)), _ = step(carry, batch)
    same = all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(new_params), strict=True)
    )
    return {"overflow_skipped": np.array(same), "overflow_scale": np.asarray(ls["scale"])}


def main(argv: list[str]) -> int:
    framework, jobs_path, run_dir, out_path = argv
    if framework == "tensorflow":
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    backend = registry.load(framework)
    backend.setup("cpu", None)
    with open(jobs_path) as f:
        jobs = json.load(f)
    out: dict[str, np.ndarray] = {}
    for job in jobs:
        start = time.perf_counter()
        if job.get("kind") == "train":
            found = train(job, framework, backend)
            out.update({f"{job['id']}/{k}": v for k, v in found.items()})
            print(f"{framework} {job['id']}: {time.perf_counter() - start:.1f}s", file=sys.stderr)
            continue
        shared = None
        for precision in job["precisions"]:
            for batch in job["batches"]:
                req = request(job, framework, precision, batch)
                shared = shared_set(run_dir, req, backend, framework, n=job["examples"])
                workload = backend.build(dataclasses.replace(req, weights=shared.weights))
                before = workload.compile_count()
                out[f"{job['id']}/{precision}/{batch}"] = workload.predict_eval(shared.features)
                # The evaluation set runs the compiled step as it was timed: nothing compiles.
                compiles = workload.compile_count() - before
                out[f"{job['id']}/{precision}/{batch}/compiles"] = np.array(compiles)
        assert shared is not None
        req = request(job, framework, "float32", 1)
        out[f"{job['id']}/own_reference"] = backend.reference_outputs(
            req, shared.weights, shared.features
        )
        out[f"{job['id']}/reference"] = shared.reference
        out[f"{job['id']}/reference_by"] = np.array(shared.meta["reference_by"])
        print(f"{framework} {job['id']}: {time.perf_counter() - start:.1f}s", file=sys.stderr)
    np.savez(out_path, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Prediction parity: the metrics, the names, the evaluation set and the run's shared files.

The fast tests here need no framework: the metrics are numpy, and a numpy "backend" stands in
for a framework when the shared files are written and read (and raced for).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bench.backends import parity as store
from bench.backends.workload import BuildRequest, Workload
from bench.measure.parity import ParityError, parity_metrics
from bench.metrics import METRICS, find_field
from bench.modeldef import load_model


def test_identical_outputs_agree_exactly():
    ref = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    found = parity_metrics(ref.copy(), ref, "classification")
    assert found["parity_max_abs"]["value"] == 0.0
    assert found["parity_mean_abs"]["value"] == 0.0
    assert found["top1_agreement"]["value"] == 1.0


def test_differences_and_agreement_with_their_arithmetic():
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    out = ref.copy()
    out[1] = [1.5, 1.0]  # |diff| 1.5: top-1 flips to class 0
    out[3, 0] = 0.25  # |diff| 0.25: class 1 still wins
    found = parity_metrics(out, ref, "classification", "reference by test")
    assert found["parity_max_abs"]["value"] == 1.5
    assert found["parity_mean_abs"]["value"] == pytest.approx((1.5 + 0.25) / 8)
    assert found["top1_agreement"]["value"] == 0.75  # 3 of 4 examples
    assert found["top1_agreement"]["examples"] == 4
    assert found["parity_max_abs"]["method"].endswith("; reference by test")


def test_regression_has_no_top1_and_nan_never_agrees():
    ref = np.zeros((3, 2))
    assert "top1_agreement" not in parity_metrics(ref, ref, "regression")
    out = np.array([[np.nan, 0.0], [0.0, 0.0], [0.0, 0.0]])
    found = parity_metrics(out, ref, "classification")
    assert found["parity_max_abs"]["value"] == float("inf")
    assert found["top1_agreement"]["value"] == pytest.approx(2 / 3)
    assert "1 non-finite prediction(s)" in found["parity_max_abs"]["method"]


def test_shapes_that_cannot_be_compared_are_refused():
    with pytest.raises(ParityError, match=r"\(3, 2\) cannot be compared with the reference's"):
        parity_metrics(np.zeros((3, 2)), np.zeros((4, 2)), "regression")
    with pytest.raises(ParityError, match="expected \\[examples, outputs\\]"):
        parity_metrics(np.zeros(3), np.zeros(3), "regression")


def test_parity_metrics_are_registered_for_every_reading_command():
    for name in ("parity_max_abs", "parity_mean_abs", "top1_agreement"):
        assert METRICS[name].samples == "cell"
        _metric, field = find_field(name)  # a --where field, hence a recommend constraint too
        assert field.compare
    assert METRICS["top1_agreement"].better == "higher"
    assert METRICS["parity_max_abs"].better == "lower"


# -- names -------------------------------------------------------------------------------------


def test_keras_paths_map_onto_flax_names():
    assert store.keras_name("resnet/stem_bn/moving_mean") == "batch_stats/stem_bn/mean"
    assert store.keras_name("resnet/stem_bn/gamma") == "params/stem_bn/scale"
    assert store.keras_name("mlp/dense_0/kernel") == "params/dense_0/kernel"
    assert (
        store.keras_name("transformer/layer_0/attention/attention_output/kernel")
        == "params/layer_0/attention/out/kernel"
    )
    assert store.keras_name("transformer/embed/embeddings") == "params/embed/embedding"


def test_flatten_and_unflatten_are_inverse():
    tree = {"params": {"a": {"kernel": np.ones((2, 3))}, "b": np.zeros(2)}, "batch_stats": {}}
    flat = store.flatten(tree)
    assert sorted(flat) == ["params/a/kernel", "params/b"]
    back = store.unflatten(flat)
    assert back["params"]["a"]["kernel"].shape == (2, 3)


def test_unmatched_names_are_listed_on_both_sides():
    given = {"params/a/kernel": np.zeros((2, 2)), "params/x": np.zeros(1)}
    with pytest.raises(store.ParitySetError, match=r"model only \['params/a/bias'\], weight set"):
        store.match_names(given, {"params/a/kernel": (2, 2), "params/a/bias": (2,)}, "here")
    with pytest.raises(store.ParitySetError, match="has shape \\(2, 2\\) in the shared set"):
        store.match_names({"params/a": np.zeros((2, 2))}, {"params/a": (2, 3)}, "here")


# -- the evaluation set and its calls ----------------------------------------------------------


def test_eval_set_is_seeded_and_apart_from_the_cells_batches():
    model = load_model("mlp")
    spec = model.data_spec(model.Args())
    a, b = store.eval_set(spec, 0, 10), store.eval_set(spec, 0, 10)
    assert all(np.array_equal(a[k], b[k]) for k in a) and "label" not in a
    assert set(a) == set(spec.features) and len(a["numeric"]) == 10
    other = store.eval_set(spec, 1, 10)
    assert not np.array_equal(a["numeric"], other["numeric"])


@pytest.mark.parametrize("batch,k", [(1, 1), (4, 1), (32, 1), (3, 2)])
def test_eval_calls_pad_and_join_back_in_order(batch: int, k: int):
    features = {"x": np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)}
    calls = store.eval_calls(features, batch, k)
    shape = (batch, 3) if k == 1 else (k, batch, 3)
    assert all(c["x"].shape == shape for c in calls)
    assert len(calls) == -(-10 // (batch * k))
    joined = store.join_outputs([c["x"][..., :2] for c in calls], 10)
    assert np.array_equal(joined, features["x"][:, :2])


# -- the run's shared files --------------------------------------------------------------------


class NumpyBackend:
    """A framework stand-in: weights from the seed, outputs = mean feature x a weight."""

    calls = 0

    @staticmethod
    def version() -> str:
        return "1.0"

    @staticmethod
    def init_weights(req: Any) -> dict[str, np.ndarray]:
        NumpyBackend.calls += 1  # subclasses count here too
        rng = np.random.default_rng(req.seed)
        return {"params/head/kernel": rng.standard_normal((1, req.spec.num_outputs))}

    @staticmethod
    def reference_outputs(req: Any, weights: dict, features: dict) -> np.ndarray:
        x = features["numeric"].mean(axis=1, keepdims=True)
        return x @ weights["params/head/kernel"]


def request(seed: int = 0, **args: Any) -> Any:
    model = load_model("mlp")
    parsed = model.Args(**args)
    key = {"model": "mlp", "framework": "numpy"}
    return SimpleNamespace(key=key, args=parsed, spec=model.data_spec(parsed), seed=seed)


def test_the_first_worker_writes_the_set_and_the_others_read_it(tmp_path: Path):
    NumpyBackend.calls = 0
    first = store.shared_set(tmp_path, request(), NumpyBackend, "numpy", n=16)
    again = store.shared_set(tmp_path, request(), NumpyBackend, "numpy", n=16)
    assert NumpyBackend.calls == 1  # initialised once, read afterwards
    assert np.array_equal(first.reference, again.reference)
    assert first.reference.shape == (16, 2)
    meta = json.loads((first.folder / store.META).read_text())
    assert meta["model_args"]["hidden"] == list(load_model("mlp").Args().hidden)
    assert meta["reference_by"] == "numpy 1.0 float32 on the CPU"
    assert meta["weights"] == {"params/head/kernel": [1, 2]}
    # Another seed or other model_args is another set, in its own folder.
    other = store.shared_set(tmp_path, request(seed=1), NumpyBackend, "numpy", n=16)
    assert other.folder != first.folder and NumpyBackend.calls == 2


def test_two_workers_racing_make_one_set(tmp_path: Path):
    NumpyBackend.calls = 0
    found: list[Any] = []
    threads = [
        threading.Thread(
            target=lambda: found.append(
                store.shared_set(tmp_path, request(), NumpyBackend, "numpy", n=16)
            )
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert NumpyBackend.calls == 1 and len(found) == 4
    assert all(np.array_equal(f.reference, found[0].reference) for f in found)


def test_an_interrupted_write_is_redone_and_a_damaged_file_named(tmp_path: Path):
    NumpyBackend.calls = 0
    first = store.shared_set(tmp_path, request(), NumpyBackend, "numpy", n=16)
    (first.folder / store.META).unlink()  # killed before meta.json: incomplete
    store.shared_set(tmp_path, request(), NumpyBackend, "numpy", n=16)
    assert NumpyBackend.calls == 2
    (first.folder / store.REFERENCE).write_bytes(b"not a zip")
    with pytest.raises(store.ParitySetError, match=r"reference\.npz: not a readable parity file"):
        store.shared_set(tmp_path, request(), NumpyBackend, "numpy", n=16)


# -- the twins through the real backends (slow: one JAX and one TensorFlow process) -------------

MLP = {"hidden": [32, 16], "vocab_size": 50, "embed_dim": 4, "num_numeric": 5, "num_categorical": 3}
# Every zoo model at a size 2 CPU cores compile quickly (ResNet-50's bottleneck blocks are held
# to the same outputs as JAX by tests/test_models.py, through the same weight names).
ZOO = {
    "mlp": ("mlp", MLP),
    "mlp_regression": ("mlp", {**MLP, "task": "regression", "num_targets": 3}),
    "resnet18": ("resnet", {"depth": 18, "image_size": 16, "width": 4, "num_classes": 10}),
    "transformer": (
        "transformer",
        {"num_layers": 2, "d_model": 32, "num_heads": 4, "seq_len": 16, "vocab_size": 100},
    ),
}
EXAMPLES = 32
TRAIN_STEPS = 20
# float32 round-off grows with the outputs' size (a ResNet's logits reach ~10 at random
# weights): the bound is 1e-5 absolute for outputs of size 1, relative above that.
F32_BOUND = 1e-5


def twin_jobs() -> list[dict[str, Any]]:
    jobs = []
    for name, (model, args) in ZOO.items():
        # float16 on the MLP only: each precision is another compile.
        mlp = name == "mlp"
        jobs.append(
            {
                "id": name,
                "model": model,
                "args": args,
                "examples": EXAMPLES,
                "precisions": ["float32", "float16"] if mlp else ["float32"],
                "batches": [8],
            }
        )
    # K batches per compiled call: the evaluation set goes in as [K, batch, ...] stacks, and
    # 32 examples fill 3.2 calls of 2 x 5: the last call is padded, the padding dropped again.
    jobs.append({**jobs[0], "id": "mlp_k2", "precisions": ["float32"], "batches": [5]})
    jobs[-1]["steps_per_call"] = 2
    train = {"kind": "train", "model": "mlp", "args": MLP, "batches": [8], "steps": TRAIN_STEPS}
    jobs.append({**train, "id": "train_float16", "precision": "float16"})
    return jobs


def run_side(framework: str, tmp: Path) -> dict[str, np.ndarray]:
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(repo), TF_CPP_MIN_LOG_LEVEL="2")
    if framework == "jax":
        # LLVM's optimisation level changes compile time (most of this test), not float results.
        env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_backend_optimization_level=0")
    else:
        env.update(CUDA_VISIBLE_DEVICES="-1", KERAS_BACKEND="tensorflow")
    out = tmp / f"{framework}.npz"
    args = [str(tmp / "jobs.json"), str(tmp / "run"), str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "tests.parity_twins", framework, *args],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, f"{framework} side failed:\n{done.stderr[-4000:]}"
    with np.load(out) as found:
        return {k: found[k] for k in found.files}


@pytest.fixture(scope="module")
def twin_sides(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, np.ndarray]]:
    tmp = tmp_path_factory.mktemp("parity")
    (tmp / "run").mkdir()
    (tmp / "jobs.json").write_text(json.dumps(twin_jobs()))
    jax_side = run_side("jax", tmp)  # first: it writes the run's parity sets
    return {"jax": jax_side, "tensorflow": run_side("tensorflow", tmp)}


def bound(reference: np.ndarray) -> float:
    return F32_BOUND * max(1.0, float(np.abs(reference).max()))


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("name", list(ZOO))
def test_float32_cpu_predictions_agree_across_frameworks(twin_sides, name):
    jax_side, tf_side = twin_sides["jax"], twin_sides["tensorflow"]
    reference = jax_side[f"{name}/reference"]
    assert str(tf_side[f"{name}/reference_by"]).startswith("jax ")  # TF read JAX's set
    assert np.array_equal(tf_side[f"{name}/reference"], reference)
    # The reference agrees with itself exactly: recomputed from the files, bit for bit.
    assert np.array_equal(jax_side[f"{name}/own_reference"], reference)
    same = parity_metrics(reference, reference, "classification")
    assert same["parity_max_abs"]["value"] == 0 and same["top1_agreement"]["value"] == 1
    # TensorFlow's float32 reference from the same weights file, and both frameworks' predict
    # cells (their compiled steps at batch 8): within round-off of the reference.
    limit = bound(reference)
    assert np.abs(tf_side[f"{name}/own_reference"] - reference).max() <= limit
    task = "regression" if name == "mlp_regression" else "classification"
    for side in (jax_side, tf_side):
        assert int(side[f"{name}/float32/8/compiles"]) == 0  # the timed step, no retrace
        found = parity_metrics(side[f"{name}/float32/8"], reference, task)
        assert found["parity_max_abs"]["value"] <= limit, (name, found)
        if task == "classification":
            assert found["top1_agreement"]["value"] == 1.0


@pytest.mark.slow
@pytest.mark.heavy
def test_float16_moves_predictions_a_little_and_stacking_or_padding_not_at_all(twin_sides):
    for side in twin_sides.values():
        reference = side["mlp/reference"]
        assert np.abs(side["mlp_k2/float32/5"] - reference).max() <= bound(reference)
        assert int(side["mlp_k2/float32/5/compiles"]) == 0
        assert np.array_equal(side["mlp_k2/reference"], reference)  # the same set, reused
        found = parity_metrics(side["mlp/float16/8"], reference, "classification")
        # float16 is really in effect (its 11-bit significand leaves ~1e-3 here), and the
        # classes stay the reference's.
        assert 1e-5 < found["parity_max_abs"]["value"] < 1e-2, found
        assert found["top1_agreement"]["value"] >= 0.95


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("framework", ["jax", "tensorflow"])
def test_float16_training_scales_the_loss_and_learns(twin_sides, framework):
    side = twin_sides[framework]
    f16 = side["train_float16/losses"]
    assert np.all(np.isfinite(f16)) and len(f16) == TRAIN_STEPS
    # The same batch every step (synthetic input): the loss falls (20 steps of Adam at 1e-3
    # took TensorFlow's float16 loss from 0.71 to 0.57 in one measured run).
    assert f16[-1] < 0.9 * f16[0]
    # No overflow in these steps: the scale is still the initial 2**15 (Keras' default, and
    # the JAX step's), below the growth interval of 2000 steps.
    assert float(side["train_float16/scale"]) == 2.0**15


@pytest.mark.slow
@pytest.mark.heavy
def test_jax_float16_skips_a_step_whose_gradients_overflow(twin_sides):
    side = twin_sides["jax"]
    assert bool(side["train_float16/overflow_skipped"])  # parameters untouched
    assert float(side["train_float16/overflow_scale"]) == 2.0**59  # and the scale halved


# -- the predict cell: prepares the set before building, predicts it after the timed phase -------


class LinearWorkload(Workload):
    """A predict step of outputs = mean(numeric) x head; float16 rounds the head."""

    def __init__(self, req: BuildRequest) -> None:
        self.compile_s, self.compile_method, self.param_count = 0.0, "nothing to compile", 1
        self.sync_method = "numpy"
        own = {"params/head/kernel": np.ones((1, 2))}  # its own initialisation
        if req.key["workload"] == "train":
            assert req.weights is None  # training starts from its own initialisation
            req = dataclasses.replace(req, weights=own)
        if req.key["batch_size"] == 2:  # twins that name their weights differently
            if req.weights is not None:
                store.match_names(req.weights, {"params/Dense_0/kernel": (1, 2)}, "linear model")
            req = dataclasses.replace(req, weights=own)
        assert req.weights is not None, "a predict cell gets the run's shared weights"
        head = req.weights["params/head/kernel"]
        self.head = head.astype(np.float16) if req.key["precision"] == "float16" else head
        self.fail = req.key["batch_size"] == 3  # a cell whose evaluation-set prediction fails

    def step(self) -> Any:
        return 1.0

    def sync(self, out: Any) -> None:
        pass

    def check_output(self, out: Any) -> str | None:
        return None

    def trace_count(self) -> int:
        return 0

    def memory(self) -> dict[str, Any]:
        return {}

    def predict_eval(self, features: Any) -> np.ndarray:
        if self.fail:
            raise RuntimeError("converter crashed")
        x = features["numeric"].mean(axis=1, keepdims=True)
        return (x @ self.head.astype(np.float32)).astype(np.float32)


class LinearBackend(NumpyBackend):
    @staticmethod
    def build(req: BuildRequest) -> Workload:
        return LinearWorkload(req)

    @staticmethod
    def calibration_matmul(precision: str, n: int) -> Any:
        return lambda: None

    @staticmethod
    def matmul_settings(device: str) -> dict[str, Any]:
        return {"tf32_allowed": False, "setting": "numpy"}


def cell_msg(run_dir: Path | None, precision: str = "float32", batch: int = 4, **key: Any):
    return {
        "cell_id": "c",
        "run_dir": str(run_dir) if run_dir else None,
        "key": {
            "model": "mlp",
            "workload": "predict",
            "framework": "numpy",
            "device": "cpu",
            "batch_size": batch,
            "precision": precision,
            "input": "synthetic",
            **key,
        },
        "model_args": {"num_numeric": 2, "num_categorical": 0, "hidden": [3]},
        "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.0, "weight_decay": 0.0},
        "seed": 0,
        "measure": {
            "warmup_steps": 1,
            "min_steps": 3,
            "min_seconds": 0.0,
            "max_seconds": 5.0,
            "target_rel_ci": 1.0,
        },
    }


def test_predict_cells_record_parity_against_the_runs_reference(tmp_path: Path):
    from bench.run.worker import run_cell

    NumpyBackend.calls = 0
    f32 = run_cell(LinearBackend, cell_msg(tmp_path))
    f16 = run_cell(LinearBackend, cell_msg(tmp_path, "float16"))
    msg = cell_msg(tmp_path / "other", "float16")
    msg["measure"]["parity_examples"] = 64
    (tmp_path / "other").mkdir()
    fewer = run_cell(LinearBackend, msg)
    assert fewer["metrics"]["parity_max_abs"]["examples"] == 64
    NumpyBackend.calls -= 1  # that run's own set
    assert NumpyBackend.calls == 1  # one weight set for both cells
    assert f32["status"] == f16["status"] == "ok", f32.get("traceback")
    m32, m16 = f32["metrics"], f16["metrics"]
    assert m32["parity_max_abs"]["value"] == 0.0 and m32["top1_agreement"]["value"] == 1.0
    assert 0 < m16["parity_max_abs"]["value"] < 1e-2  # float16's rounding of the head
    assert m16["parity_max_abs"]["examples"] == 256
    assert (
        "reference by numpy 1.0 float32 on the CPU, parity/mlp-" in m16["parity_max_abs"]["method"]
    )


def test_parity_that_cannot_be_measured_says_why_and_the_cell_stays_ok(tmp_path: Path):
    from bench.run.worker import run_cell

    failed = run_cell(LinearBackend, cell_msg(tmp_path, batch=3))
    assert failed["status"] == "ok"
    assert failed["metrics"]["top1_agreement"]["unavailable"] == (
        "evaluation-set prediction failed: RuntimeError: converter crashed"
    )
    renamed = run_cell(LinearBackend, cell_msg(tmp_path, batch=2))
    assert renamed["status"] == "ok", renamed.get("traceback")  # measured all the same
    reason = renamed["metrics"]["parity_max_abs"]["unavailable"]
    assert reason.startswith("the run's shared weights do not load: linear model: the shared")
    assert "model only ['params/Dense_0/kernel'], weight set only ['params/head/kernel']" in reason
    off = cell_msg(tmp_path)
    off["measure"]["parity_examples"] = 0
    failed_off = run_cell(LinearBackend, off)  # no shared weights: this workload refuses
    assert "a predict cell gets the run's shared weights" in failed_off["reason"]
    no_run = run_cell(LinearBackend, cell_msg(None))
    assert no_run["status"] == "failed"  # the workload insists on shared weights
    train = run_cell(LinearBackend, cell_msg(tmp_path, workload="train"))
    assert train["status"] == "ok" and "parity_max_abs" not in train["metrics"]


def test_a_backend_without_shared_weights_records_parity_unavailable(tmp_path: Path):
    from bench.run.worker import run_cell
    from tests.fixtures.toy_backend import backend as toy

    record = run_cell(toy, cell_msg(tmp_path))
    assert record["status"] == "ok"
    reason = record["metrics"]["parity_max_abs"]["unavailable"]
    assert reason == "the numpy backend provides no shared weights"
    off = cell_msg(tmp_path)
    off["measure"]["parity_examples"] = 0
    reason = run_cell(toy, off)["metrics"]["top1_agreement"]["unavailable"]
    assert reason == "measure.parity_examples is 0"


# -- reading: compare, recommend --where, the report's parity section --------------------------


def parity_record(median_s: float, max_abs: float, top1: float, **key: Any) -> dict[str, Any]:
    from bench.metrics import metric
    from tests.fixtures.runs import record

    rec = record(median_s=median_s, **key)
    how = "constructed"
    rec["metrics"]["parity_max_abs"] = metric(max_abs, "abs difference", how, examples=256)
    rec["metrics"]["parity_mean_abs"] = metric(max_abs / 10, "abs difference", how, examples=256)
    rec["metrics"]["top1_agreement"] = metric(top1, "fraction", how, examples=256)
    return rec


@pytest.fixture
def parity_run(tmp_path: Path) -> Path:
    from tests.fixtures.runs import write_run

    records = [
        parity_record(0.010, 0.0, 1.0),  # the float32 CPU baseline: 6,400 examples/s
        parity_record(0.004, 1e-3, 0.996, precision="float16"),  # 2.5x, agrees on 99.6%
        parity_record(0.002, 0.3, 0.95, precision="bfloat16"),  # 5x, agrees on 95%
        parity_record(0.001, 0.2, 0.97, precision="float16", device="gpu"),  # 10x
        parity_record(0.005, 1e-3, 0.998, precision="float16", batch_size=32),  # no baseline
    ]
    return write_run(tmp_path, "r1", records)


def test_speedups_are_against_the_same_cell_in_float32_on_the_cpu(parity_run: Path):
    from bench.read.parity import parity_points
    from bench.read.runset import load_runs

    points = {
        (p.cell.key["precision"], p.cell.key["device"], p.cell.key["batch_size"]): p
        for p in parity_points(load_runs([parity_run]).cells)
    }
    assert points["float32", "cpu", 64].speedup == pytest.approx(1.0)
    assert points["float16", "cpu", 64].speedup == pytest.approx(2.5)  # 0.010 s / 0.004 s
    assert points["bfloat16", "cpu", 64].speedup == pytest.approx(5.0)
    assert points["float16", "gpu", 64].speedup == pytest.approx(10.0)
    assert points["float16", "cpu", 32].speedup is None  # no float32 cell at batch 32


def test_recommend_where_top1_agreement_and_compare_and_report(parity_run: Path, capsys):
    from bench.cli import main

    args = ["recommend", str(parity_run), "--objective", "throughput"]
    assert main([*args, "--where", "top1_agreement>=0.99"]) == 0
    out = capsys.readouterr().out
    # The 10x GPU and 5x bfloat16 cells agree on under 99%: the float16 CPU cell at 2.5x wins.
    assert "3 of 5 cells qualify" in out and "best  cpu batch 64 float16 on vm" in out, out
    assert main(["compare", str(parity_run), "--format", "json"]) == 0
    found = {
        r["field"] for g in json.loads(capsys.readouterr().out)["groups"] for r in g["metrics"]
    }
    assert {"parity_max_abs", "parity_mean_abs", "top1_agreement"} <= found
    report = parity_run.parent / "report.md"
    assert main(["report", str(parity_run), "--format", "md", "-o", str(report)]) == 0
    text = report.read_text()
    assert "## Prediction parity: speed against agreement" in text
    assert "| cpu float16 batch 64 | 16,000 | 2.50x | 1.00e-03 | 1.00e-04 | 0.996 |" in text, text
    assert "- (no float32 CPU cell)" in text
    plot = (parity_run.parent / "report_files" / "parity-mlp-predict.svg").read_text()
    assert "speed-up over float32 on the CPU" in plot and "top-1 agreement" in plot


def test_float16_cells_take_mfu_against_the_float16_peak():
    from bench.measure.flops import matmul_precision, mfu_peak

    settings = {"tf32_allowed": True, "setting": "default", "compute_capability": "7.5"}
    in_effect = matmul_precision("float16", "gpu", settings, "Tesla T4")
    assert in_effect["value"] == "float16"
    assert mfu_peak("Tesla T4", in_effect)["value"] == 65e12  # T4 datasheet: 65 TFLOP/s fp16
    v100 = mfu_peak("Tesla V100-SXM2-16GB", matmul_precision("float16", "gpu", settings))
    assert v100["value"] == 125e12
    # No bfloat16 units on a T4: its bfloat16 cells say so instead of borrowing a peak.
    bf16 = mfu_peak("Tesla T4", matmul_precision("bfloat16", "gpu", settings, "Tesla T4"))
    assert "has no bfloat16 peak" in bf16["unavailable"]

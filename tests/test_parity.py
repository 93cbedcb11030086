"""Prediction parity: the metrics, the names, the evaluation set and the run's shared files.

The fast tests here need no framework: the metrics are numpy, and a numpy "backend" stands in
for a framework when the shared files are written and read (and raced for).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bench.backends import parity as store
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

    @classmethod
    def init_weights(cls, req: Any) -> dict[str, np.ndarray]:
        cls.calls += 1
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

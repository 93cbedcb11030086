"""Input checks that need TensorFlow or JAX, run as ``python -m tests.framework_checks
{tensorflow|jax} DATA_ROOT`` in a process of their own (TF and JAX never share the pytest
process). Prints one JSON object: check name -> "ok" or what went wrong. Importing this module
imports no framework; ``test_input_frameworks.py`` parametrizes over ``CHECKS``.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench.models import mlp

from bench.backends.workload import BuildRequest
from bench.inputs import datafiles
from bench.inputs.settings import DataFiles
from bench.modeldef import DataSpec, FeatureSpec

BATCH = 8
# Images stored larger than the model takes them: decode + resize, as real pipelines do.
SPECS: dict[str, tuple[DataSpec, DataFiles]] = {
    "images": (
        DataSpec({"image": FeatureSpec((16, 16, 3), "float32")}, "classification", 10),
        DataFiles(examples=24, shards=3, stored_image_size=24),
    ),
    "tabular": (
        mlp.data_spec(mlp.Args(num_numeric=5, num_categorical=3, vocab_size=40)),
        DataFiles(examples=40, shards=2),
    ),
    "tokens": (
        DataSpec(
            {"tokens": FeatureSpec((12,), "int32", vocab=50)},
            "classification",
            5,
            tokens_per_example=12,
        ),
        DataFiles(examples=30, shards=2),
    ),
}
PIPELINES = (
    "naive",
    "tuned",
    "tuned+cache=false+batch_before_map=false",
    "naive+device_prefetch=2",
)
# "...:k2": two steps per compiled call, so calls take [2, batch, ...] stacks.
INPUTS = ("synthetic", "numpy", *(f"tfdata:{p}" for p in PIPELINES), "numpy:k2", "tfdata:tuned:k2")
CHECKS = {
    "tensorflow": [
        *(f"decode_back_{kind}" for kind in SPECS),
        "csv_back_tabular",
        *(f"deterministic_{kind}" for kind in SPECS),
        *(f"shapes_{kind}_{inp}" for kind in SPECS for inp in INPUTS),
    ],
    "jax": [
        *(f"shapes_{kind}_{inp}" for kind in SPECS for inp in INPUTS),
        *(f"double_buffer_order_{kind}" for kind in SPECS),
        "tf_on_cpu_only_in_jax_process",
    ],
}


def data(kind: str, root: Path) -> tuple[DataSpec, datafiles.DataSet]:
    spec, files = SPECS[kind]
    return spec, datafiles.ensure(spec, files.model_copy(update={"dir": str(root)}), 0)


def request(spec: DataSpec, dataset: Any, inp: str) -> BuildRequest:
    input_, *rest = inp.split(":")
    per_call = int(rest.pop()[1:]) if rest and rest[-1].startswith("k") else 1
    key = {
        "workload": "train",
        "input": input_,
        "batch_size": BATCH,
        "steps_per_call": per_call,
        **({"pipeline": rest[0]} if rest else {}),
    }
    return BuildRequest(key, None, None, spec, None, 0, dataset, training=True)  # type: ignore[arg-type]


def expect_shapes(spec: DataSpec, batch: dict[str, Any], per_call: int = 1) -> None:
    """Every feature [B, *shape] with the spec's dtype; labels int32 [B] for classification;
    a leading [K] when a call takes K batches."""
    lead = (per_call, BATCH) if per_call > 1 else (BATCH,)
    want = {name: ((*lead, *f.shape), f.dtype) for name, f in spec.features.items()}
    want["label"] = (lead, "int32")
    got = {name: (tuple(v.shape), str(np.dtype(v.dtype.name))) for name, v in batch.items()}
    assert got == want, f"got {got}, expected {want}"


def check_decode_back(kind: str, root: Path) -> None:
    import tensorflow as tf

    spec, ds = data(kind, root)
    quality = SPECS[kind][1].jpeg_quality
    written = datafiles.generate(ds.layout, spec, 0, 0, ds.examples)
    read = list(datafiles.read_examples(ds))
    assert len(read) == ds.examples, (len(read), ds.examples)
    for i, example in enumerate(read):
        for col in ds.layout.columns:
            got, want = example[col.name], written[col.name][i]
            if col.encoding == "jpeg":
                # JPEG is lossy: the file holds exactly the JPEG of the written picture ...
                again = tf.io.decode_jpeg(tf.io.encode_jpeg(want, quality=quality)).numpy()
                assert np.array_equal(got, again), f"example {i}: not the written picture's JPEG"
                # ... which is that picture: PSNR above 20 dB. (These tiny 24x24 pictures lose
                # pixel noise and some colour at sharp edges: 23-30 dB measured; a different
                # picture of the set scores 7-15 dB.)
                mse = np.mean((got.astype(np.float64) - want) ** 2)
                assert 10 * np.log10(255**2 / mse) > 20, f"example {i}: PSNR too low"
            else:
                assert np.array_equal(got, want), f"example {i} {col.name}: {got} != {want}"


def check_csv_back(root: Path) -> None:
    spec, ds = data("tabular", root)
    written = datafiles.generate(ds.layout, spec, 0, 0, ds.examples)
    rows = list(datafiles.read_csv(ds))
    assert len(rows) == ds.examples
    for i, row in enumerate(rows):
        for name, value in row.items():
            assert np.array_equal(value, written[name][i]), f"row {i} {name}"


def check_deterministic(kind: str, root: Path) -> None:
    spec, files = SPECS[kind]
    first = data(kind, root)[1].manifest["files"]
    again = datafiles.ensure(spec, files.model_copy(update={"dir": str(root / "again")}), 0)
    assert again.made and again.manifest["files"] == first, "a second make differs"


def check_shapes(framework: str, kind: str, inp: str, root: Path) -> None:
    spec, ds = data(kind, root)
    req = request(spec, ds, inp)
    per_call = req.key["steps_per_call"]
    batches = open_batches(framework, req)
    try:
        batches.fill_cache()
        assert batches.examples_per_call == BATCH * per_call
        for _ in range(2 * ds.examples // BATCH + 1):  # past an epoch end
            batch = batches()
            batches.ready(batch)
            expect_shapes(spec, batch, per_call)
            if framework == "jax":
                import jax

                assert all(isinstance(v, jax.Array) for v in batch.values())
    finally:
        batches.close()


def check_double_buffer(kind: str, root: Path) -> None:
    """Batches through the prefetch thread == batches from plain iteration, in order."""
    from bench.inputs import tf_runtime, tfdata
    from bench.inputs.settings import resolve_label

    spec, ds = data(kind, root)
    steps = 2 * ds.examples // BATCH + 1
    tf = tf_runtime.import_tensorflow(hide_accelerators=True)
    plain = tfdata.build(tf, ds, resolve_label("tuned"), BATCH).dataset.as_numpy_iterator()
    expected = [next(plain) for _ in range(steps)]
    buffered = open_batches("jax", request(spec, ds, "tfdata:tuned"))  # device_prefetch=2
    try:
        got = [buffered() for _ in range(steps)]
    finally:
        buffered.close()
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a.keys() == b.keys()
        for name in a:
            assert np.array_equal(np.asarray(a[name]), b[name]), f"batch {i} {name} differs"


def check_tf_on_cpu_only() -> None:
    # After a JAX tfdata input opened, TensorFlow in this process sees no accelerator.
    import tensorflow as tf

    kinds = {d.device_type for d in tf.config.get_visible_devices()}
    assert kinds == {"CPU"}, f"TensorFlow sees {kinds} in the JAX process"


def open_batches(framework: str, req: BuildRequest) -> Any:
    """The provider as a single-device backend opens it: the backend's hosts and placement."""
    from bench.backends.workload import host_batches

    hosts = host_batches(req)
    if framework == "jax":
        import jax

        from bench.backends.jax import feed as feed_jax

        device = jax.devices("cpu")[0]
        return feed_jax.open_batches(req, hosts, lambda batch: jax.device_put(batch, device))
    import tensorflow as tf

    def place(batch: dict) -> dict:
        return {k: tf.convert_to_tensor(v) for k, v in batch.items()}

    from bench.backends.tensorflow import feed as feed_tf

    return feed_tf.open_batches(req, hosts, place, device="/CPU:0")


def run(framework: str, root: Path) -> dict[str, str]:
    checks: dict[str, Callable[[], None]] = {}
    for kind in SPECS:
        if framework == "tensorflow":
            checks[f"decode_back_{kind}"] = lambda k=kind: check_decode_back(k, root)
            checks[f"deterministic_{kind}"] = lambda k=kind: check_deterministic(k, root)
        else:
            checks[f"double_buffer_order_{kind}"] = lambda k=kind: check_double_buffer(k, root)
        for inp in INPUTS:
            checks[f"shapes_{kind}_{inp}"] = lambda k=kind, i=inp: check_shapes(
                framework, k, i, root
            )
    if framework == "tensorflow":
        checks["csv_back_tabular"] = lambda: check_csv_back(root)
    else:
        checks["tf_on_cpu_only_in_jax_process"] = check_tf_on_cpu_only
    results = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:
            results[name] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
    return results


if __name__ == "__main__":
    framework, root = sys.argv[1], Path(sys.argv[2])
    if framework == "tensorflow":
        import os

        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    print("RESULTS " + json.dumps(run(framework, root)))

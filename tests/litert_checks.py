"""LiteRT conversions for tests/test_litert.py, run in a process of their own (TensorFlow is
imported here, never in the pytest process):

    python -m tests.litert_checks OUT.json

Each model is converted once per mode it is checked in; the Keras twin's float32 predictions
on the run-style evaluation set are the reference. Prints nothing; ``OUT.json`` holds, per
check, the numbers the tests assert on (file sizes, differences, agreement) or the error text.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import numpy as np

from bench.axes import CellKey
from bench.backends.parity import eval_set
from bench.backends.workload import BuildRequest
from bench.modeldef import load_model
from bench.run.scenario import Optimizer

SEED = 0
EVAL = 256  # examples the predictions are compared on (the parity set's size)
# Small enough to convert in seconds, the same architectures as the edge scenario's.
MODELS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "mlp": (
        "mlp",
        {"vocab_size": 200, "hidden": [64, 32]},
        ("float32", "float16", "dynamic_int8", "int8"),
    ),
    "resnet18": (
        "resnet",
        {"depth": 18, "image_size": 8, "width": 8, "num_classes": 10, "stem": "cifar"},
        ("float32", "int8"),
    ),
}


def request(model: str, args: dict[str, Any], precision: str, batch: int) -> BuildRequest:
    m = load_model(model)
    parsed = m.Args.model_validate(args)
    key = CellKey.from_dict(
        {"model": model, "workload": "predict", "framework": "litert", "device": "cpu",
         "batch_size": batch, "precision": precision, "input": "synthetic", "xla": False,
         "steps_per_call": 1, "replicas": 1, "threads": 1}
    )  # fmt: skip
    return BuildRequest(key, m, parsed, m.data_spec(parsed), Optimizer(), SEED)


def conversions(out: dict[str, Any], run_dir: str) -> None:
    import dataclasses

    from bench.backends.litert import backend

    for name, (model, args, modes) in MODELS.items():
        req = request(model, args, "float32", 32)
        weights = backend.init_weights(req)
        features = eval_set(req.spec, SEED, EVAL)
        reference = backend.reference_outputs(req, weights, features)
        for mode in modes:
            mode_req = dataclasses.replace(
                request(model, args, mode, 32), weights=weights, run_dir=run_dir
            )
            workload = backend.build(mode_req)
            predicted = workload.predict_eval(features)
            out[f"{name}/{mode}"] = {
                "file_bytes": workload.file_bytes,
                "kept": (Path(run_dir) / workload.file_name).is_file(),
                "max_abs": float(np.abs(predicted - reference).max()),
                "ref_max_abs": float(np.abs(reference).max()),
                "top1": float(np.mean(predicted.argmax(1) == reference.argmax(1))),
            }


def failures(out: dict[str, Any], run_dir: str) -> None:
    from bench.backends.litert import backend
    from bench.backends.litert.convert import ConversionError

    corrupt = Path(run_dir) / "corrupt.tflite"
    corrupt.write_bytes(b"TFL3" + bytes(range(256)) * 4)
    try:
        backend.open_interpreter(corrupt, 1)
        out["corrupt"] = "loaded"
    except backend.ModelFileError as exc:
        out["corrupt"] = str(exc)
    cosine = "tests.fixtures.cosine_model:factory"
    out["float_ops"] = backend.build(request(cosine, {}, "int8", 4)).float_ops
    try:
        backend.build(request(cosine, {"activation": "erfinv"}, "int8", 4))
        out["unconvertible"] = "converted"
    except ConversionError as exc:
        out["unconvertible"] = str(exc)


def main(path: str) -> int:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as run_dir:
        conversions(out, run_dir)
        failures(out, run_dir)
    Path(path).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

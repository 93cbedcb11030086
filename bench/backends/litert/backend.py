"""LiteRT backend (a ``bench.backends.protocol.Backend``): convert the Keras twin, load it in
the ``ai-edge-litert`` interpreter, run batch predictions on the host CPU.

Imported only inside a LiteRT worker process. Each cell converts the model in its precision
(``bench.backends.litert.convert``; that is the cell's compile time), writes the ``.tflite``
file into the run folder (``litert/<model>-<precision>-<sha256[:12]>.tflite``: cells whose
conversions give the same bytes share one file), loads it from there with ``threads``
interpreter threads, and sizes its input tensors to the cell's batch once, so no step
reallocates. A step copies the batch into the input tensors, runs ``invoke()`` (synchronous:
it returns when the CPU kernels are done) and copies the predictions out.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from bench.backends.litert import SPEC as SPEC  # the protocol's SPEC, declared in __init__
from bench.backends.litert.convert import ENDPOINT, OUTPUT, convert
from bench.backends.parity import eval_calls, join_outputs
from bench.backends.tensorflow import backend as tf_backend
from bench.backends.workload import BuildRequest, Workload, host_batches
from bench.metrics import metric, unavailable
from bench.platform.cluster import Cluster
from bench.runfolder import MODELS_DIR  # inside the run folder: the converted model files
from bench.safefiles import make_dirs, write_atomic

SYNC_METHOD = "Interpreter.invoke() returns when the CPU kernels are done; outputs copied out"


class ModelFileError(Exception):
    """A model file the interpreter cannot load (corrupt, truncated, not a LiteRT model)."""


def setup(device: str, cluster: Cluster | None) -> None:
    if cluster is not None and cluster.num_processes > 1:
        raise RuntimeError("LiteRT runs on one host; run its cells without a multi-host cluster")


def teardown() -> None:
    """Nothing to leave."""


def version() -> str:
    # The Keras twin (the converter's source, and the parity reference when this worker writes
    # it) runs in TensorFlow: its version matters as much as the interpreter's.
    import tensorflow as tf

    litert = importlib.metadata.version("ai-edge-litert")
    return f"{litert} (Keras twin and converter: tensorflow {tf.__version__})"


def probe(device: str) -> tuple[bool, str, list[dict[str, Any]]]:
    if device != "cpu":
        return False, f"LiteRT runs on the host CPU only, not a {device.upper()}", []
    return True, "", [{"kind": "cpu", "threads": cpu_threads()}]


def cpu_threads() -> int:
    """The CPUs this process may run on (a container's or taskset's share, not the host's)."""
    return len(os.sched_getaffinity(0))


def resolve_threads(value: int | str) -> int:
    return cpu_threads() if value == "all" else int(value)


def all_gather_text(text: str) -> list[str]:
    return [text]  # one process: setup refuses multi-host jobs


def matmul_settings(device: str) -> dict[str, Any]:
    return {
        "tf32_allowed": False,
        "setting": "LiteRT CPU kernels (XNNPACK) compute float32 matmuls in float32",
        "nvidia_tf32_override": None,
    }


def calibration_matmul(precision: str, n: int) -> Any:
    """One n x n x n float32 matmul through the LiteRT interpreter (XNNPACK), the CPU peak of
    float32 and float16 cells (float16 weights are computed in float32 on CPUs). int8 kernels
    have another peak, which nothing here calibrates: their MFU is unavailable."""
    if precision not in ("float32", "float16"):
        raise ValueError(f"no {precision} peak: LiteRT's CPU peak is calibrated in float32 only")
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((n, n), tf.float32)] * 2)
    def matmul(a: Any, b: Any) -> Any:
        return tf.linalg.matmul(a, b)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([matmul.get_concrete_function()])
    interpreter = Interpreter(model_content=converter.convert(), num_threads=cpu_threads())
    interpreter.allocate_tensors()
    ones = np.ones((n, n), np.float32)
    inputs = [d["index"] for d in interpreter.get_input_details()]
    for index in inputs:
        interpreter.set_tensor(index, ones)
    return interpreter.invoke


def open_interpreter(path: Path, threads: int) -> Any:
    """The interpreter of a model file; ``ModelFileError`` naming the file when it will not load."""
    try:
        return Interpreter(model_path=str(path), num_threads=threads)
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(
            f"{path}: not a loadable LiteRT model file ({first}); expected the .tflite file the "
            "converter wrote"
        ) from None


def float_ops(path: Path) -> dict[str, int]:
    """Ops of an int8 model that still compute in float32 (op name -> count): the converter
    keeps an op without an int8 kernel in float, between a dequantize and a quantize. Read
    from the model's own graph (no XNNPACK delegate folding ops together)."""
    plain = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in plain.get_tensor_details()}
    found: dict[str, int] = {}
    # _get_ops_details is the interpreter's op listing (what TensorFlow's own model analyzer
    # reads); the public API lists tensors only.
    for op in plain._get_ops_details():
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        tensors = [i for i in (*op["inputs"], *op["outputs"]) if i >= 0]
        if any(dtypes[i] == np.float32 for i in tensors):
            found[op["op_name"]] = found.get(op["op_name"], 0) + 1
    return found


def keep_model_file(flatbuffer: bytes, run_dir: str | None, stem: str) -> tuple[Path, str]:
    """Write the converted model into the run folder (a temporary folder without one); returns
    its path and the folder-relative name the record keeps."""
    digest = hashlib.sha256(flatbuffer).hexdigest()
    name = f"{stem}-{digest[:12]}.tflite"
    if run_dir is None:
        folder = Path(tempfile.mkdtemp(prefix="bench-litert-"))
    else:
        folder = make_dirs(Path(run_dir), MODELS_DIR)  # never through a link
    path = folder / name
    # Whole or absent (a killed worker leaves no half file under its name), never through a link.
    write_atomic(path, flatbuffer)
    return path, f"{MODELS_DIR}/{name}" if run_dir is not None else str(path)


# -- the Keras twin, in float32: the converter's source and, first in a run, the parity set ----
#
# The TensorFlow backend's own functions: a LiteRT worker that writes the run's shared weights
# and reference writes what a TensorFlow worker would (the model before conversion, so LiteRT's
# float32 is measured against it, not with it).
init_weights = tf_backend.init_weights
reference_outputs = tf_backend.reference_outputs


def keras_model(req: BuildRequest, example: Mapping[str, np.ndarray]) -> Any:
    """The model's Keras twin in float32, its variables created from ``req.seed``, then set to
    the run's shared weights when the cell has them (bench.backends.parity)."""
    import keras

    keras.mixed_precision.set_global_policy("float32")  # quantization is the converter's job
    keras.utils.set_random_seed(req.seed)
    model = req.model.build_tf(req.args)
    model(dict(example), training=False)  # creates the variables
    if req.weights is not None:
        tf_backend.load_shared_weights(model, req.weights)
    return model


class LiteRTWorkload(Workload):
    sync_method = SYNC_METHOD
    compile_count_method = ""

    def __init__(self, req: BuildRequest):
        key = req.key
        self.batch_size = key["batch_size"]
        self.threads = resolve_threads(key.get("threads", "all"))
        hosts = host_batches(req)
        features = [{k: v for k, v in b.items() if k != "label"} for b in hosts]
        # Shared weights loaded before the conversion: the file holds the run's weights.
        self.model = keras_model(req, features[0])
        self.param_count = int(sum(np.prod(v.shape) for v in self.model.trainable_variables))

        converted = convert(self.model, req.spec, key["precision"], req.seed)
        stem = f"{key['model'].replace(':', '_').replace('/', '_')}-{key['precision']}"
        self.path, self.file_name = keep_model_file(converted.flatbuffer, req.run_dir, stem)
        self.file_bytes = len(converted.flatbuffer)
        self.sha256 = hashlib.sha256(converted.flatbuffer).hexdigest()
        # Analysed outside the compile time: it is bench's reading, not part of deploying.
        self.float_ops = float_ops(self.path) if key["precision"] == "int8" else None

        start = time.perf_counter()
        self.interpreter = open_interpreter(self.path, self.threads)
        self._inputs, self._output = self._size_tensors(self.interpreter, features[0])
        load_s = time.perf_counter() - start
        self.compile_s = converted.seconds + load_s
        self.compile_method = (
            f"conversion {converted.seconds:.3f} s ({converted.method}) + interpreter load "
            f"({self.threads} threads) and tensor allocation for batch {self.batch_size} "
            f"{load_s:.3f} s"
        )
        self.conversion_s = converted.seconds
        self._features = features
        self._calls = 0

    def _size_tensors(self, interpreter: Any, example: Mapping[str, np.ndarray]) -> Any:
        """Input tensor index per feature, sized to the batch, and the output's index."""
        signature = interpreter.get_signature_runner(ENDPOINT)
        inputs = {n: d["index"] for n, d in signature.get_input_details().items()}
        output = signature.get_output_details()[OUTPUT]["index"]
        del signature  # it holds views of the tensors, and allocate_tensors refuses while it lives
        missing = sorted(set(example) - set(inputs))
        if missing:
            raise ModelFileError(f"{self.path}: the model has no input named {missing[0]!r}")
        for name, index in inputs.items():
            interpreter.resize_tensor_input(index, example[name].shape, strict=True)
        interpreter.allocate_tensors()
        return inputs, output

    def _run(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        for name, index in self._inputs.items():
            self.interpreter.set_tensor(index, features[name])
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output)  # a copy, on the host

    def step(self) -> Any:
        batch = self._features[self._calls % len(self._features)]
        self._calls += 1
        return self._run(batch)

    def sync(self, out: Any) -> None:
        """Nothing to wait for: ``invoke`` is synchronous and ``get_tensor`` copied the result."""

    def infer(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._run({k: v for k, v in batch.items() if k != "label"})

    def check_output(self, out: Any) -> str | None:
        arr = np.asarray(out, dtype=np.float32)
        if not np.all(np.isfinite(arr)):
            return f"non-finite predictions ({arr.ravel()[:3].tolist()}...)"
        return None

    def trace_count(self) -> int:
        return 0  # a flatbuffer is never retraced; tensor sizes are fixed before timing

    def memory(self) -> dict[str, Any]:
        reason = "LiteRT runs in host memory; see peak_host_rss_bytes"
        return {"peak_device_memory_bytes": unavailable(reason, "bytes")}

    def backend_metrics(self) -> dict[str, Any]:
        return {
            "model_file_bytes": metric(
                self.file_bytes,
                "bytes",
                f"size of the converted .tflite file ({self.file_name})",
                path=self.file_name,
                sha256=self.sha256,
                **({} if self.float_ops is None else {"float_ops": self.float_ops}),
            ),
        }

    def predict_eval(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """The evaluation set through the converted model, in batches of this cell's size."""
        calls = eval_calls(features, self.batch_size)
        return join_outputs([self._run(call) for call in calls], len(next(iter(features.values()))))


def build(req: BuildRequest) -> Workload:
    return LiteRTWorkload(req)

"""The Keras twin -> a LiteRT (``.tflite``) flatbuffer, in one of the quantization modes.

Imported only in a LiteRT worker (it imports TensorFlow, whose converter this is). Keras 3
models do not go through ``TFLiteConverter.from_keras_model`` (it feeds a dict-input model a
single float tensor), nor through ``from_concrete_functions`` (Keras 3 variables stay resource
variables, uninitialised in the flatbuffer, and predictions come out NaN). What works, and what
Keras documents for serving, is a SavedModel written by ``keras.export.ExportArchive`` with a
``serving_default`` endpoint, converted by ``TFLiteConverter.from_saved_model``. The batch
dimension is left unknown, so one file serves every batch size (the interpreter resizes).

Modes (``precision`` values; TensorFlow's post-training quantization):
    float32       no optimisation: the Keras graph, weights in float32
    float16       weights stored in float16, dequantized to float32 when loaded on CPUs
    dynamic_int8  dynamic-range: weights in int8, activations quantized on the fly per batch
    int8          full integer: weights and activations in int8, activation ranges calibrated
                  on a representative set. An op with no int8 kernel (LayerNorm's NEG, COS)
                  is kept in float32 by the converter, between a dequantize and a quantize;
                  the cell lists such ops (``float_ops``). Inputs and outputs stay float32, so
                  every mode is fed and read the same way.

A model the converter refuses in a mode (an op LiteRT has no kernel for at all) raises
``ConversionError`` with the converter's reason: the cell fails with it, the sweep goes on.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.inputs.synthetic import make_batch
from bench.modeldef import DataSpec

MODES = ("float32", "float16", "dynamic_int8", "int8")
# Examples the int8 activation ranges are calibrated on (TensorFlow's guide suggests 100 to
# 500), one per call, drawn from the model's data spec with seeds apart from the cells' batches.
CALIBRATION_EXAMPLES = 100
CALIBRATION_SEED_OFFSET = 100_000
ENDPOINT = "serving_default"
OUTPUT = "output"


class ConversionError(Exception):
    """The converter refused the model in this mode; the message is its reason."""


@dataclass(frozen=True)
class Converted:
    flatbuffer: bytes
    seconds: float  # export + conversion (+ calibration for int8), wall clock
    method: str


def representative(spec: DataSpec, seed: int, count: int = CALIBRATION_EXAMPLES) -> Iterator:
    """The int8 calibration set: ``count`` single examples of the data spec, seeded."""
    for i in range(count):
        batch = make_batch(spec, 1, seed + CALIBRATION_SEED_OFFSET + i)
        yield {k: v for k, v in batch.items() if k != "label"}


def convert(model: Any, spec: DataSpec, mode: str, seed: int) -> Converted:
    """Export ``model`` (a built Keras model) and convert it in ``mode``; raises
    ``ConversionError`` with the converter's reason when the mode cannot take the model."""
    import keras
    import tensorflow as tf

    if mode not in MODES:
        raise ValueError(f"LiteRT converts float32, float16, dynamic_int8 or int8, not {mode!r}")
    signature = {
        name: tf.TensorSpec(
            (None, *f.shape), tf.int32 if f.dtype == "int32" else tf.float32, name=name
        )
        for name, f in spec.features.items()
    }
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-litert-") as folder:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            ENDPOINT,
            lambda features: {OUTPUT: model(features, training=False)},
            input_signature=[signature],
        )
        archive.write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if mode != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif mode == "int8":
            converter.representative_dataset = lambda: representative(spec, seed)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        try:
            flatbuffer = converter.convert()
        except Exception as exc:
            raise ConversionError(
                f"the LiteRT converter refused the model in {mode}: {converter_reason(exc)}"
            ) from exc
    seconds = time.perf_counter() - start
    calibration = (
        f" + calibration on {CALIBRATION_EXAMPLES} representative examples"
        if mode == "int8"
        else ""
    )
    method = (
        f"keras.export.ExportArchive SavedModel + tf.lite.TFLiteConverter.from_saved_model "
        f"({mode}{calibration}), wall clock"
    )
    return Converted(bytes(flatbuffer), seconds, method)


def converter_reason(exc: BaseException) -> str:
    """The converter's own words, shortened to what says why: its first ``error:`` line
    without the MLIR source location (``loc(...)``), else the exception's first line."""
    text = str(exc)
    for line in text.splitlines():
        found = re.search(r"error: (.*)", line)
        if found:
            return _drop_location(found.group(1)).strip()[:300]
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return first[:300]


def _drop_location(text: str) -> str:
    """``loc(callsite(...)): 'tf.Erfinv' op is ...`` -> ``'tf.Erfinv' op is ...``."""
    if not text.startswith("loc("):
        return text
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char == ")":
            return text[i + 1 :].lstrip(": ")
    return text

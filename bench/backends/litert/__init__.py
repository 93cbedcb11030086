"""The LiteRT backend (TensorFlow Lite): the Keras twin converted with TensorFlow's converter
and run by the ``ai-edge-litert`` interpreter on the host CPU. Declared here, implemented in
``backend`` (imported only in a LiteRT worker, which imports TensorFlow for the converter and
never JAX). docs/edge.md tells what it measures."""

from __future__ import annotations

from bench.backends.protocol import BackendSpec

SPEC = BackendSpec(
    name="litert",
    install_hint="pip install 'bench[litert]'",
    packages=("ai_edge_litert", "tensorflow", "keras"),
    device_env={"cpu": {"CUDA_VISIBLE_DEVICES": "-1"}},  # the converter's TF must not grab GPUs
    env={"KERAS_BACKEND": "tensorflow"},
    no_tpu_node="LiteRT runs on the host CPU only",
    # An edge runtime: batch predictions and one request at a time, on one CPU, from host
    # memory; the precisions are its quantization modes (bench.backends.litert.convert).
    accepts={
        "workload": ("predict", "serve"),
        "device": ("cpu",),
        "precision": ("float32", "float16", "dynamic_int8", "int8"),
        "input": ("synthetic",),
        "steps_per_call": (1,),
        "replicas": (1,),
        "arrivals": ("single_stream",),
    },
    needs_modules=("ai_edge_litert",),
)

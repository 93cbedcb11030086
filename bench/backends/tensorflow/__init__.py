"""The TensorFlow backend (Keras 3 on TF): declared here, implemented in ``backend`` (imported
only in a TensorFlow worker)."""

from __future__ import annotations

from bench.backends.protocol import BackendSpec

SPEC = BackendSpec(
    name="tensorflow",
    install_hint="pip install 'bench[tf]'",
    packages=("tensorflow", "keras"),
    device_env={"cpu": {"CUDA_VISIBLE_DEVICES": "-1"}},  # else TF claims every GPU's memory
    env={"KERAS_BACKEND": "tensorflow"},
    worker_per_replica_count=True,
    # dynamic_int8 and int8 are LiteRT's quantized formats (docs/edge.md).
    accepts={"precision": ("float32", "bfloat16", "float16")},
)

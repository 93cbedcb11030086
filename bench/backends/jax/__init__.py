"""The JAX backend: declared here, implemented in ``backend`` (imported only in a JAX worker)."""

from __future__ import annotations

from bench.backends.protocol import BackendSpec

SPEC = BackendSpec(
    name="jax",
    install_hint="pip install 'bench[jax]'",
    packages=(
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "libtpu",
        "libtpu-nightly",
        "jax-cuda12-plugin",
        "jax-cuda12-pjrt",
        "jax-cuda13-plugin",
        "jax-cuda13-pjrt",
    ),
    # Only the platform a group measures (first: the default), no probing (or grabbing) of
    # other accelerators; the host CPU beside it computes the float32 parity reference.
    device_env={
        "cpu": {"JAX_PLATFORMS": "cpu"},
        "gpu": {"JAX_PLATFORMS": "cuda,cpu"},
        "tpu": {"JAX_PLATFORMS": "tpu,cpu"},
    },
    cpu_devices_env="JAX_NUM_CPU_DEVICES",
    no_tpu_node=(
        "JAX cannot drive a legacy TPU node (its remote tpu_driver was removed in jax 0.4); "
        "run the JAX cells on a TPU VM"
    ),
    # dynamic_int8 and int8 are LiteRT's quantized formats (docs/edge.md).
    accepts={"precision": ("float32", "bfloat16", "float16")},
)

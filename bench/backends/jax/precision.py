"""How JAX's matmul-precision setting reads for float32 matmuls on GPUs (no JAX import here)."""

from __future__ import annotations

# jax_default_matmul_precision values (config names and the jnp.dot precision names) that leave
# XLA free to run float32 matmuls as TF32 on GPUs; "highest"/"float32" forbid it.
TF32_ALLOWED = {None, "", "default", "fastest", "bfloat16", "high", "tensorfloat32"}
FULL_FLOAT32 = {"highest", "float32"}


def tf32_allowed(configured: object) -> bool | None:
    """True when the setting lets float32 matmuls run as TF32, False when it forbids it, None
    for a value this bench does not know."""
    name = None if configured is None else str(configured).strip().lower()
    if name in FULL_FLOAT32:
        return False
    return True if name in TF32_ALLOWED else None

"""Synthetic examples for any model's ``DataSpec``, made on the host with numpy.

Labels come from a fixed random "teacher" (seeded apart from the batch), so the task is
learnable: a training step that does not reduce the loss on it is broken. The teacher reduces
each feature to a small vector (float features: mean over all but the last axis, then a linear
map; integer features: a lookup table averaged over positions), which keeps it cheap for
224x224 images and long token sequences alike.
"""

from __future__ import annotations

import numpy as np

from bench.modeldef import DataSpec

TEACHER_SEED = 1234


def make_batch(spec: DataSpec, batch_size: int, seed: int) -> dict[str, np.ndarray]:
    """Features plus ``label`` (int32 ``[B]`` for classification, float32 ``[B, n]`` otherwise)."""
    rng = np.random.default_rng(seed)
    batch: dict[str, np.ndarray] = {}
    for name, feature in spec.features.items():
        shape = (batch_size, *feature.shape)
        if feature.dtype == "int32":
            batch[name] = rng.integers(0, feature.vocab or 2, size=shape, dtype=np.int32)
        else:
            batch[name] = rng.standard_normal(shape, dtype=np.float32)
    batch["label"] = teacher_labels(spec, batch)
    return batch


def teacher_labels(spec: DataSpec, features: dict[str, np.ndarray]) -> np.ndarray:
    teacher = np.random.default_rng(TEACHER_SEED)
    score = None
    for name in sorted(spec.features):
        feature, x = spec.features[name], features[name]
        batch = x.shape[0]
        if feature.dtype == "int32":
            table = teacher.standard_normal(
                (feature.vocab or 2, spec.num_outputs), dtype=np.float32
            )
            part = table[x.reshape(batch, -1)].mean(axis=1)
        else:
            width = x.shape[-1] if x.ndim > 1 else 1
            pooled = x.reshape(batch, -1, width).mean(axis=1)
            # Pooling over many positions shrinks the signal; rescale to unit variance.
            pooled = pooled * np.sqrt(x.reshape(batch, -1, width).shape[1])
            weights = teacher.standard_normal((width, spec.num_outputs), dtype=np.float32)
            part = pooled @ weights / np.sqrt(width)
        score = part if score is None else score + part
    assert score is not None, "a DataSpec needs at least one feature"
    if spec.task == "classification":
        return score.argmax(axis=1).astype(np.int32)
    return score.astype(np.float32)

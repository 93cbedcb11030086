"""Multilayer perceptron for structured (tabular) data: numeric features plus categorical
embeddings, the shape of a click-through or churn model.

Architecture (identical in both twins): each of ``num_categorical`` integer features is looked up
in its own ``vocab_size x embed_dim`` table; the embeddings are concatenated with the
``num_numeric`` float features, then pass through ``hidden`` ReLU dense layers and a linear head
with ``num_classes`` logits (classification) or ``num_targets`` outputs (regression). The head
computes in float32 under mixed precision (Keras' advice for the last layer), in both twins.
Initialisers are Keras' defaults in both twins (Glorot-uniform kernels, zero biases, embeddings
uniform in [-0.05, 0.05]; Flax's own defaults differ), and layer names match, so weights
transfer by name.

FLOPs per example (a multiply-add counts 2; lookups, biases and activations are ignored as they
are O(width), not O(width^2)):
    d_0 = num_numeric + num_categorical * embed_dim,  d_1..d_L = hidden,  d_{L+1} = outputs
    predict = 2 * sum_i d_i * d_{i+1}
    train   = 3 * predict   (backward costs two matmuls per forward matmul: input and weight grads)
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bench.limits import MAX_LAYERS, MAX_VOCAB, MAX_WIDTH, count
from bench.modeldef import DataSpec, FeatureSpec

EMBED_INIT_LIMIT = 0.05

DESCRIPTION = "tabular MLP: numeric features + categorical embeddings -> dense ReLU stack"


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    num_numeric: count(MAX_WIDTH, ge=0) = 13
    num_categorical: count(MAX_WIDTH, ge=0) = 8
    vocab_size: count(MAX_VOCAB) = 1000
    embed_dim: count(MAX_WIDTH) = 16
    hidden: tuple[count(MAX_WIDTH), ...] = Field((256, 128), min_length=1, max_length=MAX_LAYERS)
    task: Literal["classification", "regression"] = "classification"
    num_classes: count(MAX_VOCAB, ge=2) = 2
    num_targets: count(MAX_WIDTH) = 1


def _outputs(args: Args) -> int:
    return args.num_classes if args.task == "classification" else args.num_targets


def data_spec(args: Args) -> DataSpec:
    features = {}
    if args.num_numeric:
        features["numeric"] = FeatureSpec((args.num_numeric,), "float32")
    if args.num_categorical:
        features["categorical"] = FeatureSpec(
            (args.num_categorical,), "int32", vocab=args.vocab_size
        )
    return DataSpec(features=features, task=args.task, num_outputs=_outputs(args))


def layer_widths(args: Args) -> list[int]:
    d0 = args.num_numeric + args.num_categorical * args.embed_dim
    return [d0, *args.hidden, _outputs(args)]


def flops_per_example(args: Args, workload: str) -> float:
    widths = layer_widths(args)
    forward = 2.0 * sum(a * b for a, b in itertools.pairwise(widths))
    return 3.0 * forward if workload == "train" else forward


def build_tf(args: Args) -> Any:
    import keras
    from keras import ops

    class TabularMLP(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.embeds = [
                keras.layers.Embedding(args.vocab_size, args.embed_dim, name=f"embed_{i}")
                for i in range(args.num_categorical)
            ]
            self.hidden = [
                keras.layers.Dense(w, activation="relu", name=f"dense_{j}")
                for j, w in enumerate(args.hidden)
            ]
            self.head = keras.layers.Dense(_outputs(args), dtype="float32", name="head")

        def call(self, features: dict, training: bool = False) -> Any:
            parts = []
            if args.num_numeric:
                parts.append(ops.cast(features["numeric"], self.compute_dtype))
            for i, embed in enumerate(self.embeds):
                parts.append(embed(features["categorical"][:, i]))
            x = ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
            for layer in self.hidden:
                x = layer(x)
            return self.head(x)

    return TabularMLP()


def build_jax(args: Args, dtype: Any) -> Any:
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    def keras_uniform(key: Any, shape: Any, dtype: Any = jnp.float32) -> Any:
        # Keras' Embedding default, RandomUniform(-0.05, 0.05).
        return jax.random.uniform(key, shape, dtype, -EMBED_INIT_LIMIT, EMBED_INIT_LIMIT)

    def dense(width: int, name: str, out_dtype: Any) -> Any:
        return nn.Dense(
            width,
            kernel_init=nn.initializers.glorot_uniform(),  # Keras' Dense default
            dtype=out_dtype,
            param_dtype=jnp.float32,
            name=name,
        )

    class TabularMLP(nn.Module):
        @nn.compact
        def __call__(self, features: dict, train: bool = False) -> Any:
            parts = []
            if args.num_numeric:
                parts.append(features["numeric"].astype(dtype))
            for i in range(args.num_categorical):
                embed = nn.Embed(
                    args.vocab_size,
                    args.embed_dim,
                    embedding_init=keras_uniform,
                    dtype=dtype,
                    param_dtype=jnp.float32,
                    name=f"embed_{i}",
                )
                parts.append(embed(features["categorical"][:, i]))
            x = jnp.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
            for j, width in enumerate(args.hidden):
                x = nn.relu(dense(width, f"dense_{j}", dtype)(x))
            return dense(_outputs(args), "head", jnp.float32)(x)

    return TabularMLP()

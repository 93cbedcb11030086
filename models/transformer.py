"""BERT-style Transformer encoder with a classification head: the sequence workload (text
classification, ranking) that teams size accelerators for. tokens/s is reported.

Architecture (identical in both twins; Devlin et al. 2019, without token-type embeddings and
dropout, which a throughput benchmark does not need):
    embed   token embedding (vocab x d) + learned position embedding (seq_len x d), LayerNorm
    layers  ``num_layers`` post-LN blocks: x = LN(x + MHA(x)); x = LN(x + W2 gelu(W1 x)),
            MHA with ``num_heads`` heads of d / num_heads, W1: d -> f = mlp_ratio * d, exact
            (erf) GELU, biases everywhere
    head    the first token ([CLS]) through dense d -> d with tanh (BERT's pooler), then dense
            d -> ``num_classes`` logits in float32 (Keras' advice for the last layer under mixed
            precision)
Initialisers as BERT (truncated normal, stddev 0.02, for every kernel and embedding; zero
biases); LayerNorm epsilon 1e-12 in both twins (Keras' default is 1e-3, Flax's 1e-6). Under
bfloat16 mixed precision both twins compute LayerNorm statistics and the attention softmax in
float32 and everything else in bfloat16, as Keras' MultiHeadAttention and LayerNormalization
do (Flax: ``force_fp32_for_softmax``; its LayerNorm reduces in float32).

Layer names match across twins (``layer_0/attention/query``...), so weights transfer by name;
Keras' ``attention_output`` is Flax's ``out``.

FLOPs per example (a multiply-add counts 2; softmax, LayerNorm, GELU, embedding lookups and
biases are ignored, they are O(S d) or O(S^2 h) against O(S d^2)), with S = seq_len,
d = d_model, f = mlp_ratio * d, L = num_layers, C = num_classes:
    per layer = 2 S (4 d^2)        Q, K, V and output projections
              + 2 (2 S^2 d)        scores Q K^T and the weighted sum of V
              + 2 S (2 d f)        the two MLP matmuls
    predict   = L * per layer + 2 d^2 (pooler) + 2 d C (classifier)
    train     = 3 * predict   (backward = two matmuls per forward one: input and weight grads)
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.limits import MAX_LAYERS, MAX_SEQ_LEN, MAX_VOCAB, MAX_WIDTH, count
from bench.modeldef import DataSpec, FeatureSpec

DESCRIPTION = "BERT-style Transformer encoder (post-LN, GELU) with a [CLS] classification head"

LN_EPSILON = 1e-12
INIT_STDDEV = 0.02


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    num_layers: count(MAX_LAYERS) = 12
    d_model: count(MAX_WIDTH) = 768
    num_heads: count(MAX_WIDTH) = 12
    mlp_ratio: count(64) = Field(4, description="MLP hidden width over d_model")
    seq_len: count(MAX_SEQ_LEN) = 128
    vocab_size: count(MAX_VOCAB, ge=2) = 30522
    num_classes: count(MAX_VOCAB, ge=2) = 2

    @model_validator(mode="after")
    def _heads_divide_width(self) -> Self:
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model {self.d_model} must be a multiple of num_heads {self.num_heads}"
            )
        return self


def data_spec(args: Args) -> DataSpec:
    tokens = FeatureSpec((args.seq_len,), "int32", vocab=args.vocab_size)
    return DataSpec(
        features={"tokens": tokens},
        task="classification",
        num_outputs=args.num_classes,
        tokens_per_example=args.seq_len,
    )


def flops_per_example(args: Args, workload: str) -> float:
    s, d = args.seq_len, args.d_model
    f = args.mlp_ratio * d
    per_layer = 2.0 * s * 4 * d * d + 2.0 * 2 * s * s * d + 2.0 * s * 2 * d * f
    forward = args.num_layers * per_layer + 2.0 * d * d + 2.0 * d * args.num_classes
    return 3.0 * forward if workload == "train" else forward


def build_tf(args: Args) -> Any:
    import keras

    init = keras.initializers.TruncatedNormal(stddev=INIT_STDDEV)
    d, f = args.d_model, args.mlp_ratio * args.d_model

    class EncoderLayer(keras.layers.Layer):
        def __init__(self, name: str) -> None:
            super().__init__(name=name)
            self.attention = keras.layers.MultiHeadAttention(
                args.num_heads, d // args.num_heads, kernel_initializer=init, name="attention"
            )
            self.attention_norm = keras.layers.LayerNormalization(
                epsilon=LN_EPSILON, name="attention_norm"
            )
            self.mlp_in = keras.layers.Dense(
                f, activation="gelu", kernel_initializer=init, name="mlp_in"
            )
            self.mlp_out = keras.layers.Dense(d, kernel_initializer=init, name="mlp_out")
            self.mlp_norm = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name="mlp_norm")

        def call(self, x: Any) -> Any:
            x = self.attention_norm(x + self.attention(x, x))
            return self.mlp_norm(x + self.mlp_out(self.mlp_in(x)))

    class Encoder(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="transformer")
            self.token_embed = keras.layers.Embedding(
                args.vocab_size, d, embeddings_initializer=init, name="token_embed"
            )
            self.position_embed = keras.layers.Embedding(
                args.seq_len, d, embeddings_initializer=init, name="position_embed"
            )
            self.embed_norm = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name="embed_norm")
            self.layers_ = [EncoderLayer(f"layer_{i}") for i in range(args.num_layers)]
            self.pooler = keras.layers.Dense(
                d, activation="tanh", kernel_initializer=init, name="pooler"
            )
            self.head = keras.layers.Dense(
                args.num_classes, kernel_initializer=init, dtype="float32", name="head"
            )

        def call(self, features: dict, training: bool = False) -> Any:
            tokens = features["tokens"]
            positions = keras.ops.arange(tokens.shape[1])
            x = self.token_embed(tokens) + self.position_embed(positions)[None]
            x = self.embed_norm(x)
            for layer in self.layers_:
                x = layer(x)
            return self.head(self.pooler(x[:, 0]))

    return Encoder()


def build_jax(args: Args, dtype: Any) -> Any:
    import flax.linen as nn
    import jax.numpy as jnp

    init = nn.initializers.truncated_normal(stddev=INIT_STDDEV)
    d, f = args.d_model, args.mlp_ratio * args.d_model

    def dense(width: int, name: str, out_dtype: Any = None) -> Any:
        return nn.Dense(
            width,
            kernel_init=init,
            dtype=out_dtype or dtype,
            param_dtype=jnp.float32,
            name=name,
        )

    def layer_norm(name: str) -> Any:
        # Two-pass variance, as Keras computes it (Flax's default is E[x^2] - E[x]^2).
        return nn.LayerNorm(
            epsilon=LN_EPSILON,
            use_fast_variance=False,
            dtype=dtype,
            param_dtype=jnp.float32,
            name=name,
        )

    class EncoderLayer(nn.Module):
        @nn.compact
        def __call__(self, x: Any) -> Any:
            attention = nn.MultiHeadDotProductAttention(
                num_heads=args.num_heads,
                qkv_features=d,
                out_features=d,
                kernel_init=init,
                force_fp32_for_softmax=True,
                deterministic=True,
                dtype=dtype,
                param_dtype=jnp.float32,
                name="attention",
            )
            x = layer_norm("attention_norm")(x + attention(x))
            # Keras' "gelu" is the exact (erf) form; jax.nn.gelu defaults to the tanh one.
            hidden = nn.gelu(dense(f, "mlp_in")(x), approximate=False)
            return layer_norm("mlp_norm")(x + dense(d, "mlp_out")(hidden))

    class Encoder(nn.Module):
        @nn.compact
        def __call__(self, features: dict, train: bool = False) -> Any:
            tokens = features["tokens"]
            embed = {"embedding_init": init, "dtype": dtype, "param_dtype": jnp.float32}
            x = nn.Embed(args.vocab_size, d, name="token_embed", **embed)(tokens)
            positions = jnp.arange(tokens.shape[1])
            x = x + nn.Embed(args.seq_len, d, name="position_embed", **embed)(positions)[None]
            x = layer_norm("embed_norm")(x)
            for i in range(args.num_layers):
                x = EncoderLayer(name=f"layer_{i}")(x)
            pooled = jnp.tanh(dense(d, "pooler")(x[:, 0]))
            return dense(args.num_classes, "head", jnp.float32)(pooled)

    return Encoder()

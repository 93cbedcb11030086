"""GPT-style decoder-only Transformer: the text-generation model (``workload: generate``) whose
prefill and decode steps bench measures apart, with a KV cache.

Architecture (identical in both twins; GPT-2's block, Radford et al. 2019, without dropout):
    embed   token embedding (vocab x d) + learned position embedding (max_positions x d)
    layers  ``num_layers`` pre-LN blocks: x = x + MHA(LN(x)); x = x + W2 gelu(W1 LN(x)),
            causal MHA with ``num_heads`` heads of d / num_heads (separate query, key, value
            and output projections), W1: d -> f = mlp_ratio * d, exact (erf) GELU, biases
            everywhere
    head    a final LayerNorm, then an untied dense d -> vocab without bias (the logits).
            Untied (Llama's choice, not GPT-2's): the head is its own d x vocab matrix, so a
            decode step reads it as well as the embedding table, and weight_bytes counts both.
Initialisers: truncated normal, stddev 0.02, for every kernel and embedding; zero biases.
LayerNorm epsilon 1e-5 in both twins (GPT-2's). Under bfloat16 or float16 both twins compute
LayerNorm statistics and the attention softmax in float32 and everything else in the low
precision, as the Transformer encoder twins do; keys and values are cached in the compute
dtype.

Layer names match across twins (``layer_0/attention/query/kernel``...), so float32 weights
transfer by name (``bench.backends.parity.keras_name``). The attention core is written once per
framework (``attention_jax``, ``attention_tf``) and reached through an ``attend(q, k, v)`` hook
that each block calls, so the compiled decoders (``bench.backends.<name>.generate``) read and
write their KV cache there while the twins keep one forward pass.

As a bench model (``flops_per_example``, ``data_spec``) the decoder is a next-token forward
pass: ``max_positions`` tokens in, the last position's logits out (``[B, vocab]``), so a
predict or train cell runs it like any classifier over the vocabulary.

FLOPs (a multiply-add counts 2; softmax, LayerNorm, GELU, embedding lookups and biases are
ignored), with d = d_model, f = mlp_ratio * d, L = num_layers, V = vocab_size:
    per token per layer   2 (4 d^2) + 2 (2 d f)    Q, K, V, output projections; the MLP
    attention             2 (2 d) per (query, key) pair attended: scores and weighted sum
    prefill(P)  = L (P (8 d^2 + 4 d f) + 2 d P (P + 1)) + 2 d V
                  causal: position i attends to i + 1 positions, P (P + 1) / 2 pairs; the head
                  runs on the last position only (the first token's logits)
    decode(C)   = L (8 d^2 + 4 d f + 4 d C) + 2 d V     per sequence per step, attending to
                  C = position + 1 cached positions (its own included)
    predict     = prefill(max_positions)      train = 3 * predict
The compiled decode step attends over the whole cache row (masked, fixed shapes), so it does
up to cache_len / C times the attention work counted; the count is the useful work.

Memory: kv_cache_bytes = 2 (keys, values) * L * slots * cache_len * d * width;
weight_bytes = LayerNorm parameters in float32 + every other parameter at the precision's width
(what the JAX decoder keeps on the device; Keras' mixed policy keeps float32 variables);
decode_step_bytes = what one decode step reads: the weights less the embedding tables (a row of
each gathered per slot) plus the whole cache (the step attends over every row's full length).

Goal size on a GPU (about 0.94 B parameters: 1.9 GB in bfloat16; 131 KB of KV cache per cached
position in bfloat16):
    model_args: {num_layers: 16, d_model: 2048, num_heads: 16, vocab_size: 32000,
                 max_positions: 2048}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.limits import MAX_LAYERS, MAX_SEQ_LEN, MAX_VOCAB, MAX_WIDTH, count
from bench.modeldef import DataSpec, FeatureSpec

DESCRIPTION = "GPT-style decoder-only Transformer (pre-LN, GELU, untied head) with a KV cache"

LN_EPSILON = 1e-5
INIT_STDDEV = 0.02
# Masked attention scores: far below any real score, finite so a softmax row never sees inf.
MASKED = -1e30
# Bytes per value at each precision (keys, values, weights).
WIDTH = {"float32": 4, "bfloat16": 2, "float16": 2}

# An attention hook: one block's fresh (q, k, v), each [B, S, heads, head_dim], -> the attended
# values [B, S, heads, head_dim].
Attend = Callable[[Any, Any, Any], Any]


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    num_layers: count(MAX_LAYERS) = 2
    d_model: count(MAX_WIDTH) = 64
    num_heads: count(MAX_WIDTH) = 4
    mlp_ratio: count(64) = Field(4, description="MLP hidden width over d_model")
    vocab_size: count(MAX_VOCAB, ge=2) = 512
    max_positions: count(MAX_SEQ_LEN) = Field(
        256, description="position embeddings: the longest prompt plus output (cache_len)"
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> Self:
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model {self.d_model} must be a multiple of num_heads {self.num_heads}"
            )
        return self


# -- analytic figures (no framework) --------------------------------------------------------


def _per_token_layer_flops(args: Args) -> float:
    d, f = args.d_model, args.mlp_ratio * args.d_model
    return 2.0 * 4 * d * d + 2.0 * 2 * d * f


def prefill_flops(args: Args, prompt_len: int) -> float:
    """FLOPs of one prompt's prefill: every layer over ``prompt_len`` positions (causal) and
    the head on the last position."""
    p, d = prompt_len, args.d_model
    per_layer = p * _per_token_layer_flops(args) + 2.0 * d * p * (p + 1)
    return args.num_layers * per_layer + 2.0 * d * args.vocab_size


def decode_flops(args: Args, context_len: int) -> float:
    """FLOPs of one decode step for one sequence attending to ``context_len`` positions."""
    d = args.d_model
    per_layer = _per_token_layer_flops(args) + 4.0 * d * context_len
    return args.num_layers * per_layer + 2.0 * d * args.vocab_size


def param_shapes(args: Args) -> dict[str, tuple[int, ...]]:
    """Every parameter's canonical name (``bench.backends.parity``) and shape, as both twins
    create them."""
    d, f, v = args.d_model, args.mlp_ratio * args.d_model, args.vocab_size
    shapes: dict[str, tuple[int, ...]] = {
        "params/token_embed/embedding": (v, d),
        "params/position_embed/embedding": (args.max_positions, d),
        "params/final_norm/scale": (d,),
        "params/final_norm/bias": (d,),
        "params/head/kernel": (d, v),
    }
    for i in range(args.num_layers):
        layer = f"params/layer_{i}"
        for norm in ("attention_norm", "mlp_norm"):
            shapes |= {f"{layer}/{norm}/scale": (d,), f"{layer}/{norm}/bias": (d,)}
        for name in ("query", "key", "value", "out"):
            shapes |= {
                f"{layer}/attention/{name}/kernel": (d, d),
                f"{layer}/attention/{name}/bias": (d,),
            }
        shapes |= {f"{layer}/mlp_in/kernel": (d, f), f"{layer}/mlp_in/bias": (f,)}
        shapes |= {f"{layer}/mlp_out/kernel": (f, d), f"{layer}/mlp_out/bias": (d,)}
    return shapes


def norm_param_count(args: Args) -> int:
    """LayerNorm scales and offsets: two norms a block and the final one."""
    return (2 * args.num_layers + 1) * 2 * args.d_model


def param_count(args: Args) -> int:
    d, f, v = args.d_model, args.mlp_ratio * args.d_model, args.vocab_size
    per_layer = 4 * (d * d + d) + (d * f + f) + (f * d + d)
    embeddings = v * d + args.max_positions * d
    return embeddings + args.num_layers * per_layer + norm_param_count(args) + d * v


def width(precision: str) -> int:
    if precision not in WIDTH:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(WIDTH)}")
    return WIDTH[precision]


def weight_bytes(args: Args, precision: str) -> int:
    """Bytes of the weights a decode step reads: LayerNorm parameters in float32, the rest at
    the precision's width."""
    norms = norm_param_count(args)
    return (param_count(args) - norms) * width(precision) + norms * 4


def kv_cache_bytes(args: Args, slots: int, cache_len: int, precision: str) -> int:
    """Bytes of the KV cache: keys and values of every layer, slot and position."""
    return 2 * args.num_layers * slots * cache_len * args.d_model * width(precision)


def decode_step_bytes(args: Args, slots: int, cache_len: int, precision: str) -> int:
    """Bytes one compiled decode step must read from memory: every weight but the embedding
    tables (a row of each per slot is gathered), and the whole KV cache (each row attends over
    all its ``cache_len`` positions, masked). Over the step time: the memory bandwidth used."""
    w, d = width(precision), args.d_model
    tables = (args.vocab_size + args.max_positions) * d
    gathered = 2 * slots * d  # a token row and a position row per slot
    weights = weight_bytes(args, precision) - (tables - gathered) * w
    return weights + kv_cache_bytes(args, slots, cache_len, precision)


def data_spec(args: Args) -> DataSpec:
    tokens = FeatureSpec((args.max_positions,), "int32", vocab=args.vocab_size)
    return DataSpec(
        features={"tokens": tokens},
        task="classification",
        num_outputs=args.vocab_size,
        tokens_per_example=args.max_positions,
    )


def flops_per_example(args: Args, workload: str) -> float:
    forward = prefill_flops(args, args.max_positions)
    return 3.0 * forward if workload == "train" else forward


# -- the attention core, once per framework --------------------------------------------------


def attention_jax(q: Any, k: Any, v: Any, mask: Any) -> Any:
    """Scaled dot-product attention: q [B, S, H, D], k and v heads first [B, H, T, D] (a KV
    cache's layout: both matmuls then batch over (B, H) with no transpose of the cache), mask
    broadcastable to [B, S, T] (True: attend). Scores and softmax in float32, the rest in q's
    dtype. Returns [B, S, H, D]."""
    import jax
    import jax.numpy as jnp

    q = q * jnp.asarray(1.0 / math.sqrt(q.shape[-1]), q.dtype)
    scores = jnp.einsum("bshd,bhtd->bhst", q, k).astype(jnp.float32)
    scores = jnp.where(mask[:, None], scores, MASKED)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("bhst,bhtd->bshd", probs, v)


def attention_tf(q: Any, k: Any, v: Any, mask: Any) -> Any:
    """``attention_jax`` in TensorFlow, the same operations in the same order."""
    import tensorflow as tf

    q = q * tf.cast(1.0 / math.sqrt(q.shape[-1]), q.dtype)
    scores = tf.cast(tf.einsum("bshd,bhtd->bhst", q, k), tf.float32)
    scores = tf.where(mask[:, None], scores, MASKED)
    probs = tf.cast(tf.nn.softmax(scores, axis=-1), v.dtype)
    return tf.einsum("bhst,bhtd->bshd", probs, v)


def causal_mask(length: int, xp: Any) -> Any:
    """[1, length, length], True where query i may see key j (j <= i); ``xp`` is jnp or np."""
    positions = xp.arange(length)
    return (positions[None, :] <= positions[:, None])[None]


# -- the twins ---------------------------------------------------------------------------------


def build_tf(args: Args) -> Any:
    import keras
    import numpy as np
    import tensorflow as tf

    init = keras.initializers.TruncatedNormal(stddev=INIT_STDDEV)
    d, h, f = args.d_model, args.num_heads, args.mlp_ratio * args.d_model

    def dense(width: int, name: str, **kw: Any) -> Any:
        return keras.layers.Dense(width, kernel_initializer=init, name=name, **kw)

    def norm(name: str) -> Any:
        return keras.layers.LayerNormalization(epsilon=LN_EPSILON, name=name)

    class Attention(keras.layers.Layer):
        def __init__(self) -> None:
            super().__init__(name="attention")
            self.query, self.key, self.value = (dense(d, n) for n in ("query", "key", "value"))
            self.out = dense(d, "out")

        def call(self, x: Any, attend: Attend) -> Any:
            def heads(t: Any) -> Any:
                return tf.reshape(t, [tf.shape(t)[0], tf.shape(t)[1], h, d // h])

            o = attend(heads(self.query(x)), heads(self.key(x)), heads(self.value(x)))
            return self.out(tf.reshape(o, [tf.shape(o)[0], tf.shape(o)[1], d]))

    class Block(keras.layers.Layer):
        def __init__(self, name: str) -> None:
            super().__init__(name=name)
            self.attention_norm = norm("attention_norm")
            self.attention = Attention()
            self.mlp_norm = norm("mlp_norm")
            self.mlp_in = dense(f, "mlp_in", activation="gelu")  # Keras' gelu: exact (erf)
            self.mlp_out = dense(d, "mlp_out")

        def call(self, x: Any, attend: Attend) -> Any:
            x = x + self.attention(self.attention_norm(x), attend=attend)
            return x + self.mlp_out(self.mlp_in(self.mlp_norm(x)))

    class Decoder(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="decoder")
            embed = {"embeddings_initializer": init}
            self.token_embed = keras.layers.Embedding(
                args.vocab_size, d, name="token_embed", **embed
            )
            self.position_embed = keras.layers.Embedding(
                args.max_positions, d, name="position_embed", **embed
            )
            self.layers_ = [Block(f"layer_{i}") for i in range(args.num_layers)]
            self.final_norm = norm("final_norm")
            self.head = dense(args.vocab_size, "head", use_bias=False)

        def hidden(self, tokens: Any, positions: Any, attends: Callable[[int], Attend]) -> Any:
            """The last block's output [B, S, d]; ``attends(i)`` is block i's attention."""
            x = self.token_embed(tokens) + self.position_embed(positions)
            for i, block in enumerate(self.layers_):
                x = block(x, attend=attends(i))
            return x

        def logits_of(self, x: Any) -> Any:
            return tf.cast(self.head(self.final_norm(x)), tf.float32)

        def logits(self, tokens: Any) -> Any:
            """Every position's logits [B, S, V], causal, no cache (the reference)."""
            s = tokens.shape[1]
            mask = tf.constant(causal_mask(s, np))
            x = self.hidden(tokens, tf.range(s)[None], lambda i: _causal_tf(mask))
            return self.logits_of(x)

        def call(self, features: dict, training: bool = False) -> Any:
            tokens = features["tokens"]
            s = tokens.shape[1]
            mask = tf.constant(causal_mask(s, np))
            x = self.hidden(tokens, tf.range(s)[None], lambda i: _causal_tf(mask))
            return self.logits_of(x[:, -1])

    return Decoder()


def _causal_tf(mask: Any) -> Attend:
    import tensorflow as tf

    def first(t: Any) -> Any:
        return tf.transpose(t, [0, 2, 1, 3])

    return lambda q, k, v: attention_tf(q, first(k), first(v), mask)


def build_jax(args: Args, dtype: Any) -> Any:
    import flax.linen as nn
    import jax.numpy as jnp

    init = nn.initializers.truncated_normal(stddev=INIT_STDDEV)
    d, h, f = args.d_model, args.num_heads, args.mlp_ratio * args.d_model

    def dense(width: int, name: str | None = None, use_bias: bool = True) -> Any:
        return nn.Dense(
            width,
            use_bias=use_bias,
            kernel_init=init,
            dtype=dtype,
            param_dtype=jnp.float32,
            name=name,
        )

    def norm(name: str | None = None) -> Any:
        # Two-pass variance, as Keras computes it (Flax's default is E[x^2] - E[x]^2).
        return nn.LayerNorm(
            epsilon=LN_EPSILON,
            use_fast_variance=False,
            dtype=dtype,
            param_dtype=jnp.float32,
            name=name,
        )

    class Attention(nn.Module):
        @nn.compact
        def __call__(self, x: Any, attend: Attend) -> Any:
            def heads(t: Any) -> Any:
                return t.reshape(*t.shape[:-1], h, d // h)

            q, k, v = (heads(dense(d, n)(x)) for n in ("query", "key", "value"))
            o = attend(q, k, v)
            return dense(d, "out")(o.reshape(*o.shape[:-2], d))

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x: Any, attend: Attend) -> Any:
            x = x + Attention(name="attention")(norm("attention_norm")(x), attend)
            # Keras' "gelu" is the exact (erf) form; jax.nn.gelu defaults to the tanh one.
            hidden = nn.gelu(dense(f, "mlp_in")(norm("mlp_norm")(x)), approximate=False)
            return x + dense(d, "mlp_out")(hidden)

    embed = {"embedding_init": init, "dtype": dtype, "param_dtype": jnp.float32}

    class Decoder(nn.Module):
        def setup(self) -> None:
            self.token_embed = nn.Embed(args.vocab_size, d, **embed)
            self.position_embed = nn.Embed(args.max_positions, d, **embed)
            # A list attribute's modules are named layer_0, layer_1...: Keras' names.
            self.layer = [Block() for _ in range(args.num_layers)]
            self.final_norm = norm()
            self.head = dense(args.vocab_size, use_bias=False)

        def hidden(self, tokens: Any, positions: Any, attends: Callable[[int], Attend]) -> Any:
            """The last block's output [B, S, d]; ``attends(i)`` is block i's attention."""
            x = self.token_embed(tokens) + self.position_embed(positions)
            for i, block in enumerate(self.layer):
                x = block(x, attends(i))
            return x

        def logits_of(self, x: Any) -> Any:
            return self.head(self.final_norm(x)).astype(jnp.float32)

        def logits(self, tokens: Any) -> Any:
            """Every position's logits [B, S, V], causal, no cache (the reference)."""
            s = tokens.shape[1]
            x = self.hidden(tokens, jnp.arange(s)[None], lambda i: _causal_jax(s))
            return self.logits_of(x)

        def __call__(self, features: dict, train: bool = False) -> Any:
            tokens = features["tokens"]
            s = tokens.shape[1]
            x = self.hidden(tokens, jnp.arange(s)[None], lambda i: _causal_jax(s))
            return self.logits_of(x[:, -1])

    return Decoder()


def _causal_jax(length: int) -> Attend:
    import jax.numpy as jnp

    mask = causal_mask(length, jnp)
    return lambda q, k, v: attention_jax(q, k.swapaxes(1, 2), v.swapaxes(1, 2), mask)

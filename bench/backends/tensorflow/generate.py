"""The TensorFlow compiled decoder (``bench.serve.generation.decoder.CompiledDecoder``) of the
zoo's decoder (``bench.models.decoder``, its Keras twin): the KV cache in ``tf.Variable``s
updated in place (``scatter_nd_update``), prefill (one ``tf.function`` per prompt bucket) and
the decode step each a ``tf.function`` with a fixed ``input_signature``, traced and run once at
build, so nothing traces under load; ``trace_count`` counts the Python bodies' runs.

The cache is one pair of variables per layer, keys and values ``[slots, heads, cache_len,
head_dim]`` in the compute dtype (the JAX decoder's layout: the attention matmuls read it as it
lies). Weights are the Keras model's, under the cell's dtype policy
(``mixed_bfloat16``: float32 variables cast to bfloat16 in each layer). Sampling follows
``bench.serve.generation.sampling``, bit for bit the JAX decoder's rule.

A bare loop measures the engine's overhead against ``decoder.decode`` itself (host arrays in,
host tokens out, the same ``tf.function`` the engine calls); ``decoder.decode_function`` is
that function, for a loop that keeps its inputs as tensors.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf

from bench.backends.parity import keras_name
from bench.backends.tensorflow.backend import (
    device_name,
    load_shared_weights,
    memory_metrics,
    set_precision,
)
from bench.models.decoder import attention_tf, causal_mask
from bench.serve.generation.sampling import GOLDEN, MIX_1, MIX_2, UNIFORM_BITS
from bench.serve.generation.shapes import check_shapes, check_temperature, padded_prompt

DTYPES = {"float32": tf.float32, "bfloat16": tf.bfloat16, "float16": tf.float16}


def _fmix32(h: tf.Tensor) -> tf.Tensor:
    xor, shift = tf.bitwise.bitwise_xor, tf.bitwise.right_shift
    h = xor(h, shift(h, tf.constant(16, tf.uint32)))
    h = h * tf.constant(MIX_1, tf.uint32)
    h = xor(h, shift(h, tf.constant(13, tf.uint32)))
    h = h * tf.constant(MIX_2, tf.uint32)
    return xor(h, shift(h, tf.constant(16, tf.uint32)))


def choose(
    logits: tf.Tensor, temperature: float, seed: int, req_seeds: tf.Tensor, positions: tf.Tensor
) -> tf.Tensor:
    """Each row's token (int32): greedy, or the sampling rule (bench.serve.generation.sampling)."""
    if temperature == 0:
        return tf.argmax(logits, axis=-1, output_type=tf.int32)
    xor = tf.bitwise.bitwise_xor
    key = _fmix32(tf.constant(seed & 0xFFFFFFFF, tf.uint32))
    key = _fmix32(xor(key, tf.cast(req_seeds, tf.uint32)))
    key = _fmix32(xor(key, tf.cast(positions, tf.uint32)))
    with np.errstate(over="ignore"):  # a constant: uint32 Range has no CPU kernel
        spread = tf.constant(np.arange(logits.shape[-1], dtype=np.uint32) * np.uint32(GOLDEN))
    bits = tf.bitwise.right_shift(
        _fmix32(xor(key[:, None], spread[None, :])), tf.constant(32 - UNIFORM_BITS, tf.uint32)
    )
    u = (tf.cast(bits, tf.float32) + 0.5) * (2.0**-UNIFORM_BITS)
    scaled = logits / tf.constant(temperature, tf.float32) - tf.math.log(-tf.math.log(u))
    return tf.argmax(scaled, axis=-1, output_type=tf.int32)


class TfDecoder:
    """One cell's decoder: ``slots`` cache rows of ``cache_len`` positions, traced for each
    bucket. See ``bench.serve.generation.decoder`` for the contract."""

    def __init__(
        self,
        model: Any,
        args: Any,
        precision: str,
        slots: int,
        cache_len: int,
        buckets: Sequence[int],
        temperature: float,
        seed: int,
        *,
        weights: Mapping[str, np.ndarray] | None = None,
        device: str | None = None,
        xla: bool = False,
    ) -> None:
        self.slots, self.cache_len = slots, cache_len
        self.buckets = check_shapes(args, slots, cache_len, buckets)
        self.temperature, self.seed = check_temperature(temperature), int(seed)
        self.device = device or ("gpu" if tf.config.list_physical_devices("GPU") else "cpu")
        if self.device not in ("cpu", "gpu"):
            # A TPU runs TF programs through TPUStrategy, which this decoder does not use.
            raise ValueError(f"device {self.device!r}: the TensorFlow decoder runs on cpu or gpu")
        self.device_name = device_name(self.device)
        self._place = f"/{self.device.upper()}:0"
        self._jit = xla
        if self.device == "gpu":
            tf.config.experimental.reset_memory_stats("GPU:0")
        set_precision(precision)
        keras.utils.set_random_seed(seed)
        self.dtype = DTYPES[precision]
        heads = args.num_heads
        shape = (slots, heads, cache_len, args.d_model // heads)
        self._heads = heads
        with tf.device(self._place):
            self.model = model.build_tf(args)
            # The first call through __call__ creates every variable under its layers' names.
            self.model({"tokens": tf.zeros((1, 1), tf.int32)})
            if weights is not None:
                load_shared_weights(self.model, weights)

            def zeros() -> tf.Variable:
                return tf.Variable(tf.zeros(shape, self.dtype), trainable=False)

            self._keys = [zeros() for _ in range(args.num_layers)]
            self._values = [zeros() for _ in range(args.num_layers)]
        self.param_count = int(sum(np.prod(v.shape) for v in self.model.weights))
        self._traces = 0
        self._reference: Any = None
        start = time.perf_counter()
        with tf.device(self._place):
            self._prefill = {b: self._traced_prefill(b) for b in self.buckets}
            self.decode_function = self._traced_decode()
        self.compile_s = time.perf_counter() - start
        self.compile_method = (
            f"tf.function(jit_compile={xla}) per prefill bucket and the decode step, fixed "
            "input_signature: trace + graph optimisation"
            f"{' + XLA compile' if xla else ''} + one call each, wall clock"
        )

    def _traced_prefill(self, bucket: int) -> Any:
        temperature, seed, model = self.temperature, self.seed, self.model
        mask = tf.constant(causal_mask(bucket, np))
        # (head, position) of every value a prompt writes, beside its slot: [heads, bucket, 2]
        grid = np.stack(np.meshgrid(np.arange(self._heads), np.arange(bucket), indexing="ij"), -1)
        grid = tf.constant(grid.astype(np.int32))
        spec = [
            tf.TensorSpec([1, bucket], tf.int32),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.uint32),
        ]

        @tf.function(input_signature=spec, jit_compile=self._jit)
        def prefill(tokens, length, slot, req_seed):
            self._traces += 1
            at = tf.concat([tf.fill([self._heads, bucket, 1], slot), grid], axis=-1)

            def attends(i: int) -> Any:
                def attend(q, k, v):
                    k, v = tf.transpose(k, [0, 2, 1, 3]), tf.transpose(v, [0, 2, 1, 3])
                    self._keys[i].scatter_nd_update(at, tf.cast(k[0], self.dtype))
                    self._values[i].scatter_nd_update(at, tf.cast(v[0], self.dtype))
                    return attention_tf(q, k, v, mask)

                return attend

            x = model.hidden(tokens, tf.range(bucket)[None], attends)
            logits = model.logits_of(tf.gather(x, length - 1, axis=1))
            return choose(logits, temperature, seed, req_seed[None], (length - 1)[None])[0]

        prefill(np.zeros((1, bucket), np.int32), np.int32(1), np.int32(0), np.uint32(0))
        return prefill

    def _traced_decode(self) -> Any:
        temperature, seed, model = self.temperature, self.seed, self.model
        slots, cache_len = self.slots, self.cache_len
        ints = tf.TensorSpec([slots], tf.int32)

        @tf.function(
            input_signature=[ints, ints, tf.TensorSpec([slots], tf.uint32)],
            jit_compile=self._jit,
        )
        def decode(tokens, positions, req_seeds):
            self._traces += 1
            # (row, head, position) of every value the step writes: [slots, heads, 3]
            rows, heads = tf.meshgrid(tf.range(slots), tf.range(self._heads), indexing="ij")
            at = tf.stack([rows, heads, tf.broadcast_to(positions[:, None], rows.shape)], -1)
            # Row i sees its positions 0..positions[i]; the rest of its row is stale or empty.
            mask = (tf.range(cache_len)[None, :] <= positions[:, None])[:, None, :]

            def attends(i: int) -> Any:
                def attend(q, k, v):
                    keys = self._keys[i].scatter_nd_update(at, tf.cast(k[:, 0], self.dtype))
                    values = self._values[i].scatter_nd_update(at, tf.cast(v[:, 0], self.dtype))
                    return attention_tf(
                        q, tf.convert_to_tensor(keys), tf.convert_to_tensor(values), mask
                    )

                return attend

            x = model.hidden(tokens[:, None], positions[:, None], attends)
            logits = model.logits_of(x[:, 0])
            return choose(logits, temperature, seed, req_seeds, positions)

        zeros = np.zeros(slots, np.int32)
        decode(zeros, zeros, zeros.astype(np.uint32))
        return decode

    def prefill(self, slot: int, prompt: np.ndarray, seed: int) -> int:
        padded = padded_prompt(prompt, self.buckets, slot, self.slots)
        with tf.device(self._place):
            token = self._prefill[padded.shape[1]](
                padded, np.int32(len(prompt)), np.int32(slot), np.uint32(seed & 0xFFFFFFFF)
            )
        return int(token.numpy())  # a host read: waits for the step

    def decode(self, tokens: np.ndarray, positions: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        with tf.device(self._place):
            out = self.decode_function(
                np.asarray(tokens, np.int32),
                np.asarray(positions, np.int32),
                np.asarray(seeds).astype(np.uint32),
            )
        return out.numpy()  # a host copy: waits for the step

    def trace_count(self) -> int:
        return self._traces

    def memory(self) -> dict[str, Any]:
        return memory_metrics(self.device, ["GPU:0"])

    def full_logits(self, tokens: np.ndarray) -> np.ndarray:
        """Every position's logits [B, S, V] (float32) of ``tokens`` [B, S], recomputed with no
        cache on the CPU, under the decoder's dtype policy: the reference the cached steps are
        checked against."""
        if self._reference is None:  # one tf.function: a loop of calls at one shape traces once
            self._reference = tf.function(self.model.logits)
        with tf.device("/CPU:0"):
            return self._reference(tf.constant(np.asarray(tokens, np.int32))).numpy()

    def weights(self) -> dict[str, np.ndarray]:
        """The float32 weights by canonical name (what another framework's twin loads)."""
        return {keras_name(v.path): np.asarray(v.numpy(), np.float32) for v in self.model.weights}


def build_decoder(
    model: Any,
    args: Any,
    precision: str,
    slots: int,
    cache_len: int,
    buckets: Sequence[int],
    temperature: float,
    seed: int,
    **options: Any,
) -> TfDecoder:
    """A ``CompiledDecoder``: every shape traced and run once before it returns. ``options``:
    ``weights`` (float32 arrays by canonical name; default: initialised from ``seed``),
    ``device`` (cpu, gpu or tpu; default: the GPU where TensorFlow sees one) and ``xla``
    (``jit_compile`` for every function; default False)."""
    return TfDecoder(
        model, args, precision, slots, cache_len, buckets, temperature, seed, **options
    )

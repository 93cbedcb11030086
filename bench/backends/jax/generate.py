"""The JAX compiled decoder (``bench.serve.generation.decoder.CompiledDecoder``) of the zoo's
decoder (``bench.models.decoder``): parameters and the KV cache on the device, prefill and
decode jitted with the cache donated (updated in place) and compiled ahead of time for every
prompt bucket and the decode step, so nothing compiles under load (an AOT executable refuses
another shape instead of retracing).

The cache is one pair of arrays per layer, keys and values ``[slots, heads, cache_len,
head_dim]`` in the compute dtype: heads before positions, so the attention matmuls read it as
it lies (with positions first, XLA copied the whole cache into that order every step). Parameters are kept in the compute dtype too, LayerNorm's in
float32: a decode step reads every weight, and a server keeps no float32 master copy; the
numbers are those of the float32-parameter mixed policy, whose layers cast each weight to the
compute dtype before use. Sampling follows ``bench.serve.generation.sampling``.

A bare loop measures the engine's overhead against ``decoder.decode`` itself (host arrays in,
host tokens out, the same executable the engine calls); ``decoder.decode_executable`` is the
compiled step (``jax.stages.Compiled``) for a loop that keeps its inputs on the device.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bench.backends.jax import cache as compile_cache
from bench.backends.jax.backend import (
    PLATFORMS,
    compute_dtype,
    init_variables,
    memory_metrics,
    shared_variables,
)
from bench.backends.parity import flatten
from bench.models.decoder import attention_jax, causal_mask
from bench.serve.generation.sampling import GOLDEN, MIX_1, MIX_2, UNIFORM_BITS
from bench.serve.generation.shapes import check_shapes, check_temperature, padded_prompt

COMPILE_METHOD = (
    "jax AOT: jit(prefill per bucket, decode step; cache donated).lower(args).compile(), wall clock"
)


def _fmix32(h: jax.Array) -> jax.Array:
    h = h ^ (h >> 16)
    h = h * jnp.uint32(MIX_1)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(MIX_2)
    return h ^ (h >> 16)


def choose(
    logits: jax.Array, temperature: float, seed: int, req_seeds: jax.Array, positions: jax.Array
) -> jax.Array:
    """Each row's token (int32): greedy, or the sampling rule (bench.serve.generation.sampling)."""
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    key = _fmix32(jnp.uint32(seed & 0xFFFFFFFF))
    key = _fmix32(key ^ req_seeds.astype(jnp.uint32))
    key = _fmix32(key ^ positions.astype(jnp.uint32))
    spread = jnp.arange(logits.shape[-1], dtype=jnp.uint32) * jnp.uint32(GOLDEN)
    bits = _fmix32(key[:, None] ^ spread[None, :]) >> (32 - UNIFORM_BITS)
    u = (bits.astype(jnp.float32) + 0.5) * (2.0**-UNIFORM_BITS)
    scaled = logits / jnp.float32(temperature) - jnp.log(-jnp.log(u))
    return jnp.argmax(scaled, axis=-1).astype(jnp.int32)


def _storage(params: Any, dtype: Any) -> Any:
    """Parameters as the decoder keeps them: LayerNorm's float32, the rest in ``dtype``."""

    def cast(path: tuple, leaf: Any) -> Any:
        names = [getattr(p, "key", "") for p in path]
        is_norm = any(str(n).endswith("norm") for n in names)
        return leaf if is_norm else leaf.astype(dtype)

    return jax.tree_util.tree_map_with_path(cast, params)


class JaxDecoder:
    """One cell's decoder: ``slots`` cache rows of ``cache_len`` positions, compiled for each
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
    ) -> None:
        self.slots, self.cache_len = slots, cache_len
        self.buckets = check_shapes(args, slots, cache_len, buckets)
        self.temperature, self.seed = check_temperature(temperature), int(seed)
        if device is not None and device not in PLATFORMS:
            raise ValueError(f"device {device!r}: expected one of {', '.join(PLATFORMS)}")
        platform = PLATFORMS[device] if device else jax.devices()[0].platform
        self.device = jax.devices(platform)[0]
        self.device_name = "cpu" if self.device.platform == "cpu" else self.device.device_kind
        self.dtype = compute_dtype(precision)
        self._module = model.build_jax(args, self.dtype)
        features = {"tokens": np.zeros((1, 1), np.int32)}
        if weights is not None:
            host = shared_variables(self._module, features, weights)
        else:
            with jax.default_device(self.device):
                host = jax.device_get(init_variables(self._module, features, seed, platform))
        self.param_count = int(sum(np.size(p) for p in jax.tree_util.tree_leaves(host)))
        self._float32 = host  # full_logits' reference weights stay on the host
        self._reference: tuple[Any, Any] | None = None
        self._params = jax.device_put(_storage(host["params"], self.dtype), self.device)
        heads = args.num_heads
        shape = (slots, heads, cache_len, args.d_model // heads)
        with jax.default_device(self.device):  # made there: no host copy of a large cache
            self._cache = tuple(
                (jnp.zeros(shape, self.dtype), jnp.zeros(shape, self.dtype))
                for _ in range(args.num_layers)
            )
        self._traces = 0
        cache_before = compile_cache.counts()
        start = time.perf_counter()
        self._prefill = {b: self._compile_prefill(b) for b in self.buckets}
        self.decode_executable = self._compile_decode()
        self.compile_s = time.perf_counter() - start
        self.compile_cached = compile_cache.loaded(cache_before)
        self.compile_method = COMPILE_METHOD

    def _apply(self, params: Any, *args: Any, method: str) -> Any:
        return self._module.apply({"params": params}, *args, method=method)

    def _compile_prefill(self, bucket: int) -> Any:
        temperature, seed, params = self.temperature, self.seed, self._params
        mask = causal_mask(bucket, np)

        def prefill(params, cache, tokens, length, slot, req_seed):
            self._traces += 1
            written: list[tuple[jax.Array, jax.Array]] = []

            def attends(i: int) -> Any:
                def attend(q, k, v):
                    keys, values = cache[i]
                    k, v = k.swapaxes(1, 2), v.swapaxes(1, 2)  # [1, heads, bucket, head_dim]
                    at = (slot, 0, 0, 0)
                    written.append(
                        (
                            jax.lax.dynamic_update_slice(keys, k.astype(keys.dtype), at),
                            jax.lax.dynamic_update_slice(values, v.astype(values.dtype), at),
                        )
                    )
                    return attention_jax(q, k, v, mask)

                return attend

            positions = jnp.arange(bucket)[None]
            x = self._apply(params, tokens, positions, attends, method="hidden")
            last = jax.lax.dynamic_index_in_dim(x, length - 1, axis=1, keepdims=False)
            logits = self._apply(params, last, method="logits_of")
            token = choose(logits, temperature, seed, req_seed[None], (length - 1)[None])
            return token[0], tuple(written)

        scalar = jax.ShapeDtypeStruct((), jnp.int32)
        specs = (
            jax.ShapeDtypeStruct((1, bucket), jnp.int32),
            scalar,
            scalar,
            jax.ShapeDtypeStruct((), jnp.uint32),
        )
        jitted = jax.jit(prefill, donate_argnums=1)
        return jitted.lower(params, self._cache, *specs).compile()

    def _compile_decode(self) -> Any:
        temperature, seed, slots, cache_len = (
            self.temperature,
            self.seed,
            self.slots,
            self.cache_len,
        )

        def decode(params, cache, tokens, positions, req_seeds):
            self._traces += 1
            rows = jnp.arange(slots)
            # Row i sees its positions 0..positions[i]; the rest of its row is stale or empty.
            mask = (jnp.arange(cache_len)[None, :] <= positions[:, None])[:, None, :]
            written: list[tuple[jax.Array, jax.Array]] = []

            def attends(i: int) -> Any:
                def attend(q, k, v):
                    keys, values = cache[i]
                    # [slots, heads, head_dim] into each row's position
                    keys = keys.at[rows, :, positions].set(k[:, 0].astype(keys.dtype))
                    values = values.at[rows, :, positions].set(v[:, 0].astype(values.dtype))
                    written.append((keys, values))
                    return attention_jax(q, keys, values, mask)

                return attend

            x = self._apply(params, tokens[:, None], positions[:, None], attends, method="hidden")
            logits = self._apply(params, x[:, 0], method="logits_of")
            return choose(logits, temperature, seed, req_seeds, positions), tuple(written)

        ints = jax.ShapeDtypeStruct((slots,), jnp.int32)
        specs = (ints, ints, jax.ShapeDtypeStruct((slots,), jnp.uint32))
        jitted = jax.jit(decode, donate_argnums=1)
        return jitted.lower(self._params, self._cache, *specs).compile()

    def prefill(self, slot: int, prompt: np.ndarray, seed: int) -> int:
        padded = padded_prompt(prompt, self.buckets, slot, self.slots)
        token, self._cache = self._prefill[padded.shape[1]](
            self._params,
            self._cache,
            padded,
            np.int32(len(prompt)),
            np.int32(slot),
            np.uint32(seed & 0xFFFFFFFF),
        )
        return int(token)  # a host read: waits for the device

    def decode(self, tokens: np.ndarray, positions: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        out, self._cache = self.decode_executable(
            self._params,
            self._cache,
            np.asarray(tokens, np.int32),
            np.asarray(positions, np.int32),
            np.asarray(seeds).astype(np.uint32),
        )
        return np.array(out, np.int32)  # a host copy: waits for the device

    def trace_count(self) -> int:
        return self._traces

    def memory(self) -> dict[str, Any]:
        return memory_metrics(self.decode_executable, [self.device])

    def full_logits(self, tokens: np.ndarray) -> np.ndarray:
        """Every position's logits [B, S, V] (float32) of ``tokens`` [B, S], recomputed with no
        cache on the CPU from the float32 weights, computing in the decoder's dtype: the
        reference the cached steps are checked against."""
        cpu = jax.devices("cpu")[0]
        if self._reference is None:  # jitted once: a loop of calls at one shape compiles once
            forward = jax.jit(lambda p, t: self._apply(p, t, method="logits"))
            self._reference = forward, jax.device_put(self._float32["params"], cpu)
        forward, params = self._reference
        return np.asarray(forward(params, jax.device_put(np.asarray(tokens, np.int32), cpu)))

    def weights(self) -> dict[str, np.ndarray]:
        """The float32 weights by canonical name (what another framework's twin loads)."""
        return flatten(self._float32)


def build_decoder(
    model: Any,
    args: Any,
    precision: str,
    slots: int,
    cache_len: int,
    buckets: Sequence[int],
    temperature: float,
    seed: int,
    xla: bool = True,
    **options: Any,
) -> JaxDecoder:
    """A ``CompiledDecoder``: every shape compiled before it returns. ``options``: ``weights``
    (float32 arrays by canonical name, e.g. the run's shared set; default: initialised from
    ``seed``) and ``device`` (cpu, gpu or tpu; default: JAX's first device). ``xla`` is the
    cell's axis, which JAX fixes on: every JAX step is compiled with XLA."""
    del xla
    return JaxDecoder(
        model, args, precision, slots, cache_len, buckets, temperature, seed, **options
    )

"""The sampling rule every compiled decoder follows, so a request's tokens depend only on the
decoder's seed, the request's seed and the position, never on its slot, its neighbours or the
framework.

Greedy when the temperature is 0 (argmax of the float32 logits). Otherwise Gumbel-max: the
token is argmax_j(logits_j / temperature + g_j), with g_j = -log(-log(u_j)) and u_j a uniform
in (0, 1) hashed from (seed, request seed, position, j) by MurmurHash3's 32-bit finaliser, a
counter-based generator: no state to carry between steps, the same numbers in every framework
(unsigned 32-bit arithmetic wraps alike in numpy, JAX and TensorFlow). ``position`` is that of
the logits sampled from: n - 1 for a prompt of n tokens, ``positions[i]`` in a decode step.

``gumbel_numpy`` is the reference the backends' versions are tested against.
"""

from __future__ import annotations

import numpy as np

# MurmurHash3 fmix32's multipliers, and the golden ratio that spreads vocabulary indices.
MIX_1, MIX_2, GOLDEN = 0x85EBCA6B, 0xC2B2AE35, 0x9E3779B9
# A uniform from a hash's top 24 bits, centred in its bucket: exact in float32, never 0 or 1.
UNIFORM_BITS = 24


def fmix32(h: np.ndarray) -> np.ndarray:
    h = np.asarray(h, np.uint32)
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(MIX_1)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(MIX_2)
    return h ^ (h >> np.uint32(16))


def row_key(seed: int, request_seeds: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """One uint32 key per row from the decoder's seed, each row's request seed and position."""
    with np.errstate(over="ignore"):
        key = fmix32(np.uint32(seed & 0xFFFFFFFF))
        key = fmix32(key ^ np.asarray(request_seeds).astype(np.uint32))
        return fmix32(key ^ np.asarray(positions).astype(np.uint32))


def gumbel_numpy(
    seed: int, request_seeds: np.ndarray, positions: np.ndarray, vocab: int
) -> np.ndarray:
    """Gumbel noise [rows, vocab] (float32) for each row's (request seed, position)."""
    with np.errstate(over="ignore"):
        keys = row_key(seed, request_seeds, positions)
        spread = np.arange(vocab, dtype=np.uint32) * np.uint32(GOLDEN)
        bits = fmix32(keys[:, None] ^ spread[None, :]) >> np.uint32(32 - UNIFORM_BITS)
    u = (bits.astype(np.float32) + np.float32(0.5)) * np.float32(2.0**-UNIFORM_BITS)
    return -np.log(-np.log(u))


def sample_numpy(
    logits: np.ndarray,
    temperature: float,
    seed: int,
    request_seeds: np.ndarray,
    positions: np.ndarray,
) -> np.ndarray:
    """The token each row of ``logits`` [rows, vocab] gives under the rule (int32 [rows])."""
    logits = np.asarray(logits, np.float32)
    if temperature == 0:
        return logits.argmax(-1).astype(np.int32)
    noise = gumbel_numpy(seed, request_seeds, positions, logits.shape[-1])
    return (logits / np.float32(temperature) + noise).argmax(-1).astype(np.int32)

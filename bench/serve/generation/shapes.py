"""The fixed shapes a compiled decoder is built for, checked once, and a prompt padded to its
bucket: the framework-free part every backend's ``build_decoder`` shares."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def check_shapes(args: Any, slots: int, cache_len: int, buckets: Sequence[int]) -> tuple[int, ...]:
    """The buckets, ascending and unique, once slots, cache length and buckets fit the model;
    ValueError naming the value otherwise."""
    if slots < 1:
        raise ValueError(f"slots {slots}: expected at least 1")
    if not 1 <= cache_len <= args.max_positions:
        raise ValueError(
            f"cache_len {cache_len}: expected 1 to the model's max_positions ({args.max_positions})"
        )
    found = tuple(sorted(set(int(b) for b in buckets)))
    if not found:
        raise ValueError("buckets: expected at least one prompt length")
    if found[0] < 1 or found[-1] > cache_len:
        raise ValueError(
            f"buckets {list(found)}: expected prompt lengths from 1 to cache_len ({cache_len})"
        )
    return found


def check_temperature(temperature: float) -> float:
    """The sampling temperature as a float once it is finite and >= 0 (0: greedy)."""
    value = float(temperature)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"temperature {temperature!r}: expected a finite number >= 0 (0: greedy)")
    return value


def padded_prompt(
    prompt: np.ndarray, buckets: tuple[int, ...], slot: int, slots: int
) -> np.ndarray:
    """``prompt`` (int32 [n]) zero-padded to the smallest bucket >= n, as [1, bucket]."""
    prompt = np.asarray(prompt, np.int32).reshape(-1)
    n = prompt.shape[0]
    if not 1 <= n <= buckets[-1]:
        raise ValueError(f"prompt of {n} tokens: expected 1 to the largest bucket ({buckets[-1]})")
    if not 0 <= slot < slots:
        raise ValueError(f"slot {slot}: expected 0 to {slots - 1}")
    bucket = next(b for b in buckets if b >= n)
    padded = np.zeros((1, bucket), np.int32)
    padded[0, :n] = prompt
    return padded

"""What the generation engine drives: a decoder compiled for fixed shapes, one per cell.

A backend (``bench.backends.<name>.generate``) builds it from the zoo decoder
(``bench.models.decoder``) for a slot count, a cache length and a set of prompt buckets, every
shape compiled before it is returned, so nothing compiles under load. The engine
(``bench.serve.generation.engine``) owns the bookkeeping: which request holds which slot, each
slot's next position, when a sequence ends. The decoder owns the device state (the KV cache of
``slots`` rows of ``cache_len`` positions) and returns tokens on the host, so the engine times a
call from its start to its tokens being readable.

Positions are a sequence's own: a prompt of n tokens fills positions 0..n-1 of its slot's cache
row; the first generated token is sampled from position n-1's logits and goes in at position
n on the next decode step, and so on. The engine never lets a position reach ``cache_len``.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class CompiledDecoder(Protocol):
    slots: int  # cache rows: sequences decoded together in one step
    cache_len: int  # positions per row: prompt plus output must fit
    buckets: tuple[int, ...]  # prompt lengths prefill is compiled for, ascending
    compile_s: float  # every shape: all buckets' prefill and the decode step
    compile_method: str  # how compile_s was taken, for people
    device_name: str
    param_count: int

    def prefill(self, slot: int, prompt: np.ndarray, seed: int) -> int:
        """Run ``prompt`` (int32 ``[n]``, 1 <= n <= ``buckets[-1]``, padded to the smallest
        bucket >= n) and write its keys and values to positions 0..n-1 of row ``slot``
        (whatever the row held before is forgotten). Returns the first generated token, on the
        host: greedy, or sampled with ``seed`` (the request's) at position n-1."""

    def decode(self, tokens: np.ndarray, positions: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """One step for every row: ``tokens[i]`` (int32 ``[slots]``) goes in at
        ``positions[i]`` of row i, which attends to its positions 0..positions[i]; returns each
        row's next token (int32 ``[slots]``, on the host). ``seeds[i]`` is row i's request seed
        (sampling folds in the position, so a request's tokens do not depend on its slot or on
        its neighbours). Rows with no sequence get token 0 at position 0; their answer is
        ignored and their row is overwritten by the next prefill."""

    def trace_count(self) -> int:
        """Traces (compilations) so far; a rise under load marks the cell invalid."""

    def memory(self) -> dict[str, Any]:
        """Device memory metrics (``bench.metrics`` names), as a predict workload reports."""

"""One framework's side of the decoder checks, run in its own process (TF and JAX never share one).

    python -m tests.decoder_twins {jax|tensorflow} WEIGHTS.npz OUT.npz [quick]

Both sides load the same float32 weights (``WEIGHTS.npz``, by canonical name, written by
tests/test_decoder.py without a framework) into ``bench.backends.<framework>.generate``'s
compiled decoder and drive it the same way, through the framework-free contract only:

- ``logits``: ``full_logits`` of a fixed batch (the twins' forward pass);
- ``greedy`` [8, 32]: 8 prompts of 1 to 16 tokens through 4 slots, admitted one per step so
  every prefill lands between decode steps of other slots; ``greedy_ref``: the same
  continuations recomputed from the full sequence at every step (no cache);
- ``sampled``/``sampled_reversed``: the same 8 requests sampled (temperature > 0), admitted in
  the opposite order (other slots, other neighbours); ``sampled_ref``: recomputed with the
  numpy sampling rule on the full logits;
- ``traces``: the decoders' trace counts after build and after every call;
- ``<precision>/logits``, ``<precision>/greedy``, ``<precision>/traces``: the same at bfloat16
  and float16 (one bucket).

JAX only: ``flops/prefill`` and ``flops/decode``, XLA's cost analysis of a wider decoder's
compiled prefill and decode step over the analytic formulas (``FLOPS_ARGS``).

``quick``: only ``greedy``, ``greedy_ref`` (QUICK_TOKENS each), ``traces``, ``compile_s``,
``device_name`` and (JAX) the decode step's donated bytes ``alias_bytes`` of one float32
decoder with one bucket, a few seconds (the fast tier's check).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import numpy as np
from bench.models import decoder as model

from bench.serve.generation.sampling import sample_numpy

ARGS = {"num_layers": 2, "d_model": 32, "num_heads": 4, "vocab_size": 128, "max_positions": 64}
SLOTS, CACHE_LEN, BUCKETS, NEW_TOKENS = 4, 64, (8, 16), 32
PROMPT_LENS = (3, 16, 1, 9, 8, 12, 5, 16)
SEED, TEMPERATURE = 7, 1.5
LOW_PRECISIONS = ("bfloat16", "float16")
QUICK_TOKENS = 8
# Wide enough that the matmuls the formulas count outweigh the elementwise work they ignore.
FLOPS_ARGS = {
    "num_layers": 2,
    "d_model": 128,
    "num_heads": 4,
    "vocab_size": 512,
    "max_positions": 64,
}


def prompts() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    found = [rng.integers(0, ARGS["vocab_size"], n).astype(np.int32) for n in PROMPT_LENS]
    found[7] = found[1].copy()  # one prompt twice: only the request seed tells them apart
    return found


def request_seeds() -> np.ndarray:
    return np.arange(100, 100 + len(PROMPT_LENS), dtype=np.uint32)


def run_schedule(decoder: Any, order: list[int], new_tokens: int = NEW_TOKENS) -> np.ndarray:
    """Every request's ``new_tokens`` tokens [requests, new_tokens], driven as an engine would:
    at most one admission (prefill) per step into a free slot, one decode step for all slots."""
    asked, seeds = prompts(), request_seeds()
    out = np.full((len(asked), new_tokens), -1, np.int32)
    holder = [-1] * SLOTS  # request index per slot
    made = [0] * len(asked)
    tokens = np.zeros(SLOTS, np.int32)
    positions = np.zeros(SLOTS, np.int32)
    row_seeds = np.zeros(SLOTS, np.uint32)
    waiting = list(order)
    while waiting or any(h >= 0 for h in holder):
        free = [s for s in range(SLOTS) if holder[s] < 0]
        if waiting and free:
            r, slot = waiting.pop(0), free[0]
            first = decoder.prefill(slot, asked[r], int(seeds[r]))
            out[r, 0], made[r] = first, 1
            holder[slot], tokens[slot] = r, first
            positions[slot], row_seeds[slot] = len(asked[r]), seeds[r]
        if not any(h >= 0 for h in holder):
            continue
        nxt = decoder.decode(tokens, positions, row_seeds)
        for slot, r in enumerate(holder):
            if r < 0:
                continue
            out[r, made[r]] = nxt[slot]
            made[r] += 1
            tokens[slot], positions[slot] = nxt[slot], positions[slot] + 1
            if made[r] == new_tokens:  # the row goes back to "no sequence": token 0 at 0
                holder[slot], tokens[slot], positions[slot], row_seeds[slot] = -1, 0, 0, 0
    return out


def recomputed(decoder: Any, temperature: float, new_tokens: int = NEW_TOKENS) -> np.ndarray:
    """The continuations from the full sequence at every step (``full_logits``, no cache)."""
    asked, seeds = prompts(), request_seeds()
    lengths = np.array([len(p) for p in asked])
    batch = np.zeros((len(asked), max(lengths) + new_tokens), np.int32)
    for i, p in enumerate(asked):
        batch[i, : len(p)] = p
    out = np.zeros((len(asked), new_tokens), np.int32)
    rows = np.arange(len(asked))
    for step in range(new_tokens):
        at = lengths - 1 + step  # the position whose logits give the next token
        logits = decoder.full_logits(batch)[rows, at]
        out[:, step] = sample_numpy(logits, temperature, SEED, seeds, at)
        batch[rows, at + 1] = out[:, step]
    return out


def flop_ratios(generate: Any) -> dict[str, np.ndarray]:
    """XLA's FLOPs over the formulas' for a prefill of a full bucket and a decode step of every
    slot attending over the whole cache (what the compiled step computes)."""
    from bench.measure.flops import xla_cost_flops

    args = model.Args(**FLOPS_ARGS)
    cache = args.max_positions
    built = generate.build_decoder(model, args, "float32", SLOTS, cache, (cache,), 0.0, SEED)
    prefill = xla_cost_flops(built._prefill[cache]) / model.prefill_flops(args, cache)
    decode = xla_cost_flops(built.decode_executable) / (SLOTS * model.decode_flops(args, cache))
    return {"flops/prefill": np.array(prefill), "flops/decode": np.array(decode)}


def main(framework: str, weights_path: str, out_path: str, mode: str = "full") -> None:
    generate = importlib.import_module(f"bench.backends.{framework}.generate")
    args = model.Args(**ARGS)
    with np.load(weights_path) as f:
        weights = {k: f[k] for k in f.files}
    found: dict[str, np.ndarray] = {}

    def build(temperature: float, buckets: tuple[int, ...], precision: str = "float32") -> Any:
        return generate.build_decoder(
            model, args, precision, SLOTS, CACHE_LEN, buckets, temperature, SEED, weights=weights
        )

    if mode == "quick":
        greedy = build(0.0, BUCKETS[-1:])
        built = greedy.trace_count()
        found["greedy"] = run_schedule(greedy, list(range(len(PROMPT_LENS))), QUICK_TOKENS)
        found["greedy_ref"] = recomputed(greedy, 0.0, QUICK_TOKENS)
        found["traces"] = np.array([built, greedy.trace_count()])
        memory = greedy.memory()["device_memory_bytes"]
        found["alias_bytes"] = np.array(memory.get("alias_bytes", -1))
        found["compile_s"] = np.array(greedy.compile_s)
        found["device_name"] = np.array(greedy.device_name)
        np.savez(out_path, **found)
        return
    greedy = build(0.0, BUCKETS)
    built = greedy.trace_count()
    tokens = np.random.default_rng(2).integers(0, ARGS["vocab_size"], (8, 24)).astype(np.int32)
    found["logits"] = greedy.full_logits(tokens)
    found["greedy"] = run_schedule(greedy, list(range(len(PROMPT_LENS))))
    found["greedy_ref"] = recomputed(greedy, 0.0)
    sampler = build(TEMPERATURE, BUCKETS)
    sampler_built = sampler.trace_count()
    order = list(range(len(PROMPT_LENS)))
    found["sampled"] = run_schedule(sampler, order)
    found["sampled_reversed"] = run_schedule(sampler, order[::-1])
    found["sampled_ref"] = recomputed(sampler, TEMPERATURE)
    found["traces"] = np.array([built, greedy.trace_count(), sampler_built, sampler.trace_count()])
    for precision in LOW_PRECISIONS:
        low = build(0.0, BUCKETS[-1:], precision)
        low_built = low.trace_count()
        found[f"{precision}/logits"] = low.full_logits(tokens)
        found[f"{precision}/greedy"] = run_schedule(low, list(range(len(PROMPT_LENS))))
        found[f"{precision}/traces"] = np.array([low_built, low.trace_count()])
    if framework == "jax":
        found.update(flop_ratios(generate))
    found["param_count"] = np.array(greedy.param_count)
    found["buckets"] = np.array(greedy.buckets)
    found["compile_s"] = np.array(greedy.compile_s)
    np.savez(out_path, **found)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main(*sys.argv[1:5])

"""A ``POST /v1/completions`` body as ``bench serve decoder`` runs it, or the client's mistake
with its reason (answered 400; an unknown model 404).

OpenAI's completions request, the fields an OpenAI-compatible client of a generation server
sends (``bench``'s own, vLLM's benchmark, the openai package) and nothing else: an unknown
field is refused by name rather than silently ignored (a client asking for ``n: 4`` or
``stop`` would otherwise read the answer as honouring them). Every value is bounded: one
prompt, of token ids in the vocabulary or of text, at most the largest compiled prompt bucket;
``max_tokens`` such that prompt and output fit the KV cache; the temperature the server was
built for (its compiled sampling rule); a whole-number seed. The output is never ended early
(no end-of-sequence), so ``min_tokens`` and ``ignore_eos`` are accepted as what the server
does anyway. Framework-free.

Text prompts go through a stand-in tokenizer (``word_ids``): one token per whitespace-separated
word, its id from the word's CRC-32, so text from a client without the model's vocabulary
(bench's synthesised prompts) comes to as many tokens as words, the same on every run.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_SEED = 2**31 - 1
ACCEPTED = (
    "model", "prompt", "max_tokens", "temperature", "stream", "stream_options", "seed",
    "min_tokens", "ignore_eos", "return_token_ids", "n", "echo", "logprobs", "top_p", "user",
)  # fmt: skip


class BadRequest(ValueError):
    """A request the server cannot run as sent; ``str()`` is the reason; ``status`` 400 or
    404 (a model it does not serve)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What the server was built for."""

    model_name: str
    vocab: int
    max_prompt: int  # the largest compiled prompt bucket
    cache_len: int
    temperature: float


@dataclass(frozen=True)
class Completion:
    prompt: np.ndarray  # int32 ids
    max_tokens: int
    stream: bool
    include_usage: bool
    seed: int
    token_ids: bool  # return each chunk's ids (vLLM's return_token_ids)


def word_ids(text: str, vocab: int) -> np.ndarray:
    """The stand-in tokenizer: one id per word, from 1 to vocab - 1 (0 is the padding)."""
    words = text.split()
    return np.array([1 + zlib.crc32(w.encode()) % (vocab - 1) for w in words], dtype=np.int32)


def parse(body: bytes, limits: Limits) -> Completion:
    """The request in ``body``; BadRequest with the first problem otherwise."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not JSON: {type(exc).__name__}: {exc}"[:300]) from None
    if not isinstance(obj, dict):
        raise BadRequest(f"the body is a JSON {type(obj).__name__}; expected an object")
    unknown = sorted(k for k in obj if k not in ACCEPTED)
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise BadRequest(f"unknown field(s) {shown}; expected only {', '.join(ACCEPTED)}")
    model = obj.get("model")
    if model != limits.model_name:
        shown = repr(model)[:80]
        raise BadRequest(
            f"model {shown}: not served here; expected {limits.model_name!r}", status=404
        )
    prompt = _prompt(obj.get("prompt"), limits)
    room = limits.cache_len - len(prompt)
    if room < 1:
        raise BadRequest(f"a prompt of {len(prompt)} tokens leaves no room in the cache")
    max_tokens = _whole(obj, "max_tokens", 16, 1, room)
    _whole(obj, "min_tokens", 0, 0, max_tokens)
    temperature = obj.get("temperature", 1.0 if limits.temperature else 0.0)
    if not _number(temperature) or temperature != limits.temperature:
        raise BadRequest(
            f"temperature {str(temperature)[:40]}; expected {limits.temperature:g} (this "
            "server's sampling was compiled for it: bench serve decoder --temperature)"
        )
    for name, wanted in (("n", 1), ("top_p", 1)):
        if name in obj and (not _number(obj[name]) or obj[name] != wanted):
            raise BadRequest(f"{name} {str(obj[name])[:40]}; expected {wanted} (or none)")
    for name in ("echo", "logprobs"):
        if obj.get(name) not in (None, False):
            raise BadRequest(f"{name} {str(obj[name])[:40]}; expected none (not supported)")
    stream = _flag(obj, "stream")
    _flag(obj, "ignore_eos")
    options = obj.get("stream_options")
    if options is not None and (
        not stream or not isinstance(options, dict) or set(options) - {"include_usage"}
    ):
        raise BadRequest("stream_options: expected {include_usage: true|false} with stream: true")
    include_usage = _flag(options or {}, "include_usage") if options else not stream
    user = obj.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > 256):
        raise BadRequest("user: expected a string of at most 256 characters")
    return Completion(
        prompt, max_tokens, stream, include_usage, _whole(obj, "seed", 0, 0, MAX_SEED),
        _flag(obj, "return_token_ids"),
    )  # fmt: skip


def _prompt(prompt: Any, limits: Limits) -> np.ndarray:
    if isinstance(prompt, str):
        ids = word_ids(prompt, limits.vocab)
        what = "words"
    elif isinstance(prompt, list) and prompt and all(isinstance(p, (str, list)) for p in prompt):
        raise BadRequest("prompt: a list of prompts; expected one prompt per request")
    elif isinstance(prompt, list):
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            raise BadRequest("prompt: expected text or a list of token ids (integers)")
        bad = [t for t in prompt if not 0 <= t < limits.vocab]
        if bad:
            raise BadRequest(
                f"prompt: token id {bad[0]} is outside the vocabulary; expected 0 to "
                f"{limits.vocab - 1}"
            )
        ids, what = np.asarray(prompt, dtype=np.int32), "token ids"
    else:
        raise BadRequest("prompt: expected text or a list of token ids")
    if not 1 <= len(ids) <= limits.max_prompt:
        raise BadRequest(
            f"prompt: {len(ids)} {what}; expected 1 to {limits.max_prompt} (the largest prompt "
            "this server compiled: bench serve decoder --prompt-buckets)"
        )
    return ids


def _whole(obj: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = obj.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{name} {str(value)[:40]}; expected a whole number from {low} to {high}")
    return value


def _flag(obj: dict[str, Any], name: str) -> bool:
    value = obj.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{name} {str(value)[:40]}; expected true or false")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

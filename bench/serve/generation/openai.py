"""The OpenAI-compatible generation protocols: what a streamed request carries and what each
streamed chunk says.

vLLM, SGLang, TGI, TensorRT-LLM, KServe's Hugging Face runtime and Vertex AI's OpenAI-compatible
endpoints all take ``POST /v1/completions`` (``openai-completions``: a prompt) and ``POST
/v1/chat/completions`` (``openai-chat``: messages) and stream the answer as server-sent events,
one JSON chunk per event, ending with ``data: [DONE]``. Requests ask for
``stream_options: {include_usage: true}``, so the last chunk before ``[DONE]`` holds the server's
token counts (``usage``, with empty ``choices``).

A chunk carries output text when a choice has non-empty ``text`` (completions) or a non-empty
``delta`` field of text (chat: ``content``, or a reasoning model's ``reasoning_content`` /
``reasoning``, named so a cell can say where its first token came from). A chat stream opens
with a role-only delta (``{"role": "assistant", "content": ""}``: vLLM #15106) that carries no
text and so is no token.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

PROTOCOLS: dict[str, str] = {
    "openai-completions": "OpenAI-compatible /v1/completions, streamed (a prompt)",
    "openai-chat": "OpenAI-compatible /v1/chat/completions, streamed (one user message)",
}
_PATHS = {"openai-completions": "/completions", "openai-chat": "/chat/completions"}
# Fields some servers accept that hold the output length fixed (no early end of sequence):
# vLLM and SGLang take both; TGI and OpenAI itself take neither (their requests may end early,
# which the cell's count of short outputs shows).
HOLD_LENGTH = ("min_tokens", "ignore_eos")
TEXT_FIELDS = ("content", "reasoning_content", "reasoning")  # a chat delta's text
MAX_COUNT = 1 << 40  # a token count beyond this is no count


class ChunkError(ValueError):
    """A chunk that is not the protocol's (``str()`` is the reason, without the chunk)."""


@dataclass(frozen=True)
class Chunk:
    """What one streamed chunk says."""

    text_chars: int = 0  # characters of output text it carries (0: no token in it)
    fields: tuple[str, ...] = ()  # the fields that carried them: text, content, reasoning_content
    tokens: int | None = None  # tokens it carries where the chunk says (ids, logprobs), else None
    token_ids: tuple[int, ...] = ()  # the ids it carries, where the server returns them
    prompt_tokens: int | None = None  # usage, where the chunk has it
    completion_tokens: int | None = None
    finish_reason: str | None = None
    error: str = ""  # an error the server sent in the stream


def check_protocol(name: object) -> str:
    """'' for a generation protocol's name, else what was expected."""
    if name in PROTOCOLS:
        return ""
    return f"unknown generation protocol {name!r}; expected one of: {', '.join(PROTOCOLS)}"


def path(protocol: str, base: str) -> str:
    """The path to POST to: the URL's own where it ends in ``/completions`` (a Vertex AI
    endpoint's full URL), after ``/v1`` where it ends there, else ``/v1/...`` appended."""
    base = base.rstrip("/")
    if base.endswith("/completions"):
        return base
    tail = _PATHS[protocol]
    return f"{base}{tail}" if base.endswith("/v1") else f"{base}/v1{tail}"


def request_body(
    protocol: str,
    model: str,
    prompt: str | list[int],
    max_tokens: int,
    hold_length: tuple[str, ...] = (),
    temperature: float = 0.0,
    seed: int | None = None,
    token_ids: bool = False,
) -> bytes:
    """One streamed request for ``max_tokens`` tokens of output; the fields of
    ``hold_length`` (a subset of ``HOLD_LENGTH``) ask the server not to end before them. A
    completions prompt may be token ids (vLLM and SGLang take them: exact lengths where bench
    knows the server's tokenizer); a chat message is text."""
    body: dict[str, Any] = {"model": model}
    if protocol == "openai-chat":
        if not isinstance(prompt, str):
            raise ValueError(
                "openai-chat sends a message of text; token ids need openai-completions"
            )
        body["messages"] = [{"role": "user", "content": prompt}]
    elif protocol == "openai-completions":
        body["prompt"] = prompt
    else:
        raise ValueError(check_protocol(protocol))
    body.update(
        max_tokens=max_tokens,
        temperature=temperature,
        stream=True,
        stream_options={"include_usage": True},
    )
    if seed is not None:
        body["seed"] = seed
    if "min_tokens" in hold_length:
        body["min_tokens"] = max_tokens
    if "ignore_eos" in hold_length:
        body["ignore_eos"] = True
    if token_ids:  # vLLM and SGLang: each chunk's generated ids (choices[].token_ids)
        body["return_token_ids"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def read_chunk(data: str) -> Chunk:
    """The chunk an event's data holds (both protocols: a completions choice has ``text``, a
    chat choice a ``delta``); ``ChunkError`` where the data is not a chunk."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested past Python's parser
        raise ChunkError(f"invalid JSON in a chunk: {type(exc).__name__}: {exc}"[:200]) from None
    if not isinstance(obj, dict):
        raise ChunkError(f"a chunk that is not a JSON object ({type(obj).__name__})")
    if (error := _error(obj)) is not None:
        return Chunk(error=error)
    choices = obj.get("choices") or []
    if not isinstance(choices, list):
        raise ChunkError("a chunk whose choices are not a list")
    chars, fields, tokens, finish, ids = 0, [], None, None, []
    for choice in choices:
        if not isinstance(choice, dict):
            raise ChunkError("a chunk whose choice is not an object")
        for name, text in _texts(choice):
            if not isinstance(text, str):
                raise ChunkError(f"a chunk whose {name} is not a string")
            if text:
                chars += len(text)
                if name not in fields:
                    fields.append(name)
        tokens = _logprob_tokens(choice.get("logprobs"), tokens)
        ids += _token_ids(choice.get("token_ids"))
        if isinstance(choice.get("finish_reason"), str):
            finish = choice["finish_reason"]
    usage = obj.get("usage")
    prompt = completion = None
    if usage is not None:
        if not isinstance(usage, dict):
            raise ChunkError("a chunk whose usage is not an object")
        prompt = _count(usage, "prompt_tokens")
        completion = _count(usage, "completion_tokens")
    if ids:  # the server's own ids: the exact count, over logprobs' or the client's
        tokens = len(ids)
    return Chunk(
        text_chars=chars, fields=tuple(fields), tokens=tokens if chars else None,
        token_ids=tuple(ids), prompt_tokens=prompt, completion_tokens=completion,
        finish_reason=finish,
    )  # fmt: skip


def _texts(choice: dict[str, Any]) -> list[tuple[str, Any]]:
    found = [("text", choice["text"])] if choice.get("text") is not None else []
    delta = choice.get("delta")
    if isinstance(delta, dict):
        found += [(k, delta[k]) for k in TEXT_FIELDS if delta.get(k) is not None]
    elif delta is not None:
        raise ChunkError("a chunk whose delta is not an object")
    return found


def _logprob_tokens(logprobs: Any, so_far: int | None) -> int | None:
    """Tokens a choice carries where its logprobs list them (completions: ``tokens``; chat:
    ``content``), added over choices."""
    if not isinstance(logprobs, dict):
        return so_far
    listed = logprobs.get("tokens", logprobs.get("content"))
    if not isinstance(listed, list) or not listed:
        return so_far
    return (so_far or 0) + len(listed)


def _token_ids(found: Any) -> list[int]:
    if found is None:
        return []
    if not isinstance(found, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) and 0 <= t <= MAX_COUNT for t in found
    ):
        raise ChunkError("a chunk whose token_ids are not a list of token ids")
    return found


def _count(usage: dict[str, Any], name: str) -> int | None:
    value = usage.get(name)
    if value is None:
        return None
    # bool is an int to Python; a float such as 12.0 is a count some servers write.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise ChunkError(f"a usage {name} that is not a count: {str(value)[:40]}")
    return value


def _error(obj: dict[str, Any]) -> str | None:
    """The message of an error sent in the stream (``{"error": {...}}`` as OpenAI and vLLM
    send it, ``{"error": "..."}`` as TGI does, ``{"object": "error", ...}`` as older vLLM)."""
    if "error" in obj and obj["error"] is not None:
        err = obj["error"]
        if isinstance(err, dict):
            return str(err.get("message") or err.get("type") or err)
        return str(err)
    if obj.get("object") == "error":
        return str(obj.get("message") or "error")
    return None

"""The scenario's ``generate:`` block (``workload: generate``): the request lengths, how many
requests a load has, sampling, and an optional trace file; and the checks that need the cells
(every request fits its cell's KV cache; prompts fit a compiled bucket).

A length is a number of tokens, ``{uniform: [lo, hi]}`` or ``{lognormal: {mean, sigma}}``
(``bench.serve.generation.lengths``). A trace is a CSV file of ``arrival_s,prompt_tokens,
output_tokens`` rows (a header line first), read when the scenario is loaded (relative to the
scenario's folder) and sent to the worker with each cell.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.limits import MAX_SEQ_LEN, WEEK_S, InputFileError, count, read_text_file
from bench.serve.generation.lengths import longest

MAX_TRACE_ROWS = 100_000
TRACE_HEADER = ("arrival_s", "prompt_tokens", "output_tokens")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Uniform(_Strict):
    uniform: tuple[count(MAX_SEQ_LEN), count(MAX_SEQ_LEN)] = Field(
        description="[lowest, highest] tokens, both included"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.uniform[0] > self.uniform[1]:
            raise ValueError(
                f"uniform: [lowest, highest] with lowest <= highest (got {list(self.uniform)})"
            )
        return self


class LognormalParams(_Strict):
    mean: float = Field(gt=0, le=MAX_SEQ_LEN, description="mean length in tokens")
    sigma: float = Field(gt=0, le=3, description="spread: the standard deviation of log(length)")


class Lognormal(_Strict):
    lognormal: LognormalParams


Length = count(MAX_SEQ_LEN) | Uniform | Lognormal


class Generation(_Strict):
    prompt_tokens: Length = Field(
        32, description="prompt length: tokens, {uniform: [lo, hi]} or {lognormal: {mean, sigma}}"
    )
    output_tokens: Length = Field(
        64, description="output length, held fixed per request (no early end)"
    )
    requests: count(1_000_000) = Field(
        64, description="requests in each load (each rate a search probes)"
    )
    warmup_requests: count(100_000, ge=0) = Field(
        8, description="requests served first, offline and uncounted, before the first load"
    )
    burstiness: float = Field(
        1.0,
        gt=0,
        le=100,
        description="arrivals: gamma: the gaps' coefficient of variation (1: Poisson; above: burstier)",
    )
    temperature: float = Field(0.0, ge=0, le=100, description="0: greedy; else seeded sampling")
    prompt_buckets: list[count(MAX_SEQ_LEN)] | None = Field(
        None,
        description="prompt lengths prefill is compiled for (a prompt is padded to the next); "
        "default: powers of two from 16 to the longest prompt",
    )
    trace: str | None = Field(
        None,
        description="a CSV file of arrival_s,prompt_tokens,output_tokens rows replacing the "
        "drawn lengths and arrivals (relative to the scenario's folder)",
    )
    max_seconds: float = Field(
        120.0,
        gt=0,
        le=WEEK_S,
        description="a load still running after this fails its unfinished requests",
    )


def length_json(length: Any) -> Any:
    return length if isinstance(length, int) else length.model_dump()


def read_trace(path: Path) -> list[tuple[float, int, int]]:
    """The trace's rows; ValueError naming the row and what was expected."""
    try:
        text = read_text_file(path, "a generation trace")
    except InputFileError as exc:
        raise ValueError(str(exc)) from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != TRACE_HEADER:
        raise ValueError(f"{path}:1: expected the header {','.join(TRACE_HEADER)}")
    rows: list[tuple[float, int, int]] = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(rows) == MAX_TRACE_ROWS:
            raise ValueError(
                f"{path}: more than {MAX_TRACE_ROWS:,} requests; expected at most that"
            )
        try:
            arrival, prompt, output = float(row[0]), int(row[1]), int(row[2])
        except (ValueError, IndexError):
            raise ValueError(
                f"{path}:{line}: expected arrival_s (seconds), prompt_tokens and output_tokens "
                f"(whole numbers), got {','.join(row)[:80]!r}"
            ) from None
        if len(row) != 3 or not (math.isfinite(arrival) and 0 <= arrival <= WEEK_S):
            raise ValueError(
                f"{path}:{line}: expected 3 fields and an arrival_s from 0 to {WEEK_S:g}"
            )
        if not (1 <= prompt <= MAX_SEQ_LEN and 1 <= output <= MAX_SEQ_LEN):
            raise ValueError(f"{path}:{line}: expected token counts from 1 to {MAX_SEQ_LEN}")
        rows.append((arrival, prompt, output))
    if not rows:
        raise ValueError(f"{path}: no requests; expected at least one row after the header")
    return rows


def longest_prompt(block: Generation, trace: list[tuple[float, int, int]] | None) -> int | None:
    if trace is not None:
        return max(p for _, p, _ in trace)
    return longest(length_json(block.prompt_tokens))


def buckets(
    block: Generation, trace: list[tuple[float, int, int]] | None, cache_len: int
) -> list[int]:
    """Prompt buckets: the scenario's, else powers of two from 16 up to the longest prompt
    (a lognormal's: the cache less one position), capped at ``cache_len - 1``."""
    if block.prompt_buckets:
        return sorted(set(block.prompt_buckets))
    top = min(longest_prompt(block, trace) or cache_len - 1, cache_len - 1)
    out, b = [], 16
    while b < top:
        out.append(b)
        b *= 2
    return [*out, top] if top >= 1 else [1]


def check(
    block: Generation, trace: list[tuple[float, int, int]] | None, cells: list[Any]
) -> list[tuple[str, str]]:
    """(field, problem) for every generate cell whose requests cannot fit it."""
    found: list[tuple[str, str]] = []
    prompt = longest_prompt(block, trace)
    output = max(o for _, _, o in trace) if trace else longest(length_json(block.output_tokens))
    field = "trace" if trace else "prompt_tokens"
    for cell in cells:
        cache = int(cell.key["cache_len"])
        if prompt is not None and prompt > cache - 1:
            found.append(
                (
                    field,
                    f"cell {cell.cell_id}: prompts up to {prompt} tokens do not fit "
                    f"cache_len {cache}; expected at most {cache - 1} (one position for output)",
                )
            )
        elif prompt is not None and output is not None and prompt + output - 1 > cache:
            found.append(
                (
                    "trace" if trace else "output_tokens",
                    f"cell {cell.cell_id}: a {prompt}-token prompt and {output} output tokens "
                    f"need {prompt + output - 1} positions; expected at most cache_len {cache}",
                )
            )
        if block.prompt_buckets and prompt is not None and max(block.prompt_buckets) < prompt:
            found.append(
                (
                    "prompt_buckets",
                    f"the largest bucket {max(block.prompt_buckets)} is "
                    f"shorter than the longest prompt ({prompt}); expected one at least that long",
                )
            )
        if block.prompt_buckets and max(block.prompt_buckets) > cache - 1:
            found.append(
                (
                    "prompt_buckets",
                    f"cell {cell.cell_id}: bucket {max(block.prompt_buckets)} "
                    f"does not fit cache_len {cache}; expected at most {cache - 1}",
                )
            )
        if found:
            break
    return found

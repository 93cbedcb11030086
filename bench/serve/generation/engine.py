"""The in-process generation engine: requests into the decoder's slots, one decode step at a
time, under the ``static`` or the ``continuous`` scheduler.

- ``static``: when every slot is idle, the requests waiting (at most one per slot) are
  prefilled and decoded together; the batch ends when its longest sequence ends, so a slot
  whose sequence finished early idles until then, and a request arriving meanwhile waits.
- ``continuous`` (iteration-level scheduling, as in Orca and vLLM): after every decode step a
  finished sequence's slot is free, and a waiting request is prefilled into it before the next
  step, between decode steps.

Every shape was compiled before the engine starts (``CompiledDecoder``), so nothing compiles
here. Times come from ``clock``: the real one in a cell, a virtual one in the tests (the
engine's bookkeeping checked against an independent simulation, without timing noise). A
request's clock starts at its scheduled arrival, whatever the engine was doing then.

The per-step work is kept to a few numpy operations on arrays of ``slots`` entries (the
harness-overhead benchmark compares the engine with a bare loop over the same decode step):
a step's end time and tokens are appended to two lists, and a finished request's times and
tokens are read from them when it ends.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from bench.serve.generation.decoder import CompiledDecoder
from bench.serve.generation.record import Generated
from bench.serve.generation.requests import GenRequest

Scheduler = Literal["static", "continuous"]
SCHEDULERS: tuple[str, ...] = ("static", "continuous")


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...


class RealClock:
    """The host's monotonic clock."""

    now = staticmethod(time.perf_counter)

    @staticmethod
    def sleep_until(t: float) -> None:
        wait = t - time.perf_counter()
        if wait > 0:
            time.sleep(wait)


@dataclass
class EngineRun:
    records: list[Generated]
    # (active rows, seconds) of every decode step; (prompt tokens, seconds) of every prefill.
    decode_steps: list[tuple[int, float]] = field(default_factory=list)
    prefills: list[tuple[int, float]] = field(default_factory=list)
    duration_s: float = 0.0  # start of the load to its last token (or the deadline)


def run(
    decoder: CompiledDecoder,
    requests: Sequence[GenRequest],
    scheduler: Scheduler,
    prompts: Callable[[GenRequest], np.ndarray],
    clock: Clock | None = None,
    deadline_s: float = math.inf,
) -> EngineRun:
    """Serve ``requests`` (sorted by arrival) and measure each; ``prompts`` gives a request's
    token ids. Requests not finished by ``deadline_s`` (from the start) fail with the reason."""
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler {scheduler!r}; expected one of {', '.join(SCHEDULERS)}")
    clock = clock or RealClock()
    slots = decoder.slots
    tokens = np.zeros(slots, dtype=np.int32)
    positions = np.zeros(slots, dtype=np.int32)
    seeds = np.zeros(slots, dtype=np.int32)
    remaining = np.zeros(slots, dtype=np.int64)  # decode steps left per row; 0: idle
    owner = [-1] * slots
    joined = [0] * slots  # the first decode step of the row's sequence
    records = [Generated(r.index, r.arrival, r.prompt_tokens, r.output_tokens) for r in requests]
    out = EngineRun(records)
    step_times: list[float] = []
    step_tokens: list[np.ndarray] = []
    waiting: deque[int] = deque()
    arrived = 0
    continuous = scheduler == "continuous"

    def finish(row: int) -> None:
        rec = records[owner[row]]
        steps = rec.output_tokens - 1
        start = joined[row]
        rec.chunk_times.extend(step_times[start : start + steps])
        if steps:
            rec.tokens.extend(np.stack(step_tokens[start : start + steps])[:, row].tolist())
        rec.chunk_tokens = [1] * len(rec.chunk_times)
        owner[row] = -1
        tokens[row] = positions[row] = 0

    t0 = clock.now()
    # Due times on the clock itself: ``t0 + arrival`` is what the engine sleeps until, so
    # comparing it with the clock (not ``clock - t0`` with the arrival) cannot round short.
    due = [t0 + r.arrival for r in requests]
    now = 0.0
    live = 0  # rows decoding
    countdown = 0  # decode steps until the first of them ends
    while True:
        now_abs = clock.now()
        now = now_abs - t0
        if now > deadline_s:
            break
        while arrived < len(requests) and due[arrived] <= now_abs:
            waiting.append(arrived)
            arrived += 1
        if live == 0 and not waiting:
            if arrived == len(requests):
                break
            if requests[arrived].arrival > deadline_s:
                now = deadline_s
                break
            clock.sleep_until(due[arrived])
            continue
        if waiting and (continuous or live == 0) and live < slots:
            added = _admit(decoder, requests, records, waiting, remaining, out, clock, t0, prompts,
                           step_times, (tokens, positions, seeds, owner, joined))  # fmt: skip
            if added:
                live += added
                countdown = int(remaining[remaining > 0].min())
        if live == 0:
            continue
        started = clock.now()
        answer = decoder.decode(tokens, positions, seeds)
        ended = clock.now()
        out.decode_steps.append((live, ended - started))
        step_times.append(ended - t0)
        step_tokens.append(np.array(answer, dtype=np.int32))
        if live == slots:  # every row decoding: no masks (the common case under load)
            tokens[:] = answer
            positions += 1
            remaining -= 1
        else:
            rows = remaining > 0
            tokens[rows] = answer[rows]
            positions[rows] += 1
            remaining[rows] -= 1
        countdown -= 1
        if countdown == 0:
            for row in np.flatnonzero((remaining == 0) & (np.asarray(owner) >= 0)):
                finish(int(row))
                live -= 1
            countdown = int(remaining[remaining > 0].min()) if live else 0
    for k, rec in enumerate(records):
        if not rec.ok or len(rec.chunk_times) < rec.output_tokens:
            rec.error = rec.error or _why_unfinished(k < arrived, rec, deadline_s)
    out.duration_s = max((r.end for r in records if r.ok), default=now)
    return out


def _admit(
    decoder: CompiledDecoder,
    requests: Sequence[GenRequest],
    records: list[Generated],
    waiting: deque[int],
    remaining: np.ndarray,
    out: EngineRun,
    clock: Clock,
    t0: float,
    prompts: Callable[[GenRequest], np.ndarray],
    step_times: list[float],
    rows: tuple[np.ndarray, np.ndarray, np.ndarray, list[int], list[int]],
) -> int:
    """Prefill waiting requests into the idle rows, one at a time; the rows now decoding."""
    tokens, positions, seeds, owner, joined = rows
    added = 0
    for row in np.flatnonzero(remaining == 0):
        if not waiting:
            break
        k = waiting.popleft()
        req, rec = requests[k], records[k]
        started = clock.now()
        rec.started = started - t0
        first = decoder.prefill(int(row), prompts(req), req.seed)
        ended = clock.now()
        out.prefills.append((req.prompt_tokens, ended - started))
        rec.chunk_times.append(ended - t0)
        rec.tokens.append(int(first))
        if req.output_tokens == 1:
            rec.chunk_tokens = [1]
            continue
        owner[row], joined[row] = k, len(step_times)
        tokens[row], positions[row], seeds[row] = first, req.prompt_tokens, req.seed
        remaining[row] = req.output_tokens - 1
        added += 1
    return added


def _why_unfinished(arrived: bool, rec: Generated, deadline_s: float) -> str:
    if not arrived:
        return f"not yet due when the run stopped at its {deadline_s:g} s limit"
    if not rec.chunk_times:
        return f"still waiting for a slot at the {deadline_s:g} s limit"
    return f"{len(rec.chunk_times)} of {rec.output_tokens} tokens by the {deadline_s:g} s limit"

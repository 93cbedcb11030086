"""Open-loop load on an OpenAI-compatible generation server: every request sent at its scheduled
time through a limited number of sender slots, its stream read, one ``Generated`` record each.

A generator thread hands request i over at ``arrival`` seconds after the load's start, whatever
the server is doing; ``slots`` sender threads, each with its own keep-alive connection (opened
before the first request is due, as a warm client pool holds them), take the requests in that
order. A request that finds every sender busy waits for one: that wait is in its ``started``
(when a sender was free and it went out) and in every latency, which counts from the scheduled
arrival (vLLM #54101 dropped it from TTFT). How late the generator itself was, and how often
the slots were all busy, are kept so that ``client_checks`` can tell a saturated client from a
slow server.

Prompts and request bodies are built before the load (the client's encoding is not in the
measured path). Times are seconds from the load's start (``Generated``'s origin).
"""

from __future__ import annotations

import math
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.serve.generation.prompt_text import synth_prompt
from bench.serve.generation.record import Generated
from bench.serve.generation.requests import GenRequest
from bench.serve.generation.stream import (
    MAX_IN_FLIGHT,
    GenEndpoint,
    StreamClient,
    Streamed,
    StreamSender,
)
from bench.serve.loadgen import START_LEAD_S, SWITCH_INTERVAL_S

Clock = Callable[[], float]


@dataclass
class GenLoad:
    """What happened to each request of one load (lists in the order of ``requests``)."""

    records: list[Generated]
    issued: np.ndarray  # when the generator handed each over (NaN: never: the load ended)
    released: np.ndarray  # when its sender was done with it (stream ended or failed; NaN: not)
    fields: list[list[str]]  # what carried each request's output text (content, reasoning...)
    finish_reasons: list[str | None]
    slots: int
    all_busy: int  # requests that found every sender busy when handed over
    seconds: float  # the load's wall time, from its start to the last answer (or the cutoff)
    client_cpu_s: float  # this process's CPU time over the load (its threads: the client)
    endpoint: str  # described, without credentials


def default_prompt(request: GenRequest) -> str:
    return synth_prompt(request.prompt_tokens, request.seed)


def drive(
    requests: Sequence[GenRequest],
    endpoint: GenEndpoint,
    slots: int | None = None,
    prompt: Callable[[GenRequest], str | list[int]] = default_prompt,
    drain_s: float | None = None,
    clock: Clock = time.perf_counter,
) -> GenLoad:
    """Sends ``requests`` open-loop through ``slots`` senders (default: the endpoint's
    ``max_in_flight``); ``EndpointError`` (before any
    request) where the endpoint is refused (its fields, its URL, the token's rules). With
    ``drain_s``, requests unfinished ``drain_s`` after the last arrival are left (an error
    each: unfinished when the load ended); without, every request is waited for (each is
    bounded by ``timeout_s`` once sent)."""
    slots = endpoint.max_in_flight if slots is None else slots
    if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= MAX_IN_FLIGHT:
        raise ValueError(f"slots: {slots!r}; expected a whole number from 1 to {MAX_IN_FLIGHT}")
    client = StreamClient(endpoint)
    seeded = endpoint.temperature > 0  # a seed means nothing to greedy decoding
    bodies = [client.body(prompt(r), r.output_tokens, r.seed if seeded else None) for r in requests]
    return _Load(client, list(requests), bodies, slots, clock).run(drain_s)


class _Load:
    def __init__(
        self,
        client: StreamClient,
        requests: list[GenRequest],
        bodies: list[bytes],
        slots: int,
        clock: Clock,
    ):
        self.client, self.requests, self.bodies, self.clock = client, requests, bodies, clock
        n = len(requests)
        self.slots = slots
        self.issued, self.started, self.released = (np.full(n, np.nan) for _ in range(3))
        self.results: list[Streamed | None] = [None] * n
        self.pending: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self.finished = [0] * slots  # per sender, so no two threads write one counter
        self.all_done = threading.Event()
        self.stop = threading.Event()
        self.all_busy = 0
        self.origin = 0.0
        self.opened = threading.Barrier(slots + 1)
        self.senders: list[StreamSender] = []
        if n == 0:
            self.all_done.set()

    def now(self) -> float:
        return self.clock() - self.origin

    def run(self, drain_s: float | None) -> GenLoad:
        senders = [
            threading.Thread(target=self._send, args=(k,), name=f"bench-gen-send-{k}", daemon=True)
            for k in range(self.slots)
        ]
        previous = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)  # a woken reader gets the GIL within 0.2 ms
        try:
            for t in senders:
                t.start()
            self.opened.wait()
            cpu0 = time.process_time()
            self.origin = self.clock() + START_LEAD_S
            generator = threading.Thread(target=self._issue, name="bench-gen-loadgen", daemon=True)
            generator.start()
            generator.join()
            last = max((r.arrival for r in self.requests), default=0.0)
            self.all_done.wait(None if drain_s is None else max(0.0, last + drain_s - self.now()))
            seconds = self.now()
            cpu = time.process_time() - cpu0
        finally:
            sys.setswitchinterval(previous)
            self.stop.set()
            for _ in senders:
                self.pending.put(None)
        found = self._result(seconds, cpu)
        # Streams still open at the cutoff are cut now, not left to run to their timeout_s
        # beside the next load (a search's next rate) on this machine's cores.
        for sender in list(self.senders):
            sender.abort()
        return found

    def _issue(self) -> None:
        """The generator: sleeps until each request is due, then hands it over at once."""
        order = sorted(range(len(self.requests)), key=lambda i: self.requests[i].arrival)
        for handed, i in enumerate(order):
            wait = self.requests[i].arrival - self.now()
            if wait > 0:
                time.sleep(wait)
            self.issued[i] = self.now()
            if handed - sum(self.finished) >= self.slots:
                self.all_busy += 1
            self.pending.put(i)

    def _send(self, slot: int) -> None:
        sender = self.client.sender()
        self.senders.append(sender)
        sender.open()
        self.opened.wait()
        n = len(self.requests)
        while (i := self.pending.get()) is not None:
            if self.stop.is_set():
                break  # the load ended: what is still queued is never sent
            self.started[i] = self.now()
            result = sender.stream(self.bodies[i], self.now)
            self.released[i] = self.now()
            self.results[i] = result
            self.finished[slot] += 1
            if sum(self.finished) >= n:
                self.all_done.set()
        sender.close()  # connections do not outlive the load they were opened for

    def _result(self, seconds: float, cpu: float) -> GenLoad:
        # A copy at the cutoff: senders still streaming write on, into what is not returned.
        results, started, released = list(self.results), self.started.copy(), self.released.copy()
        records, fields, finishes = [], [], []
        for i, r in enumerate(self.requests):
            got = results[i]
            was_started = not math.isnan(started[i])
            record = Generated(
                r.index, r.arrival, r.prompt_tokens, r.output_tokens,
                started=float(started[i]) if was_started else None,
            )  # fmt: skip
            if got is None:
                record.error = (
                    "unfinished when the load ended (drain_s after the last arrival)"
                    if was_started
                    else "never sent: no sender was free before the load ended"
                )
                released[i] = np.nan
            else:
                record.chunk_times, record.chunk_tokens = got.chunk_times, got.chunk_tokens
                record.tokens = got.token_ids
                record.server_prompt_tokens = got.prompt_tokens
                record.server_output_tokens = got.completion_tokens
                record.error = got.error
            records.append(record)
            fields.append(list(got.fields) if got else [])
            finishes.append(got.finish_reason if got else None)
        return GenLoad(
            records, self.issued.copy(), released, fields, finishes, self.slots, self.all_busy,
            seconds, cpu, self.client.endpoint.describe(),
        )  # fmt: skip

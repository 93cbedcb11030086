"""The generation engine's open-ended mode: continuous batching over requests that arrive while
it runs, each request's tokens handed out as they are made, for a server (``bench serve
decoder``).

``engine.run`` serves a fixed list of requests known in advance and keeps each one's tokens
until it ends (its per-step work is the benchmarked minimum, ``.ci/generation-bench``); this
mode is a separate loop so that path is unchanged. The scheduling is the ``continuous`` rule:
after each decode step a finished (or cancelled) sequence's slot is free, and a waiting
request is prefilled into it before the next step. A request is a ``Job``: its prompt ids, how
many tokens it wants, its sampling seed. The loop runs in one thread (``start``); requests come
in through a queue (``submit``, from any thread); after every prefill and decode step, one call
of ``publish`` hands over what that step made, ``[(job, tokens, finished)]``, so a server
crosses threads once per step, not once per token. A job cancelled (its client went away) is
dropped from its slot at the next step.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bench.serve.generation.decoder import CompiledDecoder


@dataclass(eq=False)
class Job:
    prompt: np.ndarray  # int32 token ids, 1 <= n <= the decoder's largest bucket
    output_tokens: int  # prompt + output fit the cache (the caller checked)
    seed: int = 0
    cancelled: bool = False  # set from the server's thread; read by the engine's
    made: int = 0  # tokens handed out so far
    context: object = field(default=None, repr=False)  # the server's, for ``publish``


Step = list[tuple[Job, int, bool]]  # (job, token, its last) for every job that got one


class LiveEngine:
    """Continuous batching over ``decoder`` in a thread of its own; ``publish`` is called from
    that thread after every step that made tokens."""

    def __init__(
        self,
        decoder: CompiledDecoder,
        publish: Callable[[Step], None],
        failed: Callable[[BaseException], None] = lambda exc: None,
    ) -> None:
        self.decoder, self.publish, self.failed = decoder, publish, failed
        self.incoming: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="bench-decoder-engine", daemon=True)
        self.failure: BaseException | None = None  # what ended the loop, if anything did

    def start(self) -> None:
        self.thread.start()

    def submit(self, job: Job) -> None:
        self.incoming.put(job)

    def stop(self, timeout: float = 5.0) -> None:
        self.incoming.put(None)
        self.thread.join(timeout)

    def _loop(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # the server answers every request it holds with it
            self.failure = exc
            self.failed(exc)
            raise

    def _serve(self) -> None:
        d = self.decoder
        slots = d.slots
        tokens = np.zeros(slots, dtype=np.int32)
        positions = np.zeros(slots, dtype=np.int32)
        seeds = np.zeros(slots, dtype=np.int32)
        remaining = np.zeros(slots, dtype=np.int64)  # decode steps left per row; 0: idle
        owner: list[Job | None] = [None] * slots
        waiting: deque[Job] = deque()
        while True:
            live = int(np.count_nonzero(remaining))
            # Idle: block until a request comes; busy: take what came, without waiting.
            try:
                while True:
                    job = self.incoming.get(block=live == 0 and not waiting)
                    if job is None:
                        return
                    waiting.append(job)
            except queue.Empty:
                pass
            made: Step = []
            for row in np.flatnonzero(remaining == 0):
                while waiting and waiting[0].cancelled:
                    waiting.popleft()
                if not waiting:
                    break
                job = waiting.popleft()
                first = int(d.prefill(int(row), job.prompt, job.seed))
                job.made = 1
                made.append((job, first, job.output_tokens == 1))
                if job.output_tokens > 1:
                    owner[row] = job
                    tokens[row], positions[row], seeds[row] = first, len(job.prompt), job.seed
                    remaining[row] = job.output_tokens - 1
            if made:
                self.publish(made)
            for row in np.flatnonzero(remaining > 0):  # a client gone: its slot is free now
                job = owner[row]
                if job is not None and job.cancelled:
                    remaining[row], owner[row] = 0, None
                    tokens[row] = positions[row] = 0
            rows = remaining > 0
            if not rows.any():
                continue
            answer = d.decode(tokens, positions, seeds)
            tokens[rows] = answer[rows]
            positions[rows] += 1
            remaining[rows] -= 1
            made = []
            for row in np.flatnonzero(rows):
                job = owner[row]
                assert job is not None
                job.made += 1
                last = bool(remaining[row] == 0)
                made.append((job, int(answer[row]), last))
                if last:
                    owner[row] = None
                    tokens[row] = positions[row] = 0
            self.publish(made)

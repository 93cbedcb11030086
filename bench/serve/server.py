"""An in-process model server: a request queue and a dynamic batcher on its own thread.

The generator calls ``submit`` (it never blocks on the model); the batcher thread closes
batches by ``bench.serve.batching.Policy`` and calls ``infer(ids, bucket)``, which returns once
the batch's results are on the host. Each request's batch start, completion, batch size and
bucket go into the shared ``Trace``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.serve.batching import Policy, Trace

Infer = Callable[[np.ndarray, int], Any]


class Server:
    def __init__(
        self,
        infer: Infer,
        policy: Policy,
        trace: Trace,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.infer, self.policy, self.trace, self.clock = infer, policy, trace, clock
        self._queue: deque[tuple[int, float]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._answered = 0
        self.all_answered = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bench-batcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, index: int, at: float) -> None:
        """Queue request ``index``, handed over at ``at`` (the batch timeout counts from it)."""
        with self._cond:
            self._queue.append((index, at))
            # The batcher waits for a first request, or for a batch to fill (else its timeout
            # wakes it): waking it for every request in between would only make it compete
            # with the generator for the interpreter and the cores.
            if len(self._queue) == 1 or len(self._queue) >= self.policy.max_batch_size:
                self._cond.notify()

    def stop(self) -> None:
        """Stop after the batch in flight; requests still queued stay unanswered (dropped)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()

    def _next_batch(self) -> list[int] | None:
        limit, timeout = self.policy.max_batch_size, self.policy.batch_timeout_s
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            deadline = self._queue[0][1] + timeout
            while len(self._queue) < limit and not self._stopping:
                remaining = deadline - self.clock()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._stopping:
                return None
            take = min(len(self._queue), limit)
            return [self._queue.popleft()[0] for _ in range(take)]

    def _run(self) -> None:
        trace, total = self.trace, len(self.trace.scheduled)
        try:
            while (ids := self._next_batch()) is not None:
                bucket = self.policy.bucket(len(ids))
                idx = np.asarray(ids)
                started = self.clock()
                self.infer(idx, bucket)
                done = self.clock()
                trace.started[idx] = started
                trace.done[idx] = done
                trace.batch[idx] = len(ids)
                trace.bucket[idx] = bucket
                self._answered += len(ids)
                if self._answered >= total:
                    self.all_answered.set()
        except BaseException as exc:  # reported by the caller; the thread must not die silently
            self.error = exc
            self.all_answered.set()

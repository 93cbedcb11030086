"""An in-process model server: a request queue and a dynamic batcher on its own thread.

The generator calls ``submit`` (it never blocks on the model); the batcher thread closes
batches by the batching rule (``bench.serve.batching.Batcher``, counted in requests, on the
injected clock) and calls ``infer(ids, bucket)``, which returns once the batch's results are
on the host. Each request's batch start, completion, batch size and bucket go into the shared
``Trace``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.serve.batching import Batcher, Policy, Trace

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
        self._batcher: Batcher[int] = Batcher(policy, clock)
        self._answered = 0
        self.all_answered = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bench-batcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, index: int, at: float) -> None:
        """Queue request ``index``, handed over at ``at`` (the batch timeout counts from it)."""
        self._batcher.put(index, at)

    def stop(self) -> None:
        """Stop after the batch in flight; requests still queued stay unanswered (dropped)."""
        self._batcher.stop()
        self._thread.join()

    def _run(self) -> None:
        trace, total = self.trace, len(self.trace.scheduled)
        try:
            while (batch := self._batcher.next_batch()) is not None:
                bucket = self.policy.bucket(len(batch))
                idx = np.asarray([i for i, _ in batch])
                started = self.clock()
                self.infer(idx, bucket)
                done = self.clock()
                self._batcher.freed()
                trace.started[idx] = started
                trace.done[idx] = done
                trace.batch[idx] = len(batch)
                trace.bucket[idx] = bucket
                self._answered += len(batch)
                if self._answered >= total:
                    self.all_answered.set()
        except BaseException as exc:  # reported by the caller; the thread must not die silently
            self.error = exc
            self.all_answered.set()

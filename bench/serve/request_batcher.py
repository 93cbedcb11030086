"""Dynamic batching for a network model server (``bench serve``): requests from any thread or
event loop, batches closed by the in-process server's rule, answers handed back per request.

The rule is ``bench.serve.batching.Policy``'s, the one in-process serve cells measure: a batch
closes when ``max_batch_size`` rows wait or when the oldest has waited ``batch_timeout_s``, and
runs in the smallest compiled bucket that holds it, padded. So an endpoint cell and an
in-process cell with the same batching settings batch alike, and the difference between their
latencies is the server's own overhead (HTTP or gRPC, serialisation, the network path).

Framework-free: ``run(features, bucket)`` is the framework's compiled predict step.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from bench.serve.batching import Policy

RunBucket = Callable[[dict[str, np.ndarray], int], np.ndarray]


class RequestBatcher:
    def __init__(self, run: RunBucket, policy: Policy) -> None:
        self.run, self.policy = run, policy
        self._queue: deque[tuple[dict[str, np.ndarray], int, float, Future]] = deque()
        self._rows = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="bench-batcher", daemon=True)
        self._thread.start()

    def submit(self, features: dict[str, np.ndarray]) -> Future:
        """Queue one request of ``n`` rows (every feature ``[n, ...]``); its future gets the
        request's ``[n, outputs]`` predictions, or the exception its batch raised."""
        rows = len(next(iter(features.values())))
        if not 1 <= rows <= self.policy.max_batch_size:
            raise ValueError(
                f"a request of {rows} rows; expected 1 to max_batch_size "
                f"({self.policy.max_batch_size}) rows"
            )
        fut: Future = Future()
        with self._cond:
            self._queue.append((features, rows, time.perf_counter(), fut))
            self._rows += rows
            if len(self._queue) == 1 or self._rows >= self.policy.max_batch_size:
                self._cond.notify()
        return fut

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _next_batch(self) -> list[tuple[dict[str, np.ndarray], int, float, Future]] | None:
        limit, timeout = self.policy.max_batch_size, self.policy.batch_timeout_s
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            deadline = self._queue[0][2] + timeout
            while self._rows < limit and not self._stopping:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            taken, rows = [], 0
            while self._queue and rows + self._queue[0][1] <= limit:
                item = self._queue.popleft()
                rows += item[1]
                taken.append(item)
            self._rows -= rows
            return taken

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            rows = sum(item[1] for item in batch)
            bucket = self.policy.bucket(rows)
            names = list(batch[0][0])
            try:
                features = {}
                for name in names:
                    parts = [item[0][name] for item in batch]
                    stacked = np.concatenate(parts)
                    pad = np.repeat(stacked[:1], bucket - rows, axis=0)  # padding repeats row 0
                    features[name] = np.concatenate([stacked, pad]) if bucket > rows else stacked
                out = np.asarray(self.run(features, bucket))
            except BaseException as exc:  # every request of the batch gets the reason
                for item in batch:
                    item[3].set_exception(exc)
                continue
            at = 0
            for item in batch:
                item[3].set_result(out[at : at + item[1]])
                at += item[1]

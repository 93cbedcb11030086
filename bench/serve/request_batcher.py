"""Dynamic batching for a network model server (``bench serve``): requests from any thread or
event loop, batches closed by the in-process server's rule, answers handed back per request.

The rule is ``bench.serve.batching``'s, the one in-process serve cells measure, counted in
rows (a request may carry several, and is never split): a request reaching an idle server runs
at once; those arriving while a batch runs form the next one, closed when ``max_batch_size``
rows wait or its oldest has waited ``batch_timeout_s``; a batch runs in the smallest compiled
bucket that holds it, padded. So an endpoint cell and an in-process cell with the same batching
settings batch alike, and the difference between their latencies is the server's own overhead
(HTTP or gRPC, serialisation, the network path).

Framework-free: ``run(features, bucket)`` is the framework's compiled predict step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from bench.serve.batching import Batcher, Policy

RunBucket = Callable[[dict[str, np.ndarray], int], np.ndarray]
Request = tuple[dict[str, np.ndarray], Future]


class RequestBatcher:
    def __init__(
        self, run: RunBucket, policy: Policy, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        if policy.unit != "rows":  # a request of several rows counts as several
            policy = Policy(policy.max_batch_size, policy.batch_timeout_s, "rows")
        self.run, self.policy, self.clock = run, policy, clock
        self._batcher: Batcher[Request] = Batcher(policy, clock)
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
        self._batcher.put((features, fut), self.clock(), rows)
        return fut

    def stop(self) -> None:
        self._batcher.stop()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while (batch := self._batcher.next_batch()) is not None:
            try:
                self._answer(batch)
            finally:
                self._batcher.freed()

    def _answer(self, batch: list[tuple[Request, int]]) -> None:
        rows = sum(n for _, n in batch)
        bucket = self.policy.bucket(rows)
        try:
            features = {}
            for name in batch[0][0][0]:
                stacked = np.concatenate([request[0][name] for request, _ in batch])
                pad = np.repeat(stacked[:1], bucket - rows, axis=0)  # padding repeats row 0
                features[name] = np.concatenate([stacked, pad]) if bucket > rows else stacked
            out = np.asarray(self.run(features, bucket))
        except BaseException as exc:  # every request of the batch gets the reason
            for (_, fut), _ in batch:
                fut.set_exception(exc)
            return
        at = 0
        for (_, fut), n in batch:
            fut.set_result(out[at : at + n])
            at += n

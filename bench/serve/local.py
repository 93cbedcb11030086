"""The worker's own server as a ``Target``: requests handed straight to the dynamic batcher
(``bench.serve.server.Server``), whose batches run the model's compiled forward passes.

There is no client between the generator and the server, so a request is sent when it is
handed over, no request waits for a sender, and the server's batches are seen. A failure of the
model is not a request's error: it fails the cell (the session raises it).
"""

from __future__ import annotations

import numpy as np

from bench.serve.batching import Policy, Trace
from bench.serve.server import Infer, Server
from bench.serve.target import Clock, Run


class InProcess:
    kind = "in_process"
    batches_seen = True

    def __init__(self, infer: Infer, policy: Policy):
        self.infer, self.policy = infer, policy

    def describe(self) -> str:
        p = self.policy
        return (
            f"the worker's own server, max batch {p.max_batch_size}, batch timeout "
            f"{p.batch_timeout_s * 1e3:g} ms"
        )

    def session(self, trace: Trace, clock: Clock, keep_outputs: bool = False) -> _Session:
        return _Session(Server(self.infer, self.policy, trace, clock), trace)

    def caller(self) -> _Caller:
        return _Caller(self.infer)


class _Session:
    def __init__(self, server: Server, trace: Trace):
        self.server, self.trace = server, trace

    def start(self) -> None:
        self.server.start()

    def submit(self, index: int, at: float) -> None:
        self.server.submit(index, at)

    def wait(self, timeout: float) -> None:
        self.server.all_answered.wait(timeout=max(0.0, timeout))

    def finish(self) -> Run:
        self.server.stop()
        if self.server.error is not None:
            raise self.server.error
        n = len(self.trace.scheduled)
        return Run(self.trace, self.trace.issued.copy(), [None] * n, batches_seen=True)


class _Caller:
    def __init__(self, infer: Infer):
        self.infer = infer
        self.one = np.zeros(1, dtype=np.int64)

    def __call__(self, index: int) -> np.ndarray:
        self.one[0] = index
        return np.asarray(self.infer(self.one, 1))

    def close(self) -> None:
        pass

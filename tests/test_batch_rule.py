"""The one batch-closing rule (``bench.serve.batching.BatchQueue``), on an injected clock.

The in-process server, ``bench serve``'s batcher and the simulation all close batches by it;
these tests state the rule's cases with explicit times (in ms, for reading), so no verdict
rests on a real clock: a request reaching an idle server runs at once; requests arriving while
a batch runs form the next one, closed when full or when its oldest has waited the timeout,
never before the running batch ends; units are requests or rows, and a request is never split.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from bench.serve.batching import Batcher, BatchQueue, Policy
from bench.serve.request_batcher import RequestBatcher
from bench.serve.server import Server

MS = 1e-3
POLICY = Policy(max_batch_size=4, batch_timeout_s=2 * MS)


def test_a_request_reaching_an_idle_server_closes_its_batch_at_once():
    q: BatchQueue[str] = BatchQueue(POLICY)
    assert q.closes_at() == math.inf  # nothing waits: nothing closes
    assert q.put("a", at=10 * MS)  # the first request wakes the batcher
    assert q.closes_at() == -math.inf  # now, not at 10 + 2 ms
    assert q.take() == [("a", 1)]


def test_requests_arriving_while_a_batch_runs_wait_for_the_timeout_or_a_full_batch():
    q: BatchQueue[str] = BatchQueue(POLICY)
    q.put("a", at=0.0)
    q.take()  # "a" runs, from t=0
    assert q.put("b", at=0.5 * MS)  # arrived while busy: its batch closes at 0.5 + 2 ms
    assert not q.put("c", at=0.7 * MS)  # closing time unchanged: no need to wake the batcher
    assert q.closes_at() == pytest.approx(2.5 * MS)
    q.freed()  # "a" done at, say, 1 ms: the server is free but "b" has company coming
    assert q.closes_at() == pytest.approx(2.5 * MS)
    q.put("d", at=1.2 * MS)
    assert q.put("e", at=1.3 * MS)  # the 4th waiting request fills the batch: wake, close now
    assert q.closes_at() == -math.inf
    assert [item for item, _ in q.take()] == ["b", "c", "d", "e"]


def test_a_batch_that_filled_while_the_server_was_busy_leaves_the_rest_waiting():
    q: BatchQueue[int] = BatchQueue(POLICY)
    q.put(0, at=0.0)
    q.take()
    for i in range(1, 7):  # six arrive during the first batch: four fill the next
        q.put(i, at=i * 0.1 * MS)
    q.freed()
    assert [i for i, _ in q.take()] == [1, 2, 3, 4]
    q.freed()  # 5 and 6 arrived while a batch ran: the timeout rule, from 5's arrival
    assert q.closes_at() == pytest.approx(0.5 * MS + 2 * MS)


def test_after_the_queue_empties_the_next_request_is_alone_again():
    q: BatchQueue[str] = BatchQueue(POLICY)
    q.put("a", at=0.0)
    q.take()
    q.freed()
    q.put("b", at=50 * MS)
    assert q.closes_at() == -math.inf


def test_rows_count_as_units_and_a_request_is_never_split():
    rows = Policy(max_batch_size=8, batch_timeout_s=2 * MS, unit="rows")
    q: BatchQueue[str] = BatchQueue(rows)
    q.put("first", at=0.0, rows=1)
    q.take()
    assert q.put("a", at=0.1 * MS, rows=3)
    assert not q.put("b", at=0.2 * MS, rows=3)  # 6 of 8 rows
    assert q.put("c", at=0.3 * MS, rows=3)  # 9 rows wait: more than a batch, so close now
    q.freed()
    assert q.take() == [("a", 3), ("b", 3)]  # "c" would make 9: it waits for the next batch
    assert rows.bucket(6) == 8
    # Counted in requests, the same three are 3 of 8: no batch closes before the timeout.
    requests: BatchQueue[str] = BatchQueue(Policy(8, 2 * MS))
    requests.put("first", at=0.0)
    requests.take()
    for name in "abc":
        requests.put(name, at=0.1 * MS, rows=3)
    assert requests.closes_at() == pytest.approx(2.1 * MS)


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_threaded_batcher_closes_by_the_injected_clock():
    clock = FakeClock(0.0)
    b: Batcher[str] = Batcher(POLICY, clock)
    b.put("a", at=0.0)
    assert b.next_batch() == [("a", 1)]  # alone: at once, whatever the clock says
    b.put("b", at=0.0)  # arrived while "a" ran
    b.freed()
    clock.now = 2 * MS  # the oldest has waited the timeout on the injected clock
    assert b.next_batch() == [("b", 1)]  # returns without waiting on the real clock
    b.freed()
    b.stop()
    assert b.next_batch() is None


def test_a_stopped_batcher_wakes_its_waiting_thread():
    b: Batcher[str] = Batcher(POLICY, FakeClock())
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(b.next_batch()))
    t.start()
    b.stop()
    t.join(timeout=10)
    assert got == [None]


def test_the_in_process_server_and_bench_serves_batcher_share_the_rule():
    """Both take their batches from ``Batcher``: the in-process server in requests, ``bench
    serve``'s in rows (a 3-row request fills 3 of max_batch_size)."""
    from bench.serve.batching import Trace

    server = Server(lambda ids, bucket: None, POLICY, Trace.empty(np.zeros(1)))
    assert isinstance(server._batcher, Batcher) and server._batcher.queue.policy.unit == "requests"
    seen: list[int] = []

    def run(features: dict, bucket: int) -> np.ndarray:
        seen.append(bucket)
        return np.zeros((bucket, 2), np.float32)

    batcher = RequestBatcher(run, POLICY)
    assert isinstance(batcher._batcher, Batcher) and batcher.policy.unit == "rows"
    out = batcher.submit({"x": np.zeros((3, 5), np.float32)}).result(timeout=10)
    batcher.stop()
    assert out.shape == (3, 2) and seen == [4]  # 3 rows, alone at once, in bucket 4

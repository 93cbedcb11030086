"""The device double-buffering thread, with a fake ``place`` (the JAX run is in
``test_input_frameworks.py``)."""

from __future__ import annotations

import threading
import time

import pytest

from bench.inputs.prefetch import DevicePrefetch


def test_same_items_in_the_same_order_each_placed_once():
    placed = []

    def place(item):
        placed.append(item)
        return ("on-device", item)

    got = list(DevicePrefetch(iter(range(50)), place, depth=2))
    assert got == [("on-device", i) for i in range(50)]
    assert placed == list(range(50))


def test_keeps_at_most_depth_placed_batches_ahead():
    placed = []
    prefetch = DevicePrefetch(iter(range(100)), lambda i: placed.append(i) or i, depth=2)
    # The thread fills the queue (2) and places one more, which waits for room; then it stops.
    deadline = time.monotonic() + 10
    while len(placed) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert len(placed) == 3
    assert next(prefetch) == 0
    prefetch.close()


def test_a_failure_in_the_producer_is_raised_in_the_consumer():
    def source():
        yield 1
        raise OSError("data file /x/train-00001.tfrecord is missing")

    prefetch = DevicePrefetch(source(), lambda i: i, depth=2)
    assert next(prefetch) == 1
    with pytest.raises(OSError, match="train-00001"):
        next(prefetch)
    with pytest.raises(StopIteration):
        next(prefetch)


def test_close_stops_a_producer_blocked_on_a_full_queue():
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    prefetch = DevicePrefetch(endless(), lambda i: i, depth=1)
    assert next(prefetch) == 0
    prefetch.close()
    assert not any(t.name == "device-prefetch" and t.is_alive() for t in threading.enumerate())


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        DevicePrefetch(iter(()), lambda i: i, depth=0)

"""Double buffering onto the device: a background thread keeps the next batches placed.

``DevicePrefetch(source, place, depth)`` pulls host batches from ``source`` in a thread, places
each one (``jax.device_put``) and keeps up to ``depth`` placed batches in a queue, so while the
current step runs the next batches are already on the device; the step waits only when the
queue is empty. A thread, not flax's ``prefetch_to_device`` (which pulls the next host batch on
the caller's thread, before the step is dispatched), so host-side pulling overlaps the step too;
the queue's wait is then exactly the step's input wait.

Order is kept (one producer, a FIFO queue). A failure in the producer is raised by the next
``next()`` in the consumer, with its original traceback.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

_END = object()
_POLL_S = 0.1  # how often a blocked producer looks at the stop flag


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


class DevicePrefetch:
    def __init__(self, source: Iterator[Any], place: Callable[[Any], Any], depth: int = 2):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._source = source
        self._place = place
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._fill, name="device-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self) -> None:
        try:
            for item in self._source:
                if not self._put(self._place(item)):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(_Failed(exc))

    def __iter__(self) -> DevicePrefetch:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failed):
            self._done = True
            raise item.exc
        return item

    def close(self) -> None:
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)

"""``bench serve --workers N``: N-1 more server processes on the same REST socket.

One Python process serves requests on one core at a time (its event loop and its batcher share
the interpreter), so on a machine with cores to spare a second process on the same port adds
capacity (measured on the 2-core VM: about twice the requests/s at a p99 within 50 ms; see
docs/endpoints.md). KServe's own ``ModelServer(workers=N)`` does the same: processes that
share the listening socket, gRPC in the first only. Its workers receive the model by pickling,
which a compiled JAX or TensorFlow model does not survive; here each worker is started as
``python -m bench.run.model_server`` with the settings, builds and compiles its own copy of the
model (the same seed, so the same predictions), and accepts connections from the socket the
first process bound (inherited, never bound again: no other process can take the port). Each
worker batches its own requests. A worker whose parent is gone stops within a second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from typing import Any

STOP_WAIT_S = 10.0


def start(settings: Any, fd: int, build: str) -> list[subprocess.Popen]:
    """Start ``settings.workers - 1`` workers on the listening socket ``fd``; ``build`` is the
    ``module:function`` that builds the predictor (the parent's own)."""
    os.set_inheritable(fd, True)
    cmd = [
        sys.executable, "-m", "bench.run.model_server", "--worker",
        json.dumps(asdict(settings)), build, str(fd),
    ]  # fmt: skip
    return [subprocess.Popen(cmd, pass_fds=(fd,)) for _ in range(settings.workers - 1)]


def stop(workers: list[subprocess.Popen]) -> None:
    for proc in workers:
        if proc.poll() is None:
            proc.terminate()
    end = time.monotonic() + STOP_WAIT_S
    for proc in workers:
        try:
            proc.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def watch_parent() -> None:
    """In a worker: stop (as on SIGTERM) once the process that started it is gone, even where
    it was killed without a chance to stop its workers."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="bench-parent-watch", daemon=True).start()

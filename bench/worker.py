"""The worker: a child process that imports one framework and runs the cells it is sent.

Protocol (JSON lines): the runner writes ``{"type": "cell", ...}`` messages to stdin; the worker
answers on a private copy of its original stdout with ``ready`` once, then one ``result`` per
cell. The worker points fd 1 at stderr first, so whatever the framework prints (TensorFlow and
XLA log a lot, some from C++) lands in the worker log and never corrupts the protocol.

Run by the runner as ``python -m bench.worker FRAMEWORK DEVICE``; ``--devices`` answers one
``ready`` message and exits (used by ``bench devices``).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

BACKENDS = {"jax": "bench.backends.jax_backend", "tensorflow": "bench.backends.tf_backend"}
INSTALL_HINT = {"jax": "pip install 'bench[jax]'", "tensorflow": "pip install 'bench[tf]'"}
OOM_MARKERS = ("RESOURCE_EXHAUSTED", "out of memory", "Out of memory", "OOM when allocating")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def import_backend(framework: str) -> tuple[Any, str]:
    try:
        return importlib.import_module(BACKENDS[framework]), ""
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        return None, f"{framework} is not installed ({missing}); {INSTALL_HINT[framework]}"


def hello(framework: str, device: str) -> tuple[Any, dict[str, Any]]:
    backend, reason = import_backend(framework)
    if backend is None:
        return None, {"type": "ready", "present": False, "reason": reason, "devices": []}
    present, reason, devices = backend.probe(device)
    info = {"type": "ready", "present": present, "reason": reason, "devices": devices}
    info["version"] = backend.version()
    return backend, info


def classify_error(exc: BaseException) -> tuple[str, str]:
    text = f"{type(exc).__name__}: {exc}"
    first = next((line for line in text.splitlines() if line.strip()), text)[:300]
    if isinstance(exc, MemoryError) or any(m in text for m in OOM_MARKERS):
        return "oom", first
    return "failed", first


def run_cell(backend: Any, msg: dict[str, Any]) -> dict[str, Any]:
    from bench.measure.cell import measure_cell

    record: dict[str, Any] = {
        "cell_id": msg["cell_id"],
        "key": msg["key"],
        "status": "ok",
        "reason": "",
        "flags": [],
        "started_at": now_iso(),
        "worker_pid": os.getpid(),
    }
    try:
        record.update(measure_cell(backend, msg))
    except Exception as exc:
        record["status"], record["reason"] = classify_error(exc)
        record["traceback"] = traceback.format_exc(limit=20)
    record["finished_at"] = now_iso()
    return record


def serve(framework: str, device: str, proto: TextIO) -> None:
    def send(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    started = time.perf_counter()
    backend, info = hello(framework, device)
    info["startup_s"] = time.perf_counter() - started
    send(info)
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        if msg.get("type") == "stop":
            break
        if not info["present"]:
            send({"type": "result", "record": skipped(msg, info["reason"])})
            continue
        send({"type": "result", "record": run_cell(backend, msg)})


def skipped(msg: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "cell_id": msg["cell_id"],
        "key": msg["key"],
        "status": "skipped",
        "reason": reason,
        "flags": [],
        "metrics": {},
        "finished_at": now_iso(),
    }


def main(argv: list[str]) -> int:
    # Keep the protocol on a private fd; send everything else written to stdout to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    framework, device = argv[0], argv[1]
    if "--devices" in argv:
        # Inventory mode: one answer per device kind named (comma-separated), then exit.
        for kind in device.split(","):
            _, info = hello(framework, kind)
            proto.write(json.dumps({**info, "device": kind}) + "\n")
            proto.flush()
        return 0
    serve(framework, device, proto)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

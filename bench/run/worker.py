"""The worker: a child process that imports one framework and runs the cells it is sent.

Protocol (JSON lines): the runner writes ``{"type": "cell", ...}`` messages to stdin; the worker
answers on a private copy of its original stdout with ``ready`` once, then one ``result`` per
cell. The worker points fd 1 at stderr first, so whatever the framework prints (TensorFlow and
XLA log a lot, some from C++) lands in the worker log and never corrupts the protocol.

Run by the runner as ``python -m bench.run.worker FRAMEWORK DEVICE``; ``--devices`` answers one
``ready`` message and exits (used by ``bench devices``).

Multi-host: when the runner passes ``BENCH_COORDINATOR`` and friends (``bench.platform.cluster``), the
worker joins the framework's distributed runtime before it looks at any device, runs each cell
in step with the other processes, and then gathers every process's record of the cell through
the framework's own collectives, so process 0 holds all hosts' figures without a shared disk.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from bench.backends import registry
from bench.backends.replicas import BatchSplitError
from bench.finite import finite_record
from bench.platform.cluster import Cluster, ClusterError, from_env

if TYPE_CHECKING:
    from bench.backends.protocol import Backend

OOM_MARKERS = ("RESOURCE_EXHAUSTED", "out of memory", "Out of memory", "OOM when allocating")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def import_backend(framework: str) -> tuple[Backend | None, str]:
    """The framework's backend, or None and why not (not installed, or no such backend)."""
    try:
        return registry.load(framework), ""
    except registry.UnknownBackend as exc:
        return None, str(exc)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        hint = registry.spec(framework).install_hint
        return None, f"{framework} is not installed ({missing}); {hint}"


def hello(
    framework: str, device: str, cluster: Cluster | None = None
) -> tuple[Backend | None, dict[str, Any]]:
    backend, reason = import_backend(framework)
    if backend is None:
        return None, {"type": "ready", "present": False, "reason": reason, "devices": []}
    try:
        # Before any device is touched: logical CPU devices and distributed runtimes can only
        # be set up before the framework initialises its devices.
        backend.setup(device, cluster)
    except Exception as exc:
        what = "join the multi-host job" if cluster else "set up its devices"
        info = {
            "type": "ready",
            "present": False,
            "reason": f"{framework} could not {what}: {classify_error(exc)[1]}",
            "devices": [],
        }
        return None, info
    present, reason, devices = backend.probe(device)
    info = {"type": "ready", "present": present, "reason": reason, "devices": devices}
    info["version"] = backend.version()
    if cluster is not None:
        info["process_id"], info["num_processes"] = cluster.process_id, cluster.num_processes
    return backend, info


def classify_error(exc: BaseException) -> tuple[str, str]:
    text = f"{type(exc).__name__}: {exc}"
    first = next((line for line in text.splitlines() if line.strip()), text)[:300]
    if isinstance(exc, MemoryError) or any(m in text for m in OOM_MARKERS):
        return "oom", first
    return "failed", first


def run_cell(backend: Backend, msg: Mapping[str, Any]) -> dict[str, Any]:
    """The cell's full record; ``msg`` is the runner's message as sent (JSON)."""
    from bench.workloads.cell.measure import measure_cell

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
    except BatchSplitError as exc:
        # Known only here, where "all" meets the devices: not a failure of the cell.
        record["status"], record["reason"] = "skipped", str(exc)
    except Exception as exc:
        record["status"], record["reason"] = classify_error(exc)
        record["traceback"] = traceback.format_exc(limit=20)
    record["finished_at"] = now_iso()
    return finite_record(record)  # NaN/inf from a measurement: invalid, with the fields named


def gather_record(backend: Backend, cluster: Cluster, record: dict[str, Any]) -> dict[str, Any]:
    """Every process's record of this cell, through the framework's collectives; process 0
    merges them (its record, with ``hosts`` and the aggregate), the others keep their own."""
    from bench.measure.hosts import merge_hosts

    record["host"] = {"process_id": cluster.process_id, "hostname": socket.gethostname()}
    texts = backend.all_gather_text(json.dumps(record))
    if not cluster.is_primary:
        return record
    return merge_hosts([json.loads(t) for t in texts])


def serve(framework: str, device: str, proto: TextIO) -> None:
    def send(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    started = time.perf_counter()
    try:
        cluster = from_env()
    except ClusterError as exc:
        cluster, backend = None, None
        info = {"type": "ready", "present": False, "reason": str(exc), "devices": []}
    else:
        backend, info = hello(framework, device, cluster)
    info["startup_s"] = time.perf_counter() - started
    send(info)
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        if msg.get("type") == "stop":
            break
        if msg.get("type") == "probe":  # bench tune's memory probe: compile, run nothing
            send({"type": "probe", "probe": probe(backend, msg, info)})
            continue
        if not info["present"] and not _remote(msg):
            send({"type": "result", "record": skipped(msg, info["reason"])})
            continue
        record = run_cell(backend, msg)
        if cluster is not None and cluster.num_processes > 1:
            record = gather_record(backend, cluster, record)
        send({"type": "result", "record": record})
    if backend is not None:
        backend.teardown()


def probe(backend: Backend | None, msg: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """A memory probe's answer (``bench.workloads.cell.probe``); never raises."""
    if backend is None or not info["present"]:
        return {"needed": None, "limit": None, "compile_s": 0.0, "reason": info["reason"]}
    from bench.workloads.cell.probe import probe_cell

    try:
        return probe_cell(backend, msg)
    except Exception as exc:
        status, reason = classify_error(exc)
        # a compile that itself ran out of memory is an answer: it does not fit
        return {"needed": None, "limit": None, "compile_s": 0.0, "reason": reason, "status": status}


def _remote(msg: dict[str, Any]) -> bool:
    """An endpoint cell loads a server elsewhere: its framework and device are the server's,
    so it runs whether or not this worker has them (``bench.workloads.serve.cell.endpoint``)."""
    return msg["key"].get("endpoint", "in_process") != "in_process"


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

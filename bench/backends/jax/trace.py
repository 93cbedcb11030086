"""Read the op events of a ``jax.profiler.trace(..., create_perfetto_trace=True)`` folder.

The perfetto trace is Chrome trace-event JSON, gzipped
(``plugins/profile/<time>/<host>.perfetto_trace.json.gz`` or ``perfetto_trace.json.gz``), so
reading it needs no framework and no extra package. Which events are ops:

- on a GPU or TPU, the events of the device's processes (``/device:GPU:0``): its ``XLA Ops``
  line where there is one (one event per HLO instruction, as XProf's op profile reads them),
  otherwise its stream lines (kernels);
- on a CPU, the events XLA's CPU runtime tags with the HLO instruction they run (an
  ``hlo_op`` argument), on whichever threads ran them.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from bench.measure.breakdown import OpEvent

# Lines of a device process that are not ops: whole programs, steps, framework annotations.
NOT_OP_LINES = ("XLA Modules", "Steps", "Framework", "Source code", "TensorFlow", "XLA TraceMe")


def perfetto_file(folder: Path) -> Path:
    """The newest perfetto trace under ``folder`` (each trace adds a timestamped folder)."""
    found = sorted(folder.glob("plugins/profile/*/*perfetto_trace.json.gz"))
    if not found:
        raise FileNotFoundError(f"no perfetto_trace.json.gz under {folder}/plugins/profile")
    return found[-1]


def read_events(path: Path) -> tuple[list[OpEvent], str]:
    """(op events, what their lines are) from one perfetto trace file."""
    with gzip.open(path, "rt") as f:
        data = json.load(f)
    events: list[dict[str, Any]] = data["traceEvents"] if isinstance(data, dict) else data
    processes: dict[Any, str] = {}
    threads: dict[tuple[Any, Any], str] = {}
    for e in events:
        if e.get("ph") != "M":
            continue
        name = (e.get("args") or {}).get("name", "")
        if e.get("name") == "process_name":
            processes[e.get("pid")] = str(name)
        elif e.get("name") == "thread_name":
            threads[(e.get("pid"), e.get("tid"))] = str(name)
    spans = [e for e in events if e.get("ph") == "X" and "dur" in e and "ts" in e]
    devices = {
        pid for pid, name in processes.items() if name.startswith("/device:") and "CPU" not in name
    }
    if devices:
        by_pid: dict[Any, set[Any]] = {}
        for pid, tid in threads:
            if pid in devices:
                by_pid.setdefault(pid, set()).add(tid)
        chosen: set[tuple[Any, Any]] = set()
        for pid, tids in by_pid.items():
            ops_line = {t for t in tids if threads[(pid, t)] == "XLA Ops"}
            streams = {t for t in tids if not threads[(pid, t)].startswith(NOT_OP_LINES)}
            chosen |= {(pid, t) for t in (ops_line or streams)}
        kinds = sorted({processes[p].removeprefix("/device:").split(":")[0] for p in devices})
        scope = f"{'/'.join(kinds)} device lines ({'XLA Ops' if any(threads[c] == 'XLA Ops' for c in chosen) else 'streams'})"
        picked = [e for e in spans if (e.get("pid"), e.get("tid")) in chosen]
    else:
        scope = "CPU threads running XLA ops"
        picked = [e for e in spans if (e.get("args") or {}).get("hlo_op")]
    out = [
        OpEvent(
            line=f"{e.get('pid')}/{e.get('tid')}",
            op=str((e.get("args") or {}).get("hlo_op") or e.get("name", "")),
            start_us=float(e["ts"]),
            dur_us=float(e["dur"]),
        )
        for e in picked
    ]
    return out, scope

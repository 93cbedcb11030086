"""Trace a cell's step under the framework's profiler, after its timed phase.

``measure.profile: {steps: N}`` (or ``bench run --profile``) asks for it. The cell runs its
timed phase as always; then N more calls of the same compiled step run under the profiler,
each synced, with the wall clock read around them. The trace goes into the cell's own folder
of the run folder (made fresh and private: ``profiles/<cell>``, or ``<cell>.2`` on a retry), the optimized program text beside it, and the record's ``profile`` block
gets the folder (relative to the run folder) and the time breakdown read from the trace
(``bench.measure.breakdown``).

Nothing here can change the cell's timing or status: the traced calls come after the timed
ones, and a profiler that fails to start, a trace that cannot be read, a program without text
are each recorded on the ``profile`` block with the reason.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from bench.backends.workload import Workload
from bench.measure.breakdown import breakdown, hlo_ops
from bench.runfolder import PROFILES_DIR  # inside the run folder: one folder per profiled cell
from bench.safefiles import fresh_dir, make_dirs, open_for_writing


def cell_folder(cell_id: str) -> str:
    """The cell's trace folder, relative to the run folder (safe characters only)."""
    return f"{PROFILES_DIR}/{re.sub(r'[^A-Za-z0-9._=+-]', '_', cell_id)}"


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def _fresh_folder(run_dir: Path, rel: str) -> Path:
    """A new private folder for the trace at ``run_dir/rel`` (``rel.2``... when an earlier
    attempt of the cell left one): the profiler writes whatever it likes inside the folder it
    is given, so nothing there may have been planted beforehand (``bench.safefiles``)."""
    parent = make_dirs(run_dir, Path(rel).parent)
    return fresh_dir(parent, Path(rel).name)


def profile_steps(workload: Workload, calls: int, run_dir: Path, rel: str) -> dict[str, Any]:
    """Run ``calls`` more calls of the step under the profiler; the record's ``profile``."""
    per_call = workload.steps_per_call
    out: dict[str, Any] = {
        "steps": calls * per_call,
        "calls": calls,
        "trace_dir": rel,
        "tool": workload.trace_tool or "none",
    }
    try:
        folder = _fresh_folder(run_dir, rel)
    except OSError as exc:
        return {**out, "unavailable": f"profiler not started: trace folder: {_why(exc)}"}
    rel = out["trace_dir"] = f"{Path(rel).parent}/{folder.name}"
    try:
        workload.start_trace(folder)
    except Exception as exc:
        return {**out, "unavailable": f"profiler failed to start: {_why(exc)}"}
    problems: list[str] = []
    wall_s = None
    try:
        start = time.perf_counter()
        for _ in range(calls):
            workload.sync(workload.step())
        wall_s = time.perf_counter() - start
    except Exception as exc:
        problems.append(f"traced steps failed: {_why(exc)}")
    finally:
        try:
            workload.stop_trace()
        except Exception as exc:
            problems.append(f"profiler failed to stop: {_why(exc)}")
    if problems:
        return {**out, "unavailable": "; ".join(problems)}

    kinds: dict[str, str] = {}
    sources: dict[str, str] = {}
    try:
        text, name = workload.program_text()
        with open_for_writing(folder / name) as f:
            f.write(text.encode())
        out["program"] = f"{rel}/{name}"
        found = hlo_ops(text)
        kinds, sources = found.kinds, found.sources
    except Exception as exc:
        out["program_unavailable"] = _why(exc)
    try:
        events, scope = workload.trace_events(folder)
        assert wall_s is not None
        out["breakdown"] = breakdown(events, wall_s, calls * per_call, scope, kinds, sources)
    except Exception as exc:
        out["breakdown_unavailable"] = f"trace not read: {_why(exc)}"
    return out

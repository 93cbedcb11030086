"""Trace a cell's step under the framework's profiler, after its timed phase.

``measure.profile: {steps: N}`` (or ``bench run --profile``) asks for it. The cell runs its
timed phase as always; then N more calls of the same compiled step run under the profiler,
each synced, with the wall clock read around them. The trace goes into the cell's own folder
of the run folder, the optimized program text beside it, and the record's ``profile`` block
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

PROFILES_DIR = "profiles"  # inside the run folder: one folder per profiled cell


def cell_folder(cell_id: str) -> str:
    """The cell's trace folder, relative to the run folder (safe characters only)."""
    return f"{PROFILES_DIR}/{re.sub(r'[^A-Za-z0-9._=+-]', '_', cell_id)}"


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def _folder_inside(run_dir: Path, rel: str) -> Path:
    """``run_dir/rel``, made one level at a time and never through a symbolic link: a link
    planted in the run folder must not make the profiler write outside it."""
    folder = run_dir
    for part in Path(rel).parts:
        folder = folder / part
        if folder.is_symlink():
            raise OSError(f"{folder} is a symbolic link; the trace must stay in the run folder")
        folder.mkdir(exist_ok=True)
    if not folder.resolve().is_relative_to(run_dir.resolve()):
        raise OSError(f"{rel} resolves outside the run folder ({folder.resolve()})")
    return folder


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
        folder = _folder_inside(run_dir, rel)
    except OSError as exc:
        return {**out, "unavailable": f"profiler not started: trace folder: {_why(exc)}"}
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
        (folder / name).write_text(text)
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

"""What the pipeline's tasks do once their container runs: plain functions over folders.

Each task runs bench's own commands (``python -m bench run|report|recommend|gate``) in a
subprocess, exactly as a user would on one machine, and moves folders in and out of the KFP
artifact paths it is given. The KFP component wrappers (``bench.pipeline.components``) only pass
paths and values through, so everything here is tested without kfp.

A ``run`` task succeeds even when a cell failed (its record names the reason) or ``bench run``
itself died (the cells it finished are kept, and ``LOST.json`` says why the rest are missing):
a failed task would lose its artifact, with the cells that did finish. The ``summarize`` task
names what failed and what is missing (also the cells of a task that delivered nothing: its pod
preempted past its retries, never scheduled); ``check`` then fails the pipeline for those, or
for a gate regression.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

import yaml

from bench.runfolder import FAILED

# bench run's exit codes that still leave a complete run folder: all ok, a cell failed, nothing
# could run (every cell skipped, e.g. the device is absent: recorded, with the reason).
RUN_WROTE_FOLDER = (0, 1, 3)
TAIL_LINES = 40
LOST = "LOST.json"  # in a run artifact: why bench run did not finish its cells


class TaskError(RuntimeError):
    """A task could not do its job; the message is what the KFP UI shows."""


def bench(*args: str) -> tuple[int, str]:
    """``bench ARGS`` with this interpreter: (exit code, the last lines of its output). The
    output goes to the task's log line by line as it comes: a sweep runs for hours."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            tail.append(line.rstrip("\n"))
    return proc.returncode, "\n".join(tail)


def run_cells(
    scenario_text: str,
    scenario_file: str,
    overrides: list[str],
    cells: list[str],
    out_dir: str,
) -> dict[str, Any]:
    """``bench run`` on ``cells`` of the scenario; the run folder's files end up in ``out_dir``.

    The scenario travels as text (the pipeline was compiled elsewhere) and is written under its
    own file name, so run.json names it as the user does. When ``bench run`` dies (killed, out
    of memory) the cells it finished are kept, as a run folder keeps them, and ``LOST`` in
    ``out_dir`` says why the rest are missing: the task still succeeds, because KFP backends do
    not reliably hand a failed task's artifacts to the tasks after it.
    """
    work = Path(tempfile.mkdtemp(prefix="bench-task-"))
    scenario = work / Path(scenario_file).name
    scenario.write_text(scenario_text)
    results = work / "results"
    sets = [a for o in overrides for a in ("--set", o)]
    code, tail = bench(
        "run", str(scenario), "--only", ",".join(cells), "--results-dir", str(results), *sets
    )
    folders = [p for p in results.iterdir() if p.is_dir()] if results.is_dir() else []
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    if len(folders) == 1:
        shutil.copytree(folders[0], out, symlinks=True)  # a link is copied, never followed
    else:
        out.mkdir(parents=True)
    lost = ""
    if code not in RUN_WROTE_FOLDER or len(folders) != 1:
        how = f"killed by signal {-code}" if code < 0 else f"exited {code}"
        lost = f"bench run {how} with {len(folders)} run folder(s)"
        (out / LOST).write_text(json.dumps({"reason": lost, "log_tail": tail}))
        print(f"task lost: {lost}", flush=True)
    statuses = _statuses(out) if (out / "run.json").is_file() else {}
    shutil.rmtree(work, ignore_errors=True)
    return {"exit_code": code, "cells": len(statuses), "lost": lost}


def _statuses(run_dir: Path) -> dict[str, str]:
    from bench.runfolder import load_run

    run = load_run(run_dir)
    return {cell_id: record["status"] for cell_id, record in run.cells.items()}


def summarize(
    plan: list[dict[str, Any]],
    found: dict[str, str | None],
    objective: str,
    report_path: str,
    deploy_path: str,
    runs_dir: str,
) -> dict[str, Any]:
    """Gather every task's run folder into ``runs_dir``, write the HTML report and deploy.yaml
    from them, and say per task what came back: the summary ``check`` and the metrics read.

    ``plan`` is the compiled plan (task name, cells, machine); ``found`` maps a task name to its
    run folder, or None where the task delivered none.
    """
    runs = Path(runs_dir)
    runs.mkdir(parents=True, exist_ok=True)
    tasks: list[dict[str, Any]] = []
    present: list[Path] = []
    for entry in plan:
        name = entry["task"]
        folder = found.get(name)
        statuses: dict[str, str] = {}
        problem = ""
        if folder is None or not Path(folder).is_dir():
            problem = "the task delivered no run folder (it failed, or never ran)"
        elif (Path(folder) / LOST).is_file():
            problem = json.loads((Path(folder) / LOST).read_text())["reason"]
        if folder is not None and (Path(folder) / "run.json").is_file():
            try:
                statuses = _statuses(Path(folder))
            except Exception as exc:  # a damaged folder is reported, not fatal to the others
                problem = f"its run folder cannot be read: {exc}"
            else:
                target = runs / name
                if target.exists():
                    shutil.rmtree(target)
                shutil.copytree(folder, target, symlinks=True)  # links stay links
                present.append(target)
        planned = list(entry["cells"])
        tasks.append(
            {
                "task": name,
                "machine": entry.get("machine", {}),
                "planned": len(planned),
                "missing": [c for c in planned if c not in statuses],
                "failed": sorted(c for c, s in statuses.items() if s in FAILED),
                "statuses": statuses,
                "problem": problem,
            }
        )
    summary: dict[str, Any] = {
        "tasks": tasks,
        "runs": [p.name for p in present],
        "missing": [f"{t['task']}/{c}" for t in tasks for c in t["missing"]],
        "failed": [f"{t['task']}/{c}" for t in tasks for c in t["failed"]],
        "counts": _counts(tasks),
        "headline": {},
    }
    for line in describe(summary):
        print(line, flush=True)
    if not present:
        Path(report_path).write_text(_empty_report(summary))
        Path(deploy_path).write_text("# nothing to deploy: no task delivered a run folder\n")
        return summary
    folders = [str(p) for p in present]
    code, tail = bench("report", *folders, "-o", report_path, "--objective", objective)
    if code != 0:
        raise TaskError(f"bench report exited {code}:\n{tail}")
    code, tail = bench("recommend", *folders, "--objective", objective, "--out", deploy_path)
    if code == 2:
        raise TaskError(f"bench recommend exited 2:\n{tail}")
    if not Path(deploy_path).is_file():
        Path(deploy_path).write_text(
            f"# nothing to deploy: no cell of these runs has a result for '{objective}'\n"
        )
    summary["headline"] = headline(Path(deploy_path).read_text())
    return summary


def _counts(tasks: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"planned": 0, "missing": 0, "ok": 0, "failed": 0, "skipped": 0}
    for t in tasks:
        counts["planned"] += t["planned"]
        counts["missing"] += len(t["missing"])
        counts["failed"] += len(t["failed"])
        counts["ok"] += sum(1 for s in t["statuses"].values() if s == "ok")
        counts["skipped"] += sum(1 for s in t["statuses"].values() if s == "skipped")
    return counts


def describe(summary: dict[str, Any]) -> list[str]:
    """What came back, one line per task, then what is missing: the lines the logs show."""
    lines = []
    for t in summary["tasks"]:
        got = len(t["statuses"])
        what = f"{got}/{t['planned']} cells recorded"
        if t["failed"]:
            what += f", {len(t['failed'])} failed: {', '.join(t['failed'])}"
        if t["missing"]:
            what += f"; missing: {', '.join(t['missing'])}"
        if t["problem"]:
            what += f" ({t['problem']})"
        lines.append(f"task {t['task']}: {what}")
    if summary["missing"]:
        lines.append(f"missing {len(summary['missing'])} cell(s): {', '.join(summary['missing'])}")
    return lines


def headline(deploy_yaml: str) -> dict[str, float]:
    """The numbers measured for each recommended configuration, as flat KFP metric names."""
    doc = yaml.safe_load(deploy_yaml) or {}
    found: dict[str, float] = {}
    for d in doc.get("deployments") or []:
        # Metric names are plain words: a model reference such as "pkg.mod:factory" is not.
        model = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(d.get("model")))
        prefix = f"{model}.{d.get('workload')}"
        for name, value in (d.get("expected") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                found[f"{prefix}.{name}"] = float(value)
    return found


def _empty_report(summary: dict[str, Any]) -> str:
    import html

    lines = "".join(f"<li>{html.escape(line)}</li>" for line in describe(summary))
    return (
        "<!doctype html><meta charset=utf-8><title>bench: no results</title>"
        f"<h1>No task delivered a run folder</h1><ul>{lines}</ul>"
    )


def baseline_for(baseline: str, task: str) -> str | None:
    """What task ``task``'s run is gated against: with a folder of run folders named by task
    (an earlier pipeline's ``runs`` artifact) the one of the same task, so each machine kind is
    held to itself; with a baseline file or one run folder, that. None: no baseline for it."""
    base = Path(baseline)
    if base.is_dir() and not (base / "run.json").is_file():
        return str(base / task) if (base / task).is_dir() else None
    return baseline


def check(summary_path: str, runs_dir: str, baseline: str | None, gate_args: list[str]) -> None:
    """Fail (TaskError) when a cell failed or is missing, or when ``bench gate`` finds a
    regression of a run against its baseline; print the verdicts either way."""
    summary = json.loads(Path(summary_path).read_text())
    problems = []
    if summary["missing"]:
        problems.append(
            f"{len(summary['missing'])} cell(s) missing: {', '.join(summary['missing'])}"
        )
    if summary["failed"]:
        problems.append(f"{len(summary['failed'])} cell(s) failed: {', '.join(summary['failed'])}")
    gated = 0
    if baseline:
        # One gate per run: two machine kinds share cell ids, and pooling them would mix
        # machines (and make the gate's environment check call every verdict advisory).
        for name in summary["runs"]:
            base = baseline_for(baseline, name)
            if base is None:
                print(f"note: {baseline} has no run of task {name}: not gated", flush=True)
                continue
            gated += 1
            code, _ = bench(
                "gate", "--baseline", base, "--candidate", str(Path(runs_dir) / name), *gate_args
            )
            if code == 1:
                problems.append(f"bench gate: {name} regressed against {base}")
            elif code != 0:
                problems.append(f"bench gate exited {code} on {name} against {base}")
    if problems:
        raise TaskError("; ".join(problems))
    gate = f", {gated} run(s) passed the gate" if baseline else ""
    print(f"every planned cell was recorded and none failed{gate}", flush=True)

"""Run folders on disk: ``run.json`` (what ran, where, when) and ``cells.jsonl`` (one record per
cell, appended and flushed as each cell finishes, so a killed run keeps its finished cells).

``run.json`` is replaced atomically (write to a temporary file, then rename). Readers refuse a
``schema_version`` they do not know, saying which version wrote the run.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
CELLS_FILE = "cells.jsonl"
# Statuses a cell record can hold; "ok" is the only one with trustworthy numbers.
STATUSES = ("ok", "skipped", "failed", "oom", "timeout", "invalid")
FAILED = ("failed", "oom", "timeout", "invalid")


class ResultsError(Exception):
    """A folder that is not a readable run (missing files, bad JSON, unknown schema)."""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id(scenario_name: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{scenario_name}-{secrets.token_hex(2)}"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False, allow_nan=False)  # strict JSON
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class Run:
    path: Path
    meta: dict[str, Any]
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell_id -> latest record
    warnings: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.meta["run_id"]


class RunWriter:
    """Owns one run folder while ``bench run`` writes it."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = path
        self.meta = meta

    @classmethod
    def create(cls, results_dir: Path, meta: dict[str, Any]) -> RunWriter:
        run_id = new_run_id(meta["scenario"]["name"])
        path = Path(results_dir) / run_id
        path.mkdir(parents=True, exist_ok=False)
        writer = cls(path, {"schema_version": SCHEMA_VERSION, "run_id": run_id, **meta})
        writer.update(status="running", started_at=utc_now())
        (path / CELLS_FILE).touch()
        return writer

    @classmethod
    def reopen(cls, run: Run) -> RunWriter:
        writer = cls(run.path, run.meta)
        resumes = [*run.meta.get("resumed_at", []), utc_now()]
        writer.update(status="running", resumed_at=resumes, finished_at=None)
        return writer

    def update(self, **fields: Any) -> None:
        self.meta.update(fields)
        write_json_atomic(self.path / RUN_FILE, self.meta)

    def append_cell(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, allow_nan=False)  # NaN is not JSON: see measure.finite
        with open(self.path / CELLS_FILE, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def finish(self, status: str) -> None:
        self.update(status=status, finished_at=utc_now())


def load_run(path: str | Path) -> Run:
    path = Path(path)
    run_file = path / RUN_FILE
    if not run_file.is_file():
        raise ResultsError(f"{path}: not a bench run folder (no {RUN_FILE})")
    try:
        meta = json.loads(run_file.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{run_file}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(
            f"{run_file}: written with results schema_version {version!r} (bench "
            f"{meta.get('bench_version', 'unknown')}); this bench reads version {SCHEMA_VERSION}"
        )
    run = Run(path, meta)
    cells_file = path / CELLS_FILE
    if cells_file.is_file():
        lines = cells_file.read_text().split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                if number == len(lines) and not line.endswith("}"):
                    # The writer was killed mid-line: every earlier record is intact.
                    run.warnings.append(f"{cells_file}:{number}: truncated last record ignored")
                    continue
                raise ResultsError(f"{cells_file}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(record, dict) or "cell_id" not in record:
                raise ResultsError(f"{cells_file}:{number}: expected a cell record with cell_id")
            run.cells[record["cell_id"]] = record
    return run


def list_runs(results_dir: str | Path) -> list[Run | ResultsError]:
    """Every run folder under ``results_dir``, oldest first; unreadable ones as errors."""
    found: list[Run | ResultsError] = []
    root = Path(results_dir)
    if not root.is_dir():
        return found
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if not (child / RUN_FILE).exists():
            continue
        try:
            found.append(load_run(child))
        except ResultsError as exc:
            found.append(exc)
    return found

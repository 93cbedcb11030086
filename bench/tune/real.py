"""The real measurer: bench's own runner and workers, into a normal run folder.

Every measurement is a ``bench run`` of some cells with a brief run length, appended to one run
folder as it finishes, so ``bench compare``, ``report`` and ``recommend`` read a tune like any
run. Each call starts a fresh worker per (framework, device), so a cell measured in two rounds
was measured in two processes. The finalists' merged records (``merge_repeats``: every process
pooled, each one's figures under ``repeats``) are appended last and win, as in ``bench run``
with ``measure.repeats``. Probes go to a worker of the cell's framework and device that only
compiles (``bench.workloads.cell.probe``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import __version__
from bench.backends import registry
from bench.measure.timing import RunLength
from bench.platform.environment import collect
from bench.read.runset import RunSet, load_runs
from bench.run.runner import (
    STARTUP_TIMEOUT_S,
    Runner,
    WorkerDied,
    WorkerProcess,
    cell_message,
    time_reference_kernel,
    worker_env,
)
from bench.run.scenario import Cell, LoadedScenario
from bench.runfolder import WORKER_LOG, RunWriter
from bench.tune.memory import Probe
from bench.tune.space import TuneCell


def brief(loaded: LoadedScenario, rule: RunLength) -> LoadedScenario:
    """The scenario with the brief run length (and one process per measurement)."""
    measure = loaded.scenario.measure.model_copy(
        update={
            "warmup_steps": rule.warmup_steps,
            "min_steps": rule.min_steps,
            "min_seconds": rule.min_seconds,
            "max_seconds": rule.max_seconds,
            "repeats": 1,
        }
    )
    scenario = loaded.scenario.model_copy(update={"measure": measure})
    return LoadedScenario(
        loaded.path, loaded.text, loaded.sha256, scenario, loaded.overrides,
        loaded.model_args, loaded.cells,
    )  # fmt: skip


class RealMeasurer:
    def __init__(
        self,
        loaded: LoadedScenario,
        results_dir: Path,
        on_event: Callable[..., None],
        tune: dict[str, Any],
        python: str = sys.executable,
    ):
        self.loaded, self.python, self.on_event = loaded, python, on_event
        self.cells: dict[str, Cell] = {c.cell_id: c for c in loaded.cells}
        meta = {
            "bench_version": __version__,
            "command": sys.argv,
            "scenario": {
                "name": loaded.scenario.name,
                "path": loaded.path,
                "sha256": loaded.sha256,
                "overrides": list(loaded.overrides),
                "text": loaded.text,
                "only": [],  # a resume runs nothing: a tune is not resumed cell by cell
            },
            "cells_planned": [],
            "environment": collect(
                Path(loaded.path).resolve().parent,
                [p for name in registry.names() for p in registry.spec(name).packages],
            ),
            "multihost": None,
            "tune": tune,
        }
        self.writer = RunWriter.create(results_dir, meta)
        self.runner = Runner(loaded, self.writer, on_event, python)
        self.probers: dict[tuple[str, str], WorkerProcess] = {}
        time_reference_kernel(self.writer, "start")

    @property
    def path(self) -> Path:
        return self.writer.path

    def _prober(self, cell: Cell) -> WorkerProcess | None:
        group = cell.group
        worker = self.probers.get(group)
        if worker is None:
            log = self.writer.path / WORKER_LOG.format(framework=group[0], device=group[1])
            worker = WorkerProcess(group[0], group[1], log, self.python, worker_env(*group))
            try:
                ready = worker.receive(STARTUP_TIMEOUT_S)
            except (TimeoutError, WorkerDied):
                worker.close()
                return None
            if not ready.get("present"):
                worker.stop()
                worker.close()
                return None
            self.probers[group] = worker
        return worker

    def probe(self, cell: TuneCell) -> Probe:
        started = time.monotonic()
        planned = self.cells[cell.cell_id]
        worker = self._prober(planned)
        if worker is None:
            return Probe(None, None, time.monotonic() - started, "no worker for the probe")
        message = {**cell_message(self.loaded, planned, None, self.writer.path).to_dict()}
        message["type"] = "probe"
        try:
            worker.send(message)
            answer = worker.receive(self.loaded.scenario.measure.timeout_s)["probe"]
        except (TimeoutError, WorkerDied):
            worker.close()
            self.probers.pop(planned.group, None)
            return Probe(None, None, time.monotonic() - started, "the probe's worker was lost")
        seconds = time.monotonic() - started
        if answer.get("status") == "oom":  # the compile itself ran out of memory
            return Probe(1.0, 0.0, seconds, answer.get("reason", ""))
        return Probe(answer.get("needed"), answer.get("limit"), seconds, answer.get("reason", ""))

    def _close_probers(self) -> None:
        for worker in self.probers.values():
            worker.stop()
            worker.close()
        self.probers.clear()

    def measure(
        self, cells: Sequence[TuneCell], rule: RunLength
    ) -> list[tuple[dict[str, Any], float]]:
        # An accelerator's probing worker holds device memory (JAX preallocates it): none stays
        # beside a measurement there. A CPU's is kept: starting one costs seconds.
        for group in [g for g in self.probers if g[1] != "cpu"]:
            self.probers.pop(group).close()
        self.runner.loaded = brief(self.loaded, rule)
        planned = [self.cells[c.cell_id] for c in cells]
        started = time.monotonic()
        self.runner.run(planned)
        share = (time.monotonic() - started) / max(1, len(planned))
        return [(self.runner.recorded[c.cell_id], share) for c in planned]

    def settle(self, records: Sequence[dict[str, Any]]) -> RunSet:
        self._close_probers()
        for record in records:
            self.writer.append_cell(record)
        final = {r["cell_id"] for r in records}
        self.writer.update(cells_planned=sorted(self.runner.recorded))
        runset = load_runs([self.writer.path])
        runset.cells = [c for c in runset.cells if c.cell_id in final]
        return runset

    def close(self, status: str) -> None:
        self._close_probers()
        time_reference_kernel(self.writer, "end")
        self.writer.finish(status)
        self.writer.close()

"""The real measurer: bench's own runner and workers, into a normal run folder.

Every measurement goes through the runner's own worker protocol with a brief run length and is
appended to one run folder as it finishes, so ``bench compare``, ``report`` and ``recommend``
read a tune like any run. The search keeps one worker per (framework, device), as ``bench run``
does (starting a worker costs seconds: more than a brief measurement of a small model); each
round of the race starts fresh ones, so a cell measured in two rounds was measured in two
processes. Probes go to the same worker, which compiles the cell and runs nothing
(``bench.workloads.cell.probe``). The finalists' merged records (``merge_repeats``: every
process pooled, each one's figures under ``repeats``) are appended last and win, as in
``bench run`` with ``measure.repeats``.
"""

from __future__ import annotations

import shutil
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
    Runner,
    WorkerDied,
    WorkerProcess,
    cell_message,
    cpu_devices_for,
    time_reference_kernel,
    worker_env,
)
from bench.run.scenario import Cell, LoadedScenario
from bench.runfolder import RunWriter
from bench.tune.memory import Probe
from bench.tune.space import TuneCell

# The tune's persistent compilation cache, in its run folder while it runs: a program compiled
# once (a memory probe, a cell that differs from another only in its input pipeline, a cell
# measured again in a round's fresh worker) is loaded, not compiled, the next time.
COMPILE_CACHE = "compile_cache"


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
        self.workers: dict[tuple[str, str], WorkerProcess] = {}
        time_reference_kernel(self.writer, "start")

    @property
    def path(self) -> Path:
        return self.writer.path

    @property
    def compile_cache(self) -> Path:
        return self.writer.path / COMPILE_CACHE

    def _env(self, group: tuple[str, str]) -> dict[str, str]:
        same = [c for c in self.cells.values() if c.group == group]
        env = worker_env(group[0], group[1], cpu_devices_for(same))
        # Every program is cached, however quick to compile or small (JAX's defaults skip
        # those under 1 s): the tune's cells are brief, and most of their time is compiling.
        env.update(
            JAX_COMPILATION_CACHE_DIR=str(self.compile_cache),
            JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
            JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        )
        return env

    def _worker(self, cell: Cell) -> WorkerProcess | None:
        """The group's kept worker, started on first need (None: it did not start, and the
        cells asked of it are recorded as failed with the reason)."""
        worker = self.workers.get(cell.group)
        if worker is None:
            pending = [cell]
            worker = self.runner.start_worker(
                *cell.group, pending, self.runner.finish, self._env(cell.group)
            )
            if worker is None:
                return None
            self.workers[cell.group] = worker
        return worker

    def _drop(self, group: tuple[str, str], stop: bool = True) -> None:
        worker = self.workers.pop(group, None)
        if worker is not None:
            if stop:
                worker.stop()
            worker.close()

    def probe(self, cell: TuneCell) -> Probe:
        started = time.monotonic()
        planned = self.cells[cell.cell_id]
        worker = self._worker(planned)
        if worker is None:
            return Probe(None, None, time.monotonic() - started, "the worker did not start")
        message = cell_message(self.loaded, planned, None, self.writer.path).to_dict()
        message["type"] = "probe"
        try:
            worker.send(message)
            answer = worker.receive(self.loaded.scenario.measure.timeout_s)["probe"]
        except (TimeoutError, WorkerDied):
            self._drop(planned.group, stop=False)
            return Probe(None, None, time.monotonic() - started, "the probe's worker was lost")
        seconds = time.monotonic() - started
        if answer.get("status") == "oom":  # the compile itself ran out of memory
            return Probe(1.0, 0.0, seconds, answer.get("reason", ""))
        return Probe(
            answer.get("needed"),
            answer.get("limit"),
            seconds,
            answer.get("reason", ""),
            cached=bool(answer.get("cached")),
        )

    def measure(
        self, cells: Sequence[TuneCell], rule: RunLength, fresh: bool = False
    ) -> list[tuple[dict[str, Any], float]]:
        """Each cell in its group's kept worker; ``fresh``: in new workers (a round), so a cell
        measured again is measured in another process."""
        self.runner.loaded = brief(self.loaded, rule)
        if fresh:
            for group in list(self.workers):
                self._drop(group)
        found = []
        for cell in cells:
            planned = self.cells[cell.cell_id]
            started = time.monotonic()
            worker = self._worker(planned)
            if worker is not None and not self.runner.feed(worker, [planned], self.runner.finish):
                self._drop(planned.group, stop=False)  # lost: its cell says why
            found.append((self.runner.recorded[cell.cell_id], time.monotonic() - started))
        return found

    def settle(self, records: Sequence[dict[str, Any]]) -> RunSet:
        for group in list(self.workers):
            self._drop(group)
        for record in records:
            self.writer.append_cell(record)
        final = {r["cell_id"] for r in records}
        self.writer.update(cells_planned=sorted(self.runner.recorded))
        runset = load_runs([self.writer.path])
        runset.cells = [c for c in runset.cells if c.cell_id in final]
        return runset

    def close(self, status: str) -> None:
        for group in list(self.workers):
            self._drop(group)
        # the programs are the device's, large, and of no use once the tune is over
        shutil.rmtree(self.compile_cache, ignore_errors=True)
        time_reference_kernel(self.writer, "end")
        self.writer.finish(status)
        self.writer.close()

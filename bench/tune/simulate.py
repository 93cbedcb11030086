"""Simulated grids and a simulated measurer: ``bench tune``'s decisions on a known truth.

A grid has the shapes real sweeps show (``grid``): throughput rises with the batch and falls
past a size that no longer fits the caches; several steps per call pay off where a step is
short next to the dispatch; a host input pipeline caps throughput at large batches (and
``numpy`` and ``synthetic`` cells tie exactly where compute is the bottleneck); bfloat16 and
float16 are fast or slow by device; memory grows with the batch and its precision and rules
out the largest float32 batches; some grids carry a p99 limit that binds.

The measurer draws each step's time with 3% noise (log-normal) around the truth, a per-process
offset of 1% (what a rerun changes) and a share of slow steps that make the cell's tail, and
times the draws with bench's own ``Timer`` on a simulated clock, so a measurement stops by the
scenario's run-length rule as a real one does. A record's statistics are those of its own
samples, as a real record's are (a p99 of a few dozen steps is as rough as it is on a device);
the truth is the step-time distribution's own median and p99. Its probes return the truth's
memory and cost one compile. A program compiled once in the tune (a probe, or a measurement of
a cell that differs only in host axes such as the input pipeline) costs ``CACHE_HIT_SHARE`` of
its compile after that, as the real tune's persistent compilation cache does
(``bench.tune.real``). Nothing here decides anything: the decisions are
``bench.tune.search``'s.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure.stats import summarize
from bench.measure.timing import RunLength, Timer
from bench.read.constraints import Constraint, parse
from bench.read.runset import CellView, Host, RunSet, read_fields
from bench.runfolder import Run
from bench.tune.budget import full_cell_s
from bench.tune.memory import HOST_AXES, Probe
from bench.tune.space import TuneCell

STEP_NOISE = 0.03  # per-step relative noise (the 3%)
PROCESS_NOISE = 0.01  # per-process offset: a rerun's change
# A step is slow with this probability, by the cell's tail factor: the p99 of a step lies among
# the slow steps (what a host's interrupts and collections add), so a brief measurement's p99 is
# rough and a long one's settles, as on a device.
SLOW_SHARE = 0.05
# A program already in the tune's compilation cache costs this share of its compile: tracing and
# lowering still run to find its cache key, and loading it is not free (on this 2-core VM a
# small JAX MLP's cached compile took 0.3x its first; a large program's far less).
CACHE_HIT_SHARE = 0.3
FULL_RULE = RunLength(warmup_steps=5, min_steps=20, min_seconds=5.0, max_seconds=60.0)
BATCHES = (8, 16, 32, 64, 128, 256, 512, 1024)
PRECISIONS = ("float32", "bfloat16", "float16")
STEPS_PER_CALL = (1, 2, 4, 8)
INPUTS = ("synthetic", "numpy", "tfdata")
DEVICES = ("gpu", "tpu")


@dataclass(frozen=True)
class Truth:
    step_s: float  # per step, before the noise and the slow steps
    tail: float  # a slow step's factor
    compile_s: float
    memory: float  # bytes of the compiled program
    price: float  # USD per device-hour


@dataclass
class Grid:
    cells: list[TuneCell]
    truth: dict[str, Truth]
    limit: float
    constraints: list[Constraint] = field(default_factory=list)
    objective: str = "throughput"

    def fits(self, cell_id: str) -> bool:
        return self.truth[cell_id].memory <= self.limit

    def value(self, cell_id: str) -> float:
        """The true objective (throughput, or cost per 1M examples)."""
        t = self.truth[cell_id]
        rate = int(self._key(cell_id)["batch_size"]) / (t.step_s * shape(t.tail)[0])
        if self.objective == "cost":
            return t.price / 3600.0 / rate * 1e6
        return rate

    def _key(self, cell_id: str) -> Any:
        return next(c.key for c in self.cells if c.cell_id == cell_id)

    def p99_ms(self, cell_id: str) -> float:
        t = self.truth[cell_id]
        return t.step_s * shape(t.tail)[1] * 1e3

    def feasible(self, cell_id: str) -> bool:
        if not self.fits(cell_id):
            return False
        return all(self._holds(k, cell_id) for k in self.constraints)

    def _holds(self, constraint: Constraint, cell_id: str) -> bool:
        assert constraint.field == "p99_ms" and constraint.number is not None
        return self.p99_ms(cell_id) <= constraint.number

    def ranking(self) -> list[str]:
        """Feasible cells, truly best first."""
        ids = [c.cell_id for c in self.cells if self.feasible(c.cell_id)]
        sign = -1.0 if self.objective == "throughput" else 1.0
        return sorted(ids, key=lambda i: sign * self.value(i))

    def full_s(self) -> float:
        """The device time ``bench run`` of the whole grid takes (an oom cell: its compile)."""
        total = 0.0
        for cell in self.cells:
            t = self.truth[cell.cell_id]
            call = t.step_s * int(cell.key["steps_per_call"])
            fits = self.fits(cell.cell_id)
            total += full_cell_s(t.compile_s, call, FULL_RULE) if fits else t.compile_s
        return total


@functools.cache
def shape(tail: float) -> tuple[float, float]:
    """The median and p99 of a step over its base time, for a cell with this tail: the
    distribution's own (a million draws, fixed seed), not any measurement's."""
    draws = _steps(np.random.default_rng(0), 1_000_000, tail)
    return float(np.median(draws)), float(np.percentile(draws, 99))


def _steps(rng: np.random.Generator, n: int, tail: float) -> np.ndarray:
    """``n`` step times over the base time: 3% log-normal noise, a share of them slow."""
    draws = np.exp(rng.normal(0.0, STEP_NOISE, n))
    return np.where(rng.random(n) < SLOW_SHARE, draws * tail, draws)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def grid(seed: int, *, objective: str = "throughput", constraint: bool | None = None) -> Grid:
    """A 576-cell grid (batch 8 x precision 3 x steps per call 4 x input 3 x device 2)."""
    rng = np.random.default_rng(seed)
    per_example = _log_uniform(rng, 2e-5, 4e-4)  # s per example at full efficiency
    dev: dict[str, dict[str, float]] = {}
    for device in DEVICES:
        dev[device] = {
            "speed": _log_uniform(rng, 0.5, 2.0),
            "half": _log_uniform(rng, 8, 128),  # the batch at half efficiency
            "fall": float(rng.choice([128, 256, 512, 1024, 2048])),
            "slope": rng.uniform(0.05, 0.35),
            "dispatch": _log_uniform(rng, 2e-4, 4e-3),
            "compile": _log_uniform(rng, 3.0, 30.0),
            "tail": rng.uniform(1.05, 1.4),
            "price": {"gpu": 3.0, "tpu": 4.5}[device] * rng.uniform(0.7, 1.3),
        }
    bf16 = {"gpu": rng.uniform(1.3, 2.2), "tpu": rng.uniform(1.5, 2.5)}
    fp16 = {"gpu": bf16["gpu"] * rng.uniform(0.9, 1.1), "tpu": rng.uniform(0.6, 1.0)}
    speedup = {"float32": {"gpu": 1.0, "tpu": 1.0}, "bfloat16": bf16, "float16": fp16}
    feed = {"numpy": _log_uniform(rng, 5e-6, 2e-4), "tfdata": _log_uniform(rng, 2e-6, 8e-5)}
    bytes_per_example = _log_uniform(rng, 2e5, 4e7)
    fixed_bytes = _log_uniform(rng, 1e8, 2e9)
    cells, truth = [], {}
    for device in DEVICES:
        d = dev[device]
        for precision in PRECISIONS:
            for batch in BATCHES:
                eff = batch / (batch + d["half"])
                fall = 1.0 + d["slope"] * max(0.0, math.log2(batch / d["fall"]))
                compute = per_example * batch / eff * fall / d["speed"] / speedup[precision][device]
                for spc in STEPS_PER_CALL:
                    step = compute + d["dispatch"] / spc + 1e-5 * math.log2(spc)
                    for source in INPUTS:
                        cost = step if source == "synthetic" else max(step, feed[source] * batch)
                        cost = max(cost, 2e-3 / spc)  # no step under 2 ms a call
                        key = {
                            "model": "sim",
                            "workload": "train",
                            "framework": "jax",
                            "device": device,
                            "batch_size": batch,
                            "precision": precision,
                            "steps_per_call": spc,
                            "input": source,
                        }
                        cell_id = f"{device}-{precision}-b{batch}-k{spc}-{source}"
                        cells.append(TuneCell(cell_id, key))
                        width = 2 if precision != "float32" else 4
                        truth[cell_id] = Truth(
                            step_s=cost,
                            tail=d["tail"] * (1.15 if source == "tfdata" else 1.0),
                            compile_s=d["compile"] * (1 + 0.25 * math.log2(spc)),
                            memory=fixed_bytes
                            + bytes_per_example * batch * width / 4 * (1 + 0.05 * math.log2(spc)),
                            price=d["price"],
                        )
    # The device holds the largest float32 batch in only some grids.
    top = fixed_bytes + bytes_per_example * BATCHES[-1]
    smallest = fixed_bytes + bytes_per_example * 64
    limit = max(top * rng.choice([0.3, 0.6, 0.9, 1.2]), smallest * 1.01)
    made = Grid(cells, truth, limit, objective=objective)
    if constraint if constraint is not None else rng.random() < 0.5:
        p99 = sorted(made.p99_ms(c.cell_id) for c in cells if made.fits(c.cell_id))
        limit_ms = p99[int(len(p99) * rng.uniform(0.3, 0.7))] * 1.013  # between cells
        made.constraints = [parse(f"p99_ms<={limit_ms:.4g}")]
    return made


class SimMeasurer:
    """Measures a ``Grid`` with noise; counts what a real device would have spent."""

    def __init__(self, grid: Grid, seed: int):
        self.grid = grid
        self.rng = np.random.default_rng(seed)
        self.ooms = 0
        self.host = Host("sim", "sim", "simulated", ())
        self.compiled: set[tuple[tuple[str, str], ...]] = set()  # the cache's programs

    def _compile(self, cell: TuneCell) -> tuple[float, bool]:
        """What compiling ``cell``'s program costs now, and whether the cache held it."""
        program = tuple((a, str(v)) for a, v in sorted(cell.key.items()) if a not in HOST_AXES)
        compile_s = self.grid.truth[cell.cell_id].compile_s
        if program in self.compiled:
            return compile_s * CACHE_HIT_SHARE, True
        self.compiled.add(program)
        return compile_s, False

    def probe(self, cell: TuneCell) -> Probe:
        t = self.grid.truth[cell.cell_id]
        compile_s, cached = self._compile(cell)
        return Probe(t.memory, self.grid.limit, compile_s, cached=cached)

    def _record(self, cell: TuneCell, rule: RunLength) -> tuple[dict[str, Any], float]:
        t = self.grid.truth[cell.cell_id]
        spc = int(cell.key["steps_per_call"])
        compile_s, cached = self._compile(cell)
        if not self.grid.fits(cell.cell_id):
            self.ooms += 1
            record = {"cell_id": cell.cell_id, "key": dict(cell.key), "status": "oom",
                      "reason": "RESOURCE_EXHAUSTED (simulated)", "flags": [], "metrics": {}}  # fmt: skip
            return record, compile_s
        offset = math.exp(self.rng.normal(0.0, PROCESS_NOISE))
        now = [0.0]

        def step() -> None:
            draw = _steps(self.rng, 1, t.tail)[0]
            now[0] += t.step_s * offset * float(draw) * spc

        timing = Timer(rule, clock=lambda: now[0]).run(step, lambda _: None)
        times = np.array(timing.step_times_s) / spc
        # few bootstrap draws: the race reads samples, and the answer's record is re-merged
        stats = summarize(times.tolist(), n_boot=50)
        median = float(stats["median"])
        rate = int(cell.key["batch_size"]) / median
        metrics = {
            "step_time_s": {"unit": "s", "method": "simulated", **stats},
            "examples_per_s": {"value": rate, "unit": "examples/s", "method": "simulated"},
            "compile_s": {
                "value": compile_s, "unit": "s", "method": "simulated", "cached": cached,
            },
            "device_memory_bytes": {"value": t.memory, "unit": "bytes", "method": "simulated"},
            "price_per_hour_usd": {"value": t.price, "unit": "USD/h", "method": "simulated"},
            "cost_per_million_examples_usd": {
                "value": t.price / 3600.0 / rate * 1e6, "unit": "USD/1M examples",
                "method": "simulated",
            },
        }  # fmt: skip
        record = {
            "cell_id": cell.cell_id,
            "key": dict(cell.key),
            "status": "ok",
            "reason": "",
            "flags": [],
            "metrics": metrics,
            "samples": {"step_time_s": times.tolist(), "warmup_s": timing.warmup_s},
        }
        spent = compile_s + timing.first_step_s + sum(timing.warmup_s) + float(times.sum() * spc)
        return record, spent

    def measure(
        self, cells: Sequence[TuneCell], rule: RunLength, fresh: bool = False
    ) -> list[tuple[dict[str, Any], float]]:
        return [self._record(c, rule) for c in cells]

    def settle(self, records: Sequence[dict[str, Any]]) -> RunSet:
        meta = {"run_id": "sim", "started_at": "2026-01-01T00:00:00Z"}
        run = Run(Path("sim"), meta, {r["cell_id"]: r for r in records})
        cells = [
            CellView(
                0,
                "sim",
                self.host,
                r["cell_id"],
                r["key"],
                r["status"],
                "",
                (),
                r,
                read_fields(r, self.host, "sim"),
            )
            for r in records
        ]
        return RunSet([run], [self.host], cells)

"""What the gate compares: one side (baseline or candidate), read from run folders or baseline files.

``bench baseline save RUN... -o baselines/NAME.json`` keeps what the gate needs and nothing
else: per run its id, scenario hash, environment fingerprint and reference-kernel timings; per
cell its key, status, and for every gated quantity the raw samples with their statistics. A
run folder is read by building the same document in memory, through the same validation, so
gating against a run and against the baseline saved from it give the same verdicts.

Two things keep a baseline small enough to commit (about 12 bytes per sample):

- at most ``MAX_SAMPLES`` step times (and as many of each other sample list: a generate
  cell's per-request TTFT and TPOT, its per-step decode rates) per cell and run, thinned
  evenly in time order (every k-th sample), so drift within the run stays visible. A 0.1 ms
  step measured for 1 s gives 10,000 samples; past a few hundred, more samples of one run
  narrow the interval without making it any truer, because the run-to-run variation they do
  not see dominates;
- samples rounded to ``SIGNIFICANT_DIGITS`` significant digits: 0.1 ns at 1 ms, far below the
  timer's noise.

Metrics measured once per worker process (compile time, memory, p99 of the step time) have one
value per process: a run with ``measure.repeats: N`` gives N of them per cell, and several runs
on one side (``--baseline R1 --baseline R2``, or ``baseline save R1 R2``) pool their values and
samples per cell. Without either, such metrics have too few values to gate, and say so.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench import __version__
from bench.finite import finite_samples
from bench.gate.fingerprint import fingerprint
from bench.limits import (
    MAX_BASELINE_BYTES,
    MAX_GATE_SAMPLES,
    MAX_MEASURED,
    MAX_REPEATS,
    MAX_RUNS_PER_SIDE,
    InputFileError,
    count,
    read_text_file,
)
from bench.measure.noise import machine_medians, process_medians
from bench.metrics import Gate, Metric, gates, value_of
from bench.runfolder import ResultsError, Run, load_run

FORMAT = "bench-baseline"
STEPS = "step_time_s"  # the metric whose raw per-step samples records keep
FORMAT_VERSION = 1
MAX_SAMPLES = 500
SIGNIFICANT_DIGITS = 7


class BaselineError(Exception):
    """A side that cannot be read: missing, not a run nor a baseline, corrupt, inconsistent."""


# ------------------------------------------------------------------ what is gated


@dataclass(frozen=True)
class MetricDef:
    """A gated metric: a ``Gate`` of the metric registry (``bench.metrics``), with the stored
    quantity it reads and which way is better.

    ``per_process`` metrics have one value per worker process that measured the cell: they
    need ``measure.repeats`` or several runs to be gated at all.
    """

    name: str
    quantity: str
    unit: str
    higher_is_better: bool
    per_process: bool
    description: str
    metric: str  # the record metric it comes from
    stat: str  # the statistic of that metric per process ("value", "p99"); "" per step
    rate: bool  # per-step samples are batch_size / step time
    # The record's own raw sample list it reads (``samples.<name>``: a generate cell's
    # per-request TTFT and TPOT, per-step decode rates) instead of the step times; "" if none.
    sample: str = ""


def _gated(metric: Metric, gate: Gate) -> MetricDef:
    return MetricDef(
        gate.name,
        metric.quantity(gate),
        metric.unit,
        metric.better == "higher",
        gate.stat is not None,
        gate.description,
        metric.name,
        gate.stat or "",
        gate.rate,
        gate.sample,
    )


class _Gated(Mapping[str, MetricDef]):
    """The gate's metrics by ``--metric`` name, read from the registry on every access so a
    metric registered later (a plug-in, a test) is gated like the others."""

    def _all(self) -> dict[str, MetricDef]:
        return {name: _gated(m, g) for name, (m, g) in gates().items()}

    def __getitem__(self, name: str) -> MetricDef:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


METRICS: Mapping[str, MetricDef] = _Gated()


def per_process_sources() -> dict[str, MetricDef]:
    """Per-process quantities (stored name -> its gated metric). With repeats, each process's
    figure is in the record's ``repeats`` list (``bench.measure.repeats.summary_of``); a
    statistic of the step times (p99) comes from each process's own samples."""
    return {m.quantity: m for m in METRICS.values() if m.per_process}


def sample_sources() -> dict[str, MetricDef]:
    """Quantities read from a record's own sample lists (stored name -> its gated metric)."""
    return {m.quantity: m for m in METRICS.values() if m.sample}


# ------------------------------------------------------------------ the document, validated

PositiveFloat = Annotated[float, Field(gt=0, le=MAX_MEASURED, allow_inf_nan=False)]
KeyValue = str | int | float | bool | None


class _Strict(BaseModel):
    # A baseline holds measurements: NaN or infinity in one is damage (bench.finite).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class QuantityDoc(_Strict):
    unit: str
    unavailable: str | None = None
    n: count(MAX_GATE_SAMPLES * MAX_RUNS_PER_SIDE, ge=0) = 0
    median: float | None = None
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    stdev: float | None = None
    samples: list[PositiveFloat] = []


class CellDoc(_Strict):
    key: dict[str, KeyValue]
    status: str
    reason: str = ""
    processes: count(MAX_REPEATS * MAX_RUNS_PER_SIDE, ge=0)  # ok processes that measured it
    quantities: dict[str, QuantityDoc] = {}
    # each ok process's median step time, in process order: their spread is what a rerun of
    # the cell has been seen to change (``bench.measure.noise.spread``); absent in older files
    process_medians: list[PositiveFloat] = []
    # each ok process's reference matmul time, timed just before it got the cell: the machine
    # as this cell met it (``bench.measure.reference.cell_kernel``); absent in older files
    machine_matmul_s: list[PositiveFloat] = []


class HostCpuDoc(_Strict):
    others_cores: float = Field(ge=0)
    others_share: float = Field(ge=0, le=1)
    cpus: count(1 << 20)
    seconds: float = Field(gt=0)
    method: str


class ReferenceMoment(_Strict):
    at: str | None = None
    matmul_s: list[PositiveFloat]
    copy_s: list[PositiveFloat]
    wall_s: float | None = None
    host_cpu: HostCpuDoc | None = None


class ReferenceDoc(_Strict):
    version: int
    method: str
    start: ReferenceMoment | None = None
    end: ReferenceMoment | None = None


class RunDoc(_Strict):
    run_id: str
    status: str | None = None
    scenario: dict[str, str | None]
    started_at: str | None = None
    finished_at: str | None = None
    git: dict[str, str | bool | None] = {}
    fingerprint: dict[str, str]
    reference_kernel: ReferenceDoc | None = None


class BaselineDoc(_Strict):
    format: Literal["bench-baseline"]
    format_version: int
    bench_version: str
    max_samples: count(MAX_GATE_SAMPLES)
    runs: list[RunDoc] = Field(min_length=1, max_length=MAX_RUNS_PER_SIDE)
    cells: dict[str, CellDoc]


def _validate(doc: Any, where: str) -> BaselineDoc:
    try:
        return BaselineDoc.model_validate(doc)
    except ValidationError as exc:
        problems = [
            f"{where}: {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()[:5]
        ]
        more = exc.error_count() - len(problems)
        raise BaselineError(
            "\n".join(problems + ([f"... and {more} more"] if more > 0 else []))
        ) from None


# ------------------------------------------------------------------ building from runs


def _round(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def thin(samples: Sequence[float], max_samples: int) -> list[float]:
    """At most ``max_samples`` of ``samples``, evenly spaced in time order, first and last kept."""
    if len(samples) <= max_samples:
        return list(samples)
    idx = np.linspace(0, len(samples) - 1, max_samples).round().astype(int)
    return [samples[i] for i in idx]


def _stats(samples: Sequence[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    x = np.asarray(samples, dtype=np.float64)
    return {
        "n": int(x.size),
        "median": _round(float(np.median(x))),
        "mean": _round(float(x.mean())),
        "min": _round(float(x.min())),
        "max": _round(float(x.max())),
        "stdev": _round(float(x.std(ddof=1))) if x.size > 1 else 0.0,
    }


def _quantity(unit: str, samples: list[float], unavailable: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"unit": unit}
    if unavailable and not samples:
        doc["unavailable"] = unavailable
    doc.update(_stats(samples))
    doc["samples"] = samples
    return doc


def _numbers(values: Any, where: str) -> list[float]:
    """The samples as floats; NaN or infinity (a hand-edited or old record) counts as missing."""
    if not isinstance(values, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise BaselineError(f"{where}: expected a list of numbers")
    return finite_samples(values)


def _positive(values: Iterable[Any]) -> list[float]:
    return [
        float(v)
        for v in values
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    ]


def _per_process(record: Mapping[str, Any], where: str) -> dict[str, list[float]]:
    """Each ok worker process's value of every per-process quantity, in process order.

    A record merged from ``measure.repeats`` processes lists them in ``repeats`` (a statistic
    of the step times, such as p99, from each process's own step times in
    ``samples.step_time_s_by_repeat``); any other record is one process, whose figures are its
    metrics.
    """
    metrics = record.get("metrics") or {}
    sources = per_process_sources()
    repeats = record.get("repeats")
    if not isinstance(repeats, list) or not repeats:
        return {
            quantity: _positive([value_of(metrics.get(m.metric), m.stat)])
            if isinstance(metrics.get(m.metric), dict)
            else []
            for quantity, m in sources.items()
        }
    ok = [r for r in repeats if isinstance(r, dict) and r.get("status") == "ok"]
    by_repeat = (record.get("samples") or {}).get(f"{STEPS}_by_repeat") or []
    if not isinstance(by_repeat, list):
        raise BaselineError(f"{where}: samples.{STEPS}_by_repeat: expected a list of lists")
    per_repeat = [
        steps
        for i, raw in enumerate(by_repeat)
        if (steps := _numbers(raw, f"{where}: samples.{STEPS}_by_repeat[{i}]"))
    ]
    found = {}
    for quantity, m in sources.items():
        if m.metric == STEPS:
            found[quantity] = _positive(_statistic(steps, m.stat) for steps in per_repeat)
        else:
            found[quantity] = _positive(r.get(m.metric) for r in ok)
    return found


def _statistic(samples: list[float], stat: str) -> float:
    """``stat`` of one process's step times, as ``bench.measure.stats`` names them."""
    if stat == "median":
        return float(np.median(samples))
    if stat == "mean":
        return float(np.mean(samples))
    if re.fullmatch(r"p\d+", stat):
        return float(np.percentile(samples, int(stat[1:])))
    raise ValueError(f"no per-process statistic {stat!r} of the step times")


def _cell_quantities(run: Run, record: Mapping[str, Any], max_samples: int) -> dict[str, Any]:
    """The stored quantities of one ok cell record of one run."""
    where = f"{run.path}: cell {record['cell_id']}"
    metrics = record.get("metrics") or {}
    raw = (record.get("samples") or {}).get("step_time_s")
    steps = [] if raw is None else _numbers(raw, f"{where}: samples.step_time_s")
    found = {
        "step_time_s": _quantity(
            "s",
            [_round(v) for v in thin(steps, max_samples)],
            None if steps else "the record holds no raw step times",
        )
    }
    found.update(_sample_quantities(record, where, max_samples))
    sources = per_process_sources()
    for quantity, values in _per_process(record, where).items():
        m = sources[quantity]
        entry = metrics.get(m.metric)
        why = entry.get("unavailable") if isinstance(entry, dict) else None
        found[quantity] = _quantity(
            m.unit,
            [_round(v) for v in values],
            None if values else str(why or f"the record has no {m.metric}.{m.stat}"),
        )
    return found


def _sample_quantities(record: Mapping[str, Any], where: str, max_samples: int) -> dict[str, Any]:
    """The sample-list quantities of one ok record (a generate cell's per-request TTFT and
    TPOT, its per-step decode rates), thinned and rounded like step times. Only where the
    record has the list or the metric: a train cell carries no empty TTFT entry, and a
    generate cell whose metric is unavailable keeps the reason for the gate to give."""
    samples = record.get("samples") or {}
    metrics = record.get("metrics") or {}
    found = {}
    for quantity, m in sample_sources().items():
        entry = metrics.get(m.metric)
        if quantity not in samples and not isinstance(entry, dict):
            continue
        raw = samples.get(quantity)
        # A sample of zero is no measurement of a time or a rate (the ratio of medians
        # needs positive numbers): left out like a non-finite one.
        values = [] if raw is None else _positive(_numbers(raw, f"{where}: samples.{quantity}"))
        why = entry.get("unavailable") if isinstance(entry, dict) else None
        found[quantity] = _quantity(
            m.unit,
            [_round(v) for v in thin(values, max_samples)],
            None if values else str(why or f"the record holds no {quantity} samples"),
        )
    return found


def _reference(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    ref = meta.get("reference_kernel")
    if not isinstance(ref, dict):
        return None
    keep = {"version": ref.get("version"), "method": ref.get("method")}
    for moment in ("start", "end"):
        if isinstance(ref.get(moment), dict):
            entry = ref[moment]
            keep[moment] = {
                "at": entry.get("at"),
                **{k: [_round(v) for v in entry.get(k) or []] for k in ("matmul_s", "copy_s")},
                "wall_s": entry.get("wall_s"),
                "host_cpu": entry.get("host_cpu"),
            }
    return keep


def _processes(record: Mapping[str, Any]) -> int:
    repeats = record.get("repeats")
    if isinstance(repeats, list) and repeats:
        return sum(1 for r in repeats if isinstance(r, dict) and r.get("status") == "ok")
    return 1


def _process_medians(record: Mapping[str, Any]) -> list[float]:
    """Each ok process's median step time: the repeats' own, or the one process's."""
    if isinstance(record.get("repeats"), list) and record["repeats"]:
        return [_round(v) for v in process_medians(record)]
    median = value_of((record.get("metrics") or {}).get(STEPS), "median")
    return [_round(median)] if median is not None and median > 0 else []


def document_from_run(run: Run, max_samples: int = MAX_SAMPLES) -> dict[str, Any]:
    """The baseline document of one run folder (not yet validated)."""
    meta = run.meta
    scenario = meta.get("scenario") or {}
    git = (meta.get("environment") or {}).get("git") or {}
    run_doc = {
        "run_id": meta.get("run_id"),
        "status": meta.get("status"),
        "scenario": {"name": scenario.get("name"), "sha256": scenario.get("sha256")},
        "started_at": meta.get("started_at"),
        "finished_at": meta.get("finished_at"),
        "git": {"commit": git.get("commit"), "dirty": git.get("dirty")},
        "fingerprint": fingerprint(meta.get("environment") or {}),
        "reference_kernel": _reference(meta),
    }
    planned = [c for c in meta.get("cells_planned") or [] if c in run.cells]
    cells: dict[str, Any] = {}
    for cell_id in [*planned, *(c for c in run.cells if c not in planned)]:
        record = run.cells[cell_id]
        ok = record.get("status") == "ok"
        cells[cell_id] = {
            "key": record.get("key") or {},
            "status": record.get("status"),
            "reason": record.get("reason") or "",
            "processes": _processes(record) if ok else 0,
            "quantities": _cell_quantities(run, record, max_samples) if ok else {},
            "process_medians": _process_medians(record) if ok else [],
            "machine_matmul_s": [_round(v) for v in machine_medians(record)] if ok else [],
        }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bench_version": __version__,
        "max_samples": max_samples,
        "runs": [run_doc],
        "cells": cells,
    }


def _merge_cell(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    """Pool ``other`` (the same cell in a later run) into ``into``; ok if ok in any run, and
    the reason then says which runs it was not ok in."""

    def why(cell: Mapping[str, Any]) -> str:
        return f"{cell['status']} in a run" + (f": {cell['reason']}" if cell["reason"] else "")

    if into["status"] != "ok" and other["status"] == "ok":
        into["reason"] = why(into)
    elif other["status"] != "ok":
        into["reason"] = "; ".join(filter(None, [into["reason"], why(other)]))
    if into["status"] != "ok":
        into["status"] = other["status"]
    into["processes"] += other["processes"]
    for pooled in ("process_medians", "machine_matmul_s"):
        into[pooled] = [*into.get(pooled, []), *other.get(pooled, [])]
    for name, quantity in other["quantities"].items():
        mine = into["quantities"].get(name) or {"unit": quantity["unit"], "samples": []}
        samples = [*mine["samples"], *quantity["samples"]]
        why = mine.get("unavailable") or quantity.get("unavailable")
        into["quantities"][name] = _quantity(quantity["unit"], samples, why)


def merge_documents(docs: Sequence[Mapping[str, Any]], where: str) -> dict[str, Any]:
    """One document for several runs: runs listed in order, samples pooled per cell."""
    merged = json.loads(json.dumps(docs[0]))  # a deep copy
    seen = {r["run_id"] for r in merged["runs"]}
    for doc in docs[1:]:
        for run in doc["runs"]:
            if run["run_id"] in seen:
                raise BaselineError(f"{where}: run {run['run_id']} is given more than once")
            seen.add(run["run_id"])
            merged["runs"].append(run)
        merged["max_samples"] = max(merged["max_samples"], doc["max_samples"])
        for cell_id, cell in doc["cells"].items():
            if cell_id not in merged["cells"]:
                merged["cells"][cell_id] = json.loads(json.dumps(cell))
            else:
                _merge_cell(merged["cells"][cell_id], cell)
    return merged


# ------------------------------------------------------------------ reading a side


@dataclass(frozen=True)
class CellData:
    cell_id: str
    key: dict[str, KeyValue]
    status: str
    reason: str
    processes: int
    quantities: dict[str, QuantityDoc]
    process_medians: tuple[float, ...] = ()
    machine_medians: tuple[float, ...] = ()  # the reference matmul before each process

    def samples(self, metric: MetricDef) -> tuple[list[float], str]:
        """The metric's samples, and why there are none when there are none."""
        if self.status != "ok":
            return [], f"cell {self.status}" + (f": {self.reason}" if self.reason else "")
        quantity = self.quantities.get(metric.quantity)
        if quantity is None and metric.sample:
            workload = self.key.get("workload")
            of = f" (a {workload} cell)" if workload else ""
            return [], f"the record holds no {metric.sample} samples{of}"
        if quantity is None or not quantity.samples:
            return [], (quantity.unavailable if quantity else None) or "not recorded"
        values = list(quantity.samples)
        if metric.rate:
            batch = self.key.get("batch_size")
            if not isinstance(batch, int) or batch <= 0:
                return [], "the cell key has no batch_size"
            values = [batch / v for v in values]
        return values, ""


@dataclass(frozen=True)
class Side:
    """One side of the gate: its source paths, its runs, and its cells in run order."""

    label: str
    runs: tuple[RunDoc, ...]
    cells: dict[str, CellData]
    notes: tuple[str, ...]
    document: dict[str, Any]

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]


def _read_file(path: Path) -> Any:
    try:
        text = read_text_file(path, "a baseline file", MAX_BASELINE_BYTES)
    except InputFileError as exc:
        raise BaselineError(str(exc)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise BaselineError(f"{path}: nested too deeply to be a baseline file") from None
    except ValueError as exc:  # an integer of thousands of digits (int_max_str_digits)
        raise BaselineError(f"{path}: a number too long to be one bench wrote ({exc})") from None


def load_document(
    path: str | Path, max_samples: int = MAX_SAMPLES
) -> tuple[dict[str, Any], list[str]]:
    """The validated document of a run folder or a baseline file, with notes on what it holds."""
    path = Path(path)
    notes: list[str] = []
    if path.is_dir():
        try:
            run = load_run(path)
        except ResultsError as exc:
            raise BaselineError(str(exc)) from None
        notes += run.warnings
        status = run.meta.get("status")
        if status != "complete":
            notes.append(
                f"{path}: run {run.run_id} is {status}, with {len(run.cells)} of "
                f"{len(run.meta.get('cells_planned') or run.cells)} cells recorded"
            )
        doc = document_from_run(run, max_samples)
    elif path.is_file():
        doc = _read_file(path)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise BaselineError(
                f'{path}: not a bench baseline file (no "format": "{FORMAT}"); '
                f"make one with: bench baseline save RUN_DIR -o {path}"
            )
        version = doc.get("format_version")
        if version != FORMAT_VERSION:
            raise BaselineError(
                f"{path}: baseline format_version {version!r} (written by bench "
                f"{doc.get('bench_version', 'unknown')}); this bench reads version "
                f"{FORMAT_VERSION}: save the baseline again from its run folder"
            )
    elif path.exists():
        raise BaselineError(f"{path}: neither a run folder nor a baseline file")
    else:
        raise BaselineError(f"{path}: no such run folder or baseline file")
    checked = _validate(doc, str(path)).model_dump(mode="json")
    return _within(checked, max_samples, notes, path), notes


def _within(doc: dict[str, Any], max_samples: int, notes: list[str], path: Path) -> dict[str, Any]:
    """``doc`` with at most ``max_samples`` step times per cell and run, whatever a baseline
    file says it kept (``--max-samples`` bounds the gate's work and memory, not the file)."""
    if doc["max_samples"] <= max_samples:
        return doc
    most = max_samples * len(doc["runs"])
    thinned = 0
    for cell in doc["cells"].values():
        for name, quantity in cell["quantities"].items():
            if len(quantity["samples"]) > most:
                kept = thin(quantity["samples"], most)
                cell["quantities"][name] = _quantity(quantity["unit"], kept, None)
                thinned += 1
    doc["max_samples"] = max_samples
    if thinned:
        notes.append(f"{path}: {thinned} quantities thinned to --max-samples {max_samples} per run")
    return doc


def load_side(paths: Iterable[str | Path], max_samples: int = MAX_SAMPLES) -> Side:
    """Read and pool one side; BaselineError names the file and field of any problem."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise BaselineError("no run folder or baseline file given")
    label = ", ".join(str(p) for p in paths)
    docs, notes = [], []
    for path in paths:
        doc, found = load_document(path, max_samples)
        docs.append(doc)
        notes += found
    return side_from_documents(docs, label, notes)


def side_from_documents(
    docs: Sequence[Mapping[str, Any]], label: str, notes: Sequence[str] = ()
) -> Side:
    """One side pooled from baseline documents already in memory (``document_from_run``'s,
    or a results history's), through the same validation as files."""
    if not docs:
        raise BaselineError(f"{label}: no runs")
    notes = list(notes)
    merged = _validate(merge_documents(docs, label), label)
    names = {(r.scenario.get("name"), r.scenario.get("sha256")) for r in merged.runs}
    if len(names) > 1:
        notes.append(f"{label}: runs of different scenarios pooled: {sorted(map(str, names))}")
    cells = {
        cell_id: CellData(
            cell_id,
            c.key,
            c.status,
            c.reason,
            c.processes,
            c.quantities,
            tuple(c.process_medians),
            tuple(c.machine_matmul_s),
        )
        for cell_id, c in merged.cells.items()
    }
    return Side(label, tuple(merged.runs), cells, tuple(notes), merged.model_dump(mode="json"))


_NUMBER_LIST = re.compile(r"\[\s*(-?[0-9][0-9.eE+-]*(?:,\s*-?[0-9][0-9.eE+-]*)*)\s*\]")


def dumps(doc: Mapping[str, Any]) -> str:
    """Indented JSON with each list of numbers on one line: readable diffs, small files."""
    text = json.dumps(doc, indent=1, allow_nan=False)
    return _NUMBER_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def save_baseline(side: Side, output: str | Path) -> Path:
    """Write ``side`` as a baseline file; the folder is made if needed."""
    output = Path(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(dumps(side.document))
    except OSError as exc:
        raise BaselineError(f"{output}: cannot write ({exc})") from None
    return output

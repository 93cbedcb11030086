"""Several runs read together: the reading side's view of results (compare, report, recommend).

Runs made on different machines (a CPU VM, a GPU VM, a TPU VM) merge into one list of cells.
The same cell key measured on two machines is two different candidates, so every cell carries
the host that measured it. Each cell is flattened into named *fields* (``FIELDS``: the cell key,
the host, and numbers in the units people state constraints in, such as ``p99_ms``), which is
what ``--where`` expressions, recommendations and reports read; records themselves stay as
written.

Loading reuses ``bench.results.load_run``, so an unknown ``schema_version`` is refused with the
version and the bench that wrote it. Records are checked here for what reading needs (a key, a
known status), so a damaged file gives a message naming the file and cell instead of a
traceback later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bench.measure.finite import finite_record, finite_samples
from bench.metrics import value_of
from bench.results import CELLS_FILE, RUN_FILE, STATUSES, ResultsError, Run, load_run

if TYPE_CHECKING:
    import numpy as np

# Axes of a cell key in the order people read them; axes added later sort after these.
AXES = ("model", "workload", "framework", "device", "batch_size", "precision", "input", "pipeline")
GIB = 2**30


def axes_of(keys: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every axis named in ``keys``, known ones first in ``AXES`` order, then alphabetical."""
    seen = {name for key in keys for name in key}
    return [a for a in AXES if a in seen] + sorted(seen - set(AXES))


@dataclass(frozen=True)
class Host:
    """The machine that made a run. ``label`` is unique among the loaded runs."""

    label: str
    hostname: str
    cpu_model: str
    accelerators: tuple[str, ...]

    @property
    def description(self) -> str:
        parts = [self.cpu_model, *self.accelerators]
        return ", ".join(p for p in parts if p)


@dataclass(frozen=True)
class CellView:
    """One cell record of one run, with the fields that constraints and tables read."""

    run_index: int
    run_id: str
    host: Host
    cell_id: str
    key: Mapping[str, Any]
    status: str
    reason: str
    flags: tuple[str, ...]
    record: Mapping[str, Any]
    fields: Mapping[str, float | str | None]

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def get(self, name: str) -> float | str | None:
        return self.fields.get(name)

    def number(self, name: str) -> float | None:
        found = self.fields.get(name)
        return found if isinstance(found, float) else None

    @property
    def step_samples(self) -> np.ndarray | None:
        """Raw step times (s), positive, or None when the record kept none. A non-finite
        sample (a hand-edited file, an older bench) counts as missing, not as a time."""
        import numpy as np  # only here: `bench --help` lists the fields without numpy

        raw = finite_samples((self.record.get("samples") or {}).get("step_time_s"))
        arr = np.asarray(raw, dtype=np.float64)
        if arr.size == 0 or np.any(arr <= 0):
            return None
        return arr

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self.record.get("metrics", {})

    def label(self, axes: Sequence[str]) -> str:
        """The cell named by the given axes, e.g. ``jax cpu bs256``."""
        return " ".join(axis_text(a, self.key.get(a)) for a in axes)


def axis_text(axis: str, value: Any) -> str:
    """An axis value as tables show it; "-" where the cell has no such axis (the pipeline of a
    synthetic cell, or an axis newer than the run)."""
    if value is None:
        return "-"
    return f"bs{value}" if axis == "batch_size" else str(value)


@dataclass
class RunSet:
    """The loaded runs, their hosts, and every cell of every run (last record per cell)."""

    runs: list[Run]
    hosts: list[Host]  # per run, same order
    cells: list[CellView]
    warnings: list[str] = field(default_factory=list)

    @property
    def axes(self) -> list[str]:
        return axes_of(c.key for c in self.cells)


# -- fields --------------------------------------------------------------------------------

Kind = Literal["text", "number"]


@dataclass(frozen=True)
class Field:
    """A named quantity of a cell: what ``--where`` and recommendations compare."""

    kind: Kind
    unit: str
    help: str
    read: Callable[[Mapping[str, Any], Mapping[str, Any], Host, str], float | str | None]


def _key(axis: str) -> Callable[..., float | str | None]:
    def read(record: Mapping[str, Any], metrics: Mapping[str, Any], host: Host, run_id: str):
        value = record.get("key", {}).get(axis)
        if value is None:
            return None
        return float(value) if isinstance(value, int | float) else str(value)

    return read


def _metric(name: str, stat: str = "value", scale: float = 1.0) -> Callable[..., float | None]:
    def read(record: Mapping[str, Any], metrics: Mapping[str, Any], host: Host, run_id: str):
        value = value_of(metrics.get(name), stat)
        return None if value is None else value * scale

    return read


def _memory(record: Mapping[str, Any], metrics: Mapping[str, Any], host: Host, run_id: str):
    # What has to fit: the accelerator's memory where it was measured; on a CPU the host's
    # resident set is the memory the model occupies.
    device = value_of(metrics.get("peak_device_memory_bytes"))
    if device is not None:
        return device / GIB
    host_rss = value_of(metrics.get("peak_host_rss_bytes"))
    return None if host_rss is None else host_rss / GIB


def _energy(record: Mapping[str, Any], metrics: Mapping[str, Any], host: Host, run_id: str):
    joules = value_of(metrics.get("energy_per_example_j"))
    return None if joules is None else joules * 1e6 / 3.6e6  # J/example -> kWh per 1M examples


FIELDS: dict[str, Field] = {
    "model": Field("text", "", "registered model name", _key("model")),
    "workload": Field("text", "", "train or predict", _key("workload")),
    "framework": Field("text", "", "jax or tensorflow", _key("framework")),
    "device": Field("text", "", "cpu, gpu or tpu", _key("device")),
    "batch_size": Field("number", "examples", "examples per step", _key("batch_size")),
    "precision": Field("text", "", "float32 or bfloat16", _key("precision")),
    "input": Field("text", "", "input pipeline", _key("input")),
    "pipeline": Field("text", "", "tfdata pipeline label (tfdata cells only)", _key("pipeline")),
    "host": Field("text", "", "the machine that ran the cell", lambda r, m, h, i: h.label),
    "run": Field("text", "", "run id", lambda r, m, h, i: i),
    "status": Field(
        "text", "", "ok, skipped, failed, oom, timeout, invalid", lambda r, m, h, i: r["status"]
    ),
    "examples_per_s": Field("number", "examples/s", "throughput", _metric("examples_per_s")),
    "median_ms": Field("number", "ms", "median step time", _metric("step_time_s", "median", 1e3)),
    "p50_ms": Field(
        "number", "ms", "50th percentile step time", _metric("step_time_s", "p50", 1e3)
    ),
    "p90_ms": Field(
        "number", "ms", "90th percentile step time", _metric("step_time_s", "p90", 1e3)
    ),
    "p95_ms": Field(
        "number", "ms", "95th percentile step time", _metric("step_time_s", "p95", 1e3)
    ),
    "p99_ms": Field(
        "number",
        "ms",
        "99th percentile step time (latency of one batch for predict)",
        _metric("step_time_s", "p99", 1e3),
    ),
    "compile_s": Field("number", "s", "trace + compile time", _metric("compile_s")),
    "first_step_s": Field("number", "s", "first step after compile", _metric("first_step_s")),
    "memory_gb": Field(
        "number",
        "GiB",
        "peak device memory where measured, else peak host RSS",
        _memory,
    ),
    "device_memory_gb": Field(
        "number", "GiB", "peak device memory", _metric("peak_device_memory_bytes", scale=1 / GIB)
    ),
    "host_memory_gb": Field(
        "number",
        "GiB",
        "peak host RSS of the worker",
        _metric("peak_host_rss_bytes", scale=1 / GIB),
    ),
    "cost_usd_per_million": Field(
        "number",
        "USD",
        "cost per million examples",
        _metric("cost_per_million_examples_usd"),
    ),
    "energy_kwh_per_million": Field("number", "kWh", "energy per million examples", _energy),
    "mfu_pct": Field("number", "%", "model FLOPs utilisation", _metric("mfu", scale=100.0)),
    "params": Field("number", "parameters", "trainable parameters", _metric("param_count")),
}


def read_fields(
    record: Mapping[str, Any], host: Host, run_id: str
) -> dict[str, float | str | None]:
    metrics = record.get("metrics") or {}
    return {name: f.read(record, metrics, host, run_id) for name, f in FIELDS.items()}


# -- loading -------------------------------------------------------------------------------


def _check_record(path: Path, record: Mapping[str, Any]) -> None:
    where = f"{path / CELLS_FILE}: cell {record.get('cell_id')!r}"
    key = record.get("key")
    if not isinstance(key, dict) or not key:
        raise ResultsError(f"{where}: no cell key (a damaged or hand-edited record)")
    if record.get("status") not in STATUSES:
        raise ResultsError(
            f"{where}: status {record.get('status')!r} is not one of {', '.join(STATUSES)}"
        )
    metrics = record.get("metrics", {})
    if not isinstance(metrics, dict):
        raise ResultsError(f"{where}: metrics is not an object")
    if record["status"] == "ok" and value_of(metrics.get("examples_per_s")) is None:
        raise ResultsError(f"{where}: status ok but no examples_per_s (a truncated record?)")


def _load_one(path: Path) -> Run:
    try:
        return load_run(path)
    except ResultsError as exc:
        if not path.exists():
            raise ResultsError(f"{path}: no such folder") from exc
        if not (path / RUN_FILE).exists() and path.is_dir():
            nested = sorted(p.name for p in path.iterdir() if (p / RUN_FILE).is_file())
            if nested:
                shown = ", ".join(nested[:3]) + (", ..." if len(nested) > 3 else "")
                raise ResultsError(
                    f"{path}: not a run folder but a results folder holding {len(nested)} runs "
                    f"({shown}); name the runs, e.g. {path}/*"
                ) from exc
        raise


def _host_of(run: Run) -> tuple[str, str, tuple[str, ...]]:
    env = run.meta.get("environment") or {}
    host = env.get("host") or {}
    accelerators = tuple(
        str(a.get("name") or a.get("accelerator_type") or a.get("kind") or "?")
        for a in env.get("accelerators") or []
    )
    return str(host.get("hostname") or "?"), str(host.get("cpu_model") or "?"), accelerators


def label_hosts(machines: Sequence[tuple[str, str, tuple[str, ...]]]) -> list[Host]:
    """One ``Host`` per run. Different hardware behind one hostname (every cloud VM may be
    called ``vm``) gets ``#2``, ``#3``: those are different machines, not one."""
    labels: dict[tuple[str, str, tuple[str, ...]], str] = {}
    per_name: dict[str, int] = {}
    hosts = []
    for hostname, cpu, accelerators in machines:
        ident = (hostname, cpu, accelerators)
        if ident not in labels:
            per_name[hostname] = per_name.get(hostname, 0) + 1
            n = per_name[hostname]
            labels[ident] = hostname if n == 1 else f"{hostname}#{n}"
        hosts.append(Host(labels[ident], hostname, cpu, accelerators))
    return hosts


def load_runs(paths: Sequence[str | Path], *, allow_repeats: bool = False) -> RunSet:
    """Read run folders into one ``RunSet``; ResultsError (with the path) on any bad one.

    ``allow_repeats``: the same run may be given twice (``bench compare A A`` checks that a run
    compared with itself gives ratios of 1.00); elsewhere a repeat is dropped with a warning,
    since counting one measurement twice would look like agreement.
    """
    if not paths:
        raise ResultsError("no run folders given")
    runs: list[Run] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for raw in paths:
        run = _load_one(Path(raw))
        if run.run_id in seen and not allow_repeats:
            warnings.append(f"{raw}: run {run.run_id} given twice; read once")
            continue
        seen.add(run.run_id)
        # NaN or infinity (a hand-edited or old record) makes the cell invalid, as bench run
        # would have: never recommended, never ranked best or worst.
        run.cells = {cell_id: finite_record(r) for cell_id, r in run.cells.items()}
        for record in run.cells.values():
            _check_record(run.path, record)
        warnings.extend(run.warnings)
        runs.append(run)
    hosts = label_hosts([_host_of(run) for run in runs])
    cells = [
        CellView(
            run_index=i,
            run_id=run.run_id,
            host=host,
            cell_id=record["cell_id"],
            key=record["key"],
            status=record["status"],
            reason=str(record.get("reason") or ""),
            flags=tuple(record.get("flags") or ()),
            record=record,
            fields=read_fields(record, host, run.run_id),
        )
        for i, (run, host) in enumerate(zip(runs, hosts, strict=True))
        for record in run.cells.values()
    ]
    return RunSet(runs, hosts, cells, warnings)

"""Several runs read together: the reading side's view of results (compare, report, recommend).

Runs made on different machines (a CPU VM, a GPU VM, a TPU VM) merge into one list of cells.
The same cell key measured on two machines is two different candidates, so every cell carries
the host that measured it. Each cell is flattened into named *fields* (``fields()``: the cell
key, the host, and the metric fields of ``bench.metrics.METRICS``, numbers in the units people
state constraints in, such as ``p99_ms``), which is what ``--where`` expressions,
recommendations and reports read; records themselves stay as written. Metrics derived from
several cells of a run (scaling efficiency) are computed here, per run, as fields.

Loading reuses ``bench.runfolder.load_run``, so an unknown ``schema_version`` is refused with the
version and the bench that wrote it. Records are checked here for what reading needs (a key, a
known status), so a damaged file gives a message naming the file and cell instead of a
traceback later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bench.axes import AXES as AXIS_REGISTRY
from bench.axes import KEY_FIELDS, Axis, differing, key_label
from bench.finite import finite_record, finite_samples
from bench.metrics import FieldDef, Metric, read_field, value_of
from bench.metrics import fields as metric_fields
from bench.read.overhead import generation_overhead, server_overhead
from bench.read.scaling import efficiency_entries, resolved_replicas
from bench.read.slo import slo_latency_ms, slo_met, slo_of
from bench.runfolder import CELLS_FILE, RUN_FILE, STATUSES, ResultsError, Run, load_run
from bench.workloads.registry import find as find_workload

if TYPE_CHECKING:
    import numpy as np

# Fields of a cell key in the order people read them (bench.axes); unknown ones sort after.
AXES = KEY_FIELDS


def axes_of(keys: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every axis named in ``keys``, known ones first in ``AXES`` order, then alphabetical."""
    seen = {name for key in keys for name in key}
    return [a for a in AXES if a in seen] + sorted(seen - set(AXES))


def naming_axes(keys: Iterable[Mapping[str, Any]], group: Sequence[str] = ("model", "workload")):
    """The axes that tell these cells apart (``group`` aside: a heading names those), in
    reading order; framework and device where nothing differs, so a cell is never nameless."""
    keys = list(keys)
    axes = [a for a in axes_of(keys) if a not in group]
    return differing(keys, axes) or [a for a in ("framework", "device") if a in axes]


def common_label(keys: Sequence[Mapping[str, Any]], skip: Sequence[str] = ()) -> str:
    """What every key shares, named for people (``cpu, float32, input synthetic``), ``skip``
    and axes some key lacks aside."""
    axes = [a for a in axes_of(keys) if a not in skip]
    same = [a for a in axes if a not in differing(keys, axes)]
    return key_label(keys[0], same, ", ") if keys else ""


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
        """The cell named by the given axes, e.g. ``jax cpu batch 256`` (``bench.axes.label``)."""
        return key_label(self.key, axes)


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
        if isinstance(value, bool):  # before int: a bool is an int
            return "true" if value else "false"
        return float(value) if isinstance(value, int | float) else str(value)

    return read


def _replicas(record: Mapping[str, Any], metrics: Mapping[str, Any], host: Host, run_id: str):
    # "all" compares as the count it resolved to on the machine; unknown where never resolved.
    return float(resolved_replicas(record)) or None


def _axis_field(axis: Axis) -> Field:
    if axis.name == "replicas":
        return Field(axis.where, axis.unit, axis.help, _replicas)
    bools = " (true or false)" if axis.type is bool else ""
    return Field(axis.where, axis.unit, axis.help + bools, _key(axis.name))


def _slo_text(record: Mapping[str, Any], metrics: Mapping[str, Any], host: Host, run_id: str):
    slo = slo_of(record)
    return slo.text if slo is not None else None


def _slo_met(record: Mapping[str, Any], metrics: Mapping[str, Any], host: Host, run_id: str):
    met = slo_met(record)
    return None if met is None else "true" if met else "false"


def _slo_latency(record: Mapping[str, Any], metrics: Mapping[str, Any], host: Host, run_id: str):
    return slo_latency_ms(record)


# A serve or generate cell's own SLO (``bench.read.slo``), read from its record's ``serve.slo``
# or ``generate.slo``: unknown on
# cells without one.
SLO_FIELDS: dict[str, Field] = {
    "slo": Field(
        "text",
        "",
        "the cell's own SLO, e.g. p95<=50ms (serve), ttft_p99<=500ms,tpot_p99<=50ms (generate)",
        _slo_text,
    ),
    "slo_met": Field(
        "text",
        "",
        "whether an ok cell met its own SLO (every limit) at its reported rate: true or false "
        "(serve, generate)",
        _slo_met,
    ),
    "slo_latency_ms": Field(
        "number",
        "ms",
        "latency at the cell's own SLO percentile, at its reported rate (serve; generate: its "
        "first limit, TTFT where stated)",
        _slo_latency,
    ),
}

# The cell key, host, run and status. Metric fields are not listed here: ``fields()`` adds
# them from the metric registry.
FIELDS: dict[str, Field] = {
    "model": Field("text", "", "registered model name", _key("model")),
    **{axis.name: _axis_field(axis) for axis in AXIS_REGISTRY},
    "host": Field("text", "", "the machine that ran the cell", lambda r, m, h, i: h.label),
    "run": Field("text", "", "run id", lambda r, m, h, i: i),
    "status": Field(
        "text", "", "ok, skipped, failed, oom, timeout, invalid", lambda r, m, h, i: r["status"]
    ),
    **SLO_FIELDS,
}


def _metric_field(metric: Metric, f: FieldDef) -> Field:
    def read(record: Mapping[str, Any], metrics: Mapping[str, Any], host: Host, run_id: str):
        key = record.get("key") or {}
        return read_field(metrics, metric, f, key.get("device"), key.get("workload"))

    return Field("number", f.unit, f.help, read)


def fields() -> dict[str, Field]:
    """Every field: ``FIELDS`` (the cell key, host, run, status), then the metric fields the
    registry declares (``bench.metrics.METRICS``), in its order."""
    return {**FIELDS, **{f.name: _metric_field(m, f) for m, f in metric_fields()}}


def run_derived(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per cell id, the entries of metrics derived from several cells of one run (registry
    ``samples="run"``): scaling efficiency against the run's single-replica cells, and a
    model server's overhead against the run's in-process serve cells, and a generation
    server's TTFT and TPOT overhead against the run's in-process generate cells."""
    records = list(records)
    out = efficiency_entries(records)
    for cell_id, entries in server_overhead(records).items():
        out.setdefault(cell_id, {}).update(entries)
    for cell_id, entries in generation_overhead(records).items():
        out.setdefault(cell_id, {}).update(entries)
    return out


def read_fields(
    record: Mapping[str, Any],
    host: Host,
    run_id: str,
    derived: Mapping[str, Any] | None = None,
    known: Mapping[str, Field] | None = None,
) -> dict[str, float | str | None]:
    """The fields of one record; ``derived``: its entries from ``run_derived``."""
    metrics = {**(record.get("metrics") or {}), **(derived or {})}
    return {name: f.read(record, metrics, host, run_id) for name, f in (known or fields()).items()}


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
    # The workload's throughput (examples/s; a generate cell's output tokens/s). A serve cell
    # whose SLO no rate met is ok with its throughput unavailable, and says why (flag
    # slo_unmet); an ok record with no throughput at all is a truncated one.
    spec = find_workload(key.get("workload"))
    name = spec.throughput if spec is not None else "examples_per_s"
    throughput = metrics.get(name)
    said_why = isinstance(throughput, dict) and bool(throughput.get("unavailable"))
    if record["status"] == "ok" and value_of(throughput) is None and not said_why:
        raise ResultsError(f"{where}: status ok but no {name} (a truncated record?)")


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
    known = fields()
    derived = [run_derived(run.cells.values()) for run in runs]
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
            fields=read_fields(record, host, run.run_id, derived[i].get(record["cell_id"]), known),
        )
        for i, (run, host) in enumerate(zip(runs, hosts, strict=True))
        for record in run.cells.values()
    ]
    return RunSet(runs, hosts, cells, warnings)

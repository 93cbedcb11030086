"""Side-by-side comparison of runs: cells matched by key, every metric with a ratio and its CI.

Pure functions over loaded runs (``bench.read.runset``); rendering lives in ``bench.report.compare``.

Matching. A cell of one run is matched with the cell of each other run that has the same values
on the matching axes. By default these are all the axes of the cell keys except the ones a
comparison is *about*: an axis that takes a single value within every run but different values
between runs (run A all ``device: cpu``, run B all ``device: gpu``) is what differs on purpose,
and matching on it would match nothing. ``by`` names the matching axes explicitly; then two cells
of one run that agree on them are ambiguous and refused, naming the axis that tells them apart.

Metrics. The rows are the metric registry's fields marked ``compare`` (``bench.metrics``), in
its order; one that exists only where it applies (scaling efficiency) is shown where it does
and never listed as unavailable.

Ratios. The first run is the baseline; every other run gets ``value / baseline value`` per
metric. Where the raw step times are kept (``samples.step_time_s``), the ratio of median step
times gets a 95% percentile-bootstrap interval (``stats.ratio_of_medians_ci``, seeded, so the
same runs always give the same table). Metrics proportional to the median step time (cost per
example at a fixed price) or to its inverse (examples/s, MFU) carry that same interval over,
scaled: their noise *is* the step-time noise. Others (p99, compile time, memory, energy: one
reading per cell) have no interval and are never called better or worse.

Verdicts. A ratio is ``better`` or ``worse`` only when its whole interval lies beyond the noise
threshold (``bench.measure.noise``), widened where other processes shared the machine while
either cell was measured or the reference kernel saw the machine change speed: an interval from one process's steps misses the variation between processes that a
rerun meets. Each ratio records the threshold it was judged against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from bench.measure.noise import Noise, beyond, noise_for, summary
from bench.measure.stats import ratio_of_medians_ci
from bench.metrics import METRICS
from bench.metrics import fields as metric_fields
from bench.read.runset import CellView, RunSet, axes_of

Verdict = Literal["better", "worse", "same"]
MISSING = "missing"


class ComparisonError(ValueError):
    """Runs that cannot be compared as asked (an unknown axis, ambiguous matches)."""


@dataclass(frozen=True)
class MetricSpec:
    """A row of the comparison: a field of the metric registry with ``compare=True``."""

    field: str  # a bench.read.runset.fields() name
    label: str
    unit: str
    higher_is_better: bool
    # how the step-time interval carries over: "step" (proportional to the median step time),
    # "rate" (to its inverse), None (no interval)
    noise: Literal["step", "rate"] | None
    sources: tuple[str, ...]  # the record metrics it reads, to say why it is unavailable
    optional: bool  # exists only where it applies (scaling): never listed as unavailable
    # The label on one workload's cells, where the field reads another metric there
    # (``FieldDef.by_workload``): a generate cell's cost is per million output tokens.
    workload_labels: tuple[tuple[str, str], ...] = ()

    def label_for(self, workload: object) -> str:
        return dict(self.workload_labels).get(str(workload), self.label)


def compared() -> list[MetricSpec]:
    """The rows of a comparison, in registry order (``bench.metrics.METRICS``)."""
    return [
        MetricSpec(
            f.name,
            m.field_label(f),
            f.unit,
            m.better == "higher",
            f.noise,
            (m.name, *f.fallback),
            bool(m.applies),
            tuple((w, METRICS[own].label) for w, own in f.by_workload if own in METRICS),
        )
        for m, f in metric_fields()
        if f.compare
    ]


@dataclass(frozen=True)
class Ratio:
    value: float
    ci_lo: float | None
    ci_hi: float | None
    verdict: Verdict | None  # None: no interval, so no claim either way
    noise: Noise | None = None  # the threshold the verdict was judged against (with an interval)


@dataclass(frozen=True)
class Side:
    """One run's cell in a group: its status (or ``missing``) and why."""

    run: int
    status: str
    reason: str
    cell_id: str | None
    flags: tuple[str, ...]


@dataclass(frozen=True)
class MetricRow:
    field: str
    label: str
    unit: str
    higher_is_better: bool
    values: tuple[float | None, ...]  # per run
    ratios: tuple[Ratio | None, ...]  # per run after the first, against the first


@dataclass(frozen=True)
class Group:
    match: dict[str, Any]  # the matching axes' values
    sides: tuple[Side, ...]
    metrics: tuple[MetricRow, ...]


@dataclass(frozen=True)
class RunInfo:
    label: str  # A, B, C...
    run_id: str
    host: str
    host_description: str
    scenario: str


@dataclass(frozen=True)
class Comparison:
    runs: tuple[RunInfo, ...]
    by: tuple[str, ...]
    differing: dict[str, tuple[str, ...]]  # axes left out of matching: value per run
    groups: tuple[Group, ...]
    omitted: dict[str, str]  # metrics unavailable in every compared cell -> one reason
    noise_rule: str = ""  # which noise thresholds the verdicts used, in words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_labels(n: int) -> list[str]:
    """A, B, ..., Z, then R27, R28: short column headers, explained in a legend."""
    return [chr(ord("A") + i) if i < 26 else f"R{i + 1}" for i in range(n)]


def default_by(runset: RunSet, n_runs: int) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """Matching axes when none are given, and the axes left out (see the module docstring)."""
    axes = runset.axes
    differing: dict[str, tuple[str, ...]] = {}
    if n_runs < 2:
        return axes, differing
    for axis in axes:
        per_run = []
        for i in range(n_runs):
            values = {str(c.key.get(axis)) for c in runset.cells if c.run_index == i}
            per_run.append(values)
        if all(len(v) == 1 for v in per_run) and len({next(iter(v)) for v in per_run}) > 1:
            differing[axis] = tuple(next(iter(v)) for v in per_run)
    return [a for a in axes if a not in differing], differing


def _ratio(
    spec: MetricSpec,
    base: CellView,
    other: CellView,
    base_value: float | None,
    value: float | None,
    *,
    noise: float | None,
    runs: Sequence[tuple[str, Mapping[str, Any]]],
    seed: int,
    n_boot: int,
) -> Ratio | None:
    if base_value is None or value is None or base_value <= 0:
        return None
    ratio = value / base_value
    b, c = base.step_samples, other.step_samples
    if spec.noise is None or b is None or c is None:
        return Ratio(ratio, None, None, None)
    step, lo, hi = ratio_of_medians_ci(b, c, n_boot=n_boot, seed=seed)
    if spec.noise == "step":
        ci_lo, ci_hi = ratio / step * lo, ratio / step * hi
    else:  # proportional to 1 / median step time: the interval flips
        ci_lo, ci_hi = ratio * step / hi, ratio * step / lo
    threshold = noise_for((base.record, other.record), noise, runs)
    side = beyond(ci_lo, ci_hi, threshold.band)
    verdict: Verdict = "same"
    if side is not None:
        verdict = "better" if (side == "above") == spec.higher_is_better else "worse"
    return Ratio(ratio, ci_lo, ci_hi, verdict, threshold)


def _sort_key(ident: tuple[str, ...]) -> tuple[tuple[int, float, str], ...]:
    """Groups in key order, numbers numerically (batch 32 before 256 before 1024)."""
    out = []
    for value in ident:
        try:
            out.append((0, float(value), ""))
        except ValueError:
            out.append((1, 0.0, value))
    return tuple(out)


def _unavailable_reason(cells: Sequence[CellView], spec: MetricSpec) -> str:
    for cell in cells:
        for name in spec.sources:
            entry = cell.metrics.get(name)
            if isinstance(entry, dict) and "unavailable" in entry:
                return f"{name}: {entry['unavailable']}"
    return f"no cell records {' or '.join(spec.sources)}"


def compare(
    runset: RunSet,
    cells: Sequence[CellView] | None = None,
    *,
    by: Sequence[str] | None = None,
    noise: float | None = None,
    seed: int = 0,
    n_boot: int = 2000,
) -> Comparison:
    """Match ``cells`` (default: every cell of ``runset``) across its runs; run 0 is the baseline.
    ``noise``: the noise threshold for every verdict (default: per cell, see the module
    docstring).

    Raises ComparisonError for an unknown ``by`` axis or when one run has two cells matching
    the same group.
    """
    n_runs = len(runset.runs)
    cells = list(runset.cells if cells is None else cells)
    all_axes = axes_of(c.key for c in runset.cells)
    if by is None:
        match_axes, differing = default_by(runset, n_runs)
    else:
        unknown = [a for a in by if a not in all_axes]
        if unknown:
            raise ComparisonError(
                f"--by {','.join(by)}: no axis {', '.join(map(repr, unknown))} in these runs "
                f"(axes: {', '.join(all_axes)})"
            )
        match_axes, differing = list(dict.fromkeys(by)), {}
    grouped = _match(cells, match_axes, all_axes, n_runs)

    metas = [(run.run_id, run.meta) for run in runset.runs]
    groups = []
    shown: set[str] = set()
    omitted: dict[str, str] = {}
    for ident in sorted(grouped, key=_sort_key):
        row = grouped[ident]
        sides = tuple(
            Side(i, MISSING, "", None, ())
            if c is None
            else Side(i, c.status, c.reason, c.cell_id, c.flags)
            for i, c in enumerate(row)
        )
        metrics = _metric_rows(row, metas, shown, omitted, noise, seed, n_boot)
        groups.append(Group(dict(zip(match_axes, ident, strict=True)), sides, tuple(metrics)))
    labels = run_labels(n_runs)
    infos = tuple(
        RunInfo(
            labels[i],
            run.run_id,
            runset.hosts[i].label,
            runset.hosts[i].description,
            str(run.meta.get("scenario", {}).get("name", "?")),
        )
        for i, run in enumerate(runset.runs)
    )
    used = [r.noise for g in groups for m in g.metrics for r in m.ratios if r and r.noise]
    if noise is not None:
        used.append(noise_for((), noise))
    return Comparison(
        infos,
        tuple(match_axes),
        differing,
        tuple(groups),
        {k: v for k, v in omitted.items() if k not in shown},
        summary(used) if n_runs > 1 else "",
    )


def _match(
    cells: Sequence[CellView], match_axes: Sequence[str], all_axes: Sequence[str], n_runs: int
) -> dict[tuple[str, ...], list[CellView | None]]:
    """Each group of ``match_axes`` values, with its cell in each run (None where absent)."""
    grouped: dict[tuple[str, ...], list[CellView | None]] = {}
    for cell in cells:
        ident = tuple(str(cell.key.get(a)) for a in match_axes)
        row = grouped.setdefault(ident, [None] * n_runs)
        previous = row[cell.run_index]
        if previous is not None:
            apart = [a for a in all_axes if previous.key.get(a) != cell.key.get(a)]
            raise ComparisonError(
                f"run {cell.run_id}: cells {previous.cell_id} and {cell.cell_id} both match "
                f"{', '.join(f'{a}={v}' for a, v in zip(match_axes, ident, strict=True))}; "
                f"add {' or '.join(apart) or 'an axis'} to --by, or narrow with --where"
            )
        row[cell.run_index] = cell
    return grouped


def _metric_rows(
    row: list[CellView | None],
    metas: list[tuple[str, dict[str, Any]]],
    shown: set[str],
    omitted: dict[str, str],
    noise: float | None,
    seed: int,
    n_boot: int,
) -> list[MetricRow]:
    """One group's metrics, each with its ratios to the baseline run; notes in ``shown`` the
    fields shown and in ``omitted`` why a field no ok cell has is left out."""
    ok = [c for c in row if c is not None and c.ok]
    metrics = []
    for spec in compared():
        values = tuple(c.number(spec.field) if c is not None and c.ok else None for c in row)
        if not ok or all(v is None for v in values):
            if ok and spec.field not in omitted and not spec.optional:
                omitted[spec.field] = _unavailable_reason(ok, spec)
            continue
        shown.add(spec.field)
        base = row[0]
        ratios = tuple(
            _ratio(
                spec,
                base,
                other,
                values[0],
                values[i],
                noise=noise,
                runs=[metas[base.run_index], metas[other.run_index]],
                seed=seed,
                n_boot=n_boot,
            )
            if base is not None and other is not None and base.ok and other.ok
            else None
            for i, other in enumerate(row)
            if i > 0
        )
        label = spec.label_for(ok[0].key.get("workload"))
        metrics.append(
            MetricRow(spec.field, label, spec.unit, spec.higher_is_better, values, ratios)
        )
    return metrics

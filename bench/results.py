"""Results for people and notebooks: run folders as a pandas ``DataFrame``, and the run-folder
readers a user needs.

    import bench.results
    df = bench.results.load(["results/run-a", "results/run-b"])
    df.pivot_table("examples_per_s", index=["framework", "batch_size"], columns="run")

``load`` is built on the reading side (``bench.read.runset.load_runs``), so a frame holds what
``bench compare``, ``--where`` and ``bench recommend`` read: the same fields, in the same units,
with metrics derived from several cells of a run (scaling efficiency), and a damaged run folder
is the same ``ResultsError`` naming the file. The run-folder format itself is
``bench.runfolder``; its readers are re-exported here.

pandas is imported only when a frame is made: ``bench --help`` and the other reading commands
do not pay for it.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bench.axes import AXES, MODEL
from bench.metrics import fields as metric_fields
from bench.read.runset import SLO_FIELDS, load_runs
from bench.runfolder import ResultsError, Run, list_runs, load_run

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ResultsError", "Run", "columns", "list_runs", "load", "load_run", "rows"]

# Columns before the axes and after them; the metric columns follow, in registry order.
FIRST = ("run", "host", "cell_id")
STATUS = ("status", "reason", "flags")


def columns() -> dict[str, str]:
    """Every column of a frame from ``load``, in order, with its unit ("" for none): the run,
    host and cell id, the model and every axis (``bench.axes`` order), status, reason and flags,
    every reading-side metric field (``bench.metrics`` order), then a serve cell's own SLO
    (``slo``, ``slo_met``, ``slo_latency_ms``: ``bench.read.slo``)."""
    return {
        **dict.fromkeys(FIRST, ""),
        MODEL: "",
        **{a.name: a.unit for a in AXES},
        **dict.fromkeys(STATUS, ""),
        **{f.name: f.unit for _, f in metric_fields()},
        **{name: f.unit for name, f in SLO_FIELDS.items()},
    }


def load(runs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per cell of the run folder(s) ``runs`` (a path, or several: one frame, told
    apart by ``run``), with the columns of ``columns()``.

    Axes hold the key's values (``batch_size`` an integer, ``xla`` a boolean), missing (NA)
    where a cell's key lacks the axis (``pipeline`` outside tfdata cells, records written
    before the axis existed); ``replicas`` is the count the cell ran on (``"all"`` resolved).
    Metric columns are floats in the unit of their field (``p99_ms`` in ms), NaN where not
    measured. ``flags`` is the cell's flags joined by commas ("" for none). ``slo`` is a
    serve cell's own SLO as text (``p95<=50ms``), ``slo_met`` a boolean (NA where it has no
    SLO or is not ``ok``), ``slo_latency_ms`` its latency at its SLO percentile.

    ``df.attrs["units"]``: column -> unit, for every column that has one. ``df.attrs
    ["warnings"]``: what the readers noticed (a cut-off last record, a run given twice), each
    also issued as a Python warning. Raises ``ResultsError`` naming the file on a damaged or
    unknown run folder.
    """
    import pandas as pd

    paths = [runs] if isinstance(runs, str | os.PathLike) else list(runs)
    runset = load_runs(paths)
    for message in runset.warnings:
        warnings.warn(message, stacklevel=2)
    metrics = [f.name for _, f in metric_fields()]
    records = [
        {
            "run": cell.run_id,
            "host": cell.host.label,
            "cell_id": cell.cell_id,
            MODEL: cell.key.get(MODEL),
            **{a.name: _axis_value(a.name, cell.key, cell.get(a.name)) for a in AXES},
            "status": cell.status,
            "reason": cell.reason,
            "flags": ",".join(cell.flags),
            **{name: cell.number(name) for name in metrics},
            "slo": cell.get("slo"),
            "slo_met": {"true": True, "false": False}.get(str(cell.get("slo_met"))),
            "slo_latency_ms": cell.number("slo_latency_ms"),
        }
        for cell in runset.cells
    ]
    units = columns()
    frame = pd.DataFrame.from_records(records, columns=list(units))
    for axis in AXES:
        if axis.type is bool:
            frame[axis.name] = frame[axis.name].astype("boolean")
        elif axis.where == "number":
            frame[axis.name] = frame[axis.name].astype("Int64")
    frame[metrics] = frame[metrics].astype("float64")
    frame["slo_met"] = frame["slo_met"].astype("boolean")
    frame["slo_latency_ms"] = frame["slo_latency_ms"].astype("float64")
    frame.attrs["units"] = {name: unit for name, unit in units.items() if unit}
    frame.attrs["warnings"] = list(runset.warnings)
    return frame


def _axis_value(name: str, key: Mapping[str, Any], field: float | str | None) -> Any:
    # The read side's replicas field is the resolved count; every other axis as the key has it.
    if name == "replicas":
        return None if field is None else int(field)
    return key.get(name)


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as plain Python values (None where missing), for ``json.dumps``:
    what ``bench results RUN --format json`` writes."""
    import pandas as pd

    def plain(value: Any) -> Any:
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return None
        return value.item() if hasattr(value, "item") else value

    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]

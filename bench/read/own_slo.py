"""Each serve cell judged by its own SLO in ``bench recommend``, unless the user says otherwise.

A serve cell recorded the SLO its scenario stated (``bench.read.slo``). With no latency
constraint typed, ``bench recommend`` adds one implicit constraint to each decision that has
such cells: *each cell's own SLO* (``OwnSlo``), so a cell whose SLO is p95 <= 50 ms qualifies
when its p95 is within 50 ms, whatever its p99. Cells without an SLO (training, batch
prediction) always meet it.

A constraint the user typed on a request-latency percentile (``p99_ms``, ``latency_p95_ms``:
the fields that read ``request_latency_s``, found in the metric registry) or on the SLO fields
themselves (``slo_met``, ``slo``, ``slo_latency_ms``) replaces the implicit one: the user's
word is the last. Where it judges differently from a recorded SLO (another percentile, a
looser or tighter bound, or not an upper bound at all), ``overrides`` says so, naming both, so
a p99 typed out of habit on a p95 scenario is seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.metrics import fields as metric_fields
from bench.read.constraints import Constraint
from bench.read.runset import SLO_FIELDS, CellView
from bench.read.slo import Slo, describe_all, slo_of

REQUEST_LATENCY = "request_latency_s"  # the metric whose percentiles an SLO bounds


def latency_percentiles() -> dict[str, float | None]:
    """``--where`` field -> the request-latency percentile it reads (``p99_ms`` -> 99 on a
    serve cell), and ``slo_latency_ms`` -> None (each cell's own percentile)."""
    out: dict[str, float | None] = {}
    for m, f in metric_fields():
        if REQUEST_LATENCY in (m.name, *f.fallback) and f.stat.startswith("p"):
            try:
                out[f.name] = float(f.stat[1:].replace("_", "."))
            except ValueError:
                continue
    out["slo_latency_ms"] = None
    return out


def overriding(constraints: Sequence[Constraint]) -> list[Constraint]:
    """The user's constraints that replace each cell's own SLO: on a request-latency
    percentile or on an SLO field."""
    latency = latency_percentiles()
    return [k for k in constraints if k.field in latency or k.field in SLO_FIELDS]


@dataclass(frozen=True)
class OwnSlo(Constraint):
    """The implicit constraint: a cell with an SLO meets it when it met its SLO (``slo_met``);
    a cell without one always does. ``slos``: the different SLOs of the cells it judges,
    for the text."""

    slos: tuple[Slo, ...] = ()

    @staticmethod
    def of(cells: Sequence[CellView]) -> OwnSlo | None:
        """The constraint for these cells, or None where none has an SLO."""
        slos = tuple(dict.fromkeys(s for c in cells if (s := slo_of(c.record)) is not None))
        return OwnSlo("slo_met", "==", None, ("true",), slos) if slos else None

    @property
    def text(self) -> str:
        return f"each cell's own SLO: {describe_all(self.slos)}"

    def violation(self, cell: CellView) -> str | None:
        slo = slo_of(cell.record)
        if slo is None or cell.get("slo_met") == "true":
            return None
        latency = cell.number("slo_latency_ms")
        if latency is not None:
            return f"{slo.name} = {latency:.3g} ms (its SLO: {slo.describe()})"
        if cell.get("slo_met") == "false":
            return f"missed its SLO {slo.describe()} (requests dropped at {slo.name})"
        return f"whether it met its SLO {slo.describe()} is unknown"

    def excess(self, cell: CellView) -> float:
        if self.holds(cell):
            return 0.0
        slo, latency = slo_of(cell.record), cell.number("slo_latency_ms")
        if slo is None or latency is None:
            return 1.0
        return abs(latency - slo.latency_ms) / slo.latency_ms


def _differences(constraint: Constraint, slo: Slo) -> list[str]:
    """How ``constraint`` judges differently from ``slo``, in words; empty when the same."""
    percentile = latency_percentiles().get(constraint.field)
    found = []
    if percentile is not None and percentile != slo.percentile:
        found.append(f"a different percentile (p{percentile:g}, not {slo.name})")
    limit = constraint.number
    if limit is None:
        return found
    if constraint.op not in ("<=", "<"):
        found.append(f"not an upper bound ({constraint.op}{limit:g} ms)")
    elif limit < slo.latency_ms:
        found.append(f"a tighter bound ({limit:g} ms, not {slo.latency_ms:g} ms)")
    elif limit > slo.latency_ms:
        found.append(f"a looser bound ({limit:g} ms, not {slo.latency_ms:g} ms)")
    return found


def overrides(constraints: Sequence[Constraint], cells: Sequence[CellView]) -> list[str]:
    """Warnings for the user's latency constraints that judge the ``cells`` with a recorded
    SLO otherwise than that SLO, one per (constraint, SLO), naming both."""
    latency = latency_percentiles()
    warnings = []
    for constraint in constraints:
        if constraint.field not in latency:
            continue
        for slo in dict.fromkeys(s for c in cells if (s := slo_of(c.record)) is not None):
            differences = _differences(constraint, slo)
            if not differences:
                continue
            n = sum(1 for c in cells if slo_of(c.record) == slo)
            warnings.append(
                f"--where {constraint.text} replaces the SLO recorded by {n} serve "
                f"cell{'s' if n > 1 else ''} ({slo.describe()}) with {' and '.join(differences)}"
                "; without a latency --where each cell is judged by its own SLO"
            )
    return warnings

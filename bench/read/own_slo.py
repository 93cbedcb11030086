"""Each serve or generate cell judged by its own SLO in ``bench recommend``, unless the user says
otherwise.

A serve or generate cell recorded the SLO its scenario stated (``bench.read.slo``). With no
latency constraint typed, ``bench recommend`` adds one implicit constraint to each decision
that has such cells: *each cell's own SLO* (``OwnSlo``), so a cell whose SLO is p95 <= 50 ms
qualifies when its p95 is within 50 ms, whatever its p99, and a generate cell when every limit
it states (TTFT, TPOT, end-to-end latency) held. Cells without an SLO (training, batch
prediction) always meet it.

A constraint the user typed on a percentile an SLO bounds (``p99_ms``, ``latency_p95_ms``:
the fields that read ``request_latency_s``; ``ttft_p99_ms``, ``tpot_p50_ms`` on generate
cells; all found in the metric registry) or on the SLO fields themselves (``slo_met``,
``slo``, ``slo_latency_ms``) replaces the implicit one: the user's word is the last. Where it
judges differently from a recorded SLO (another percentile, a looser or tighter bound, not an
upper bound at all, a limit the SLO does not state, or a stated limit no typed one checks),
``overrides`` says so, naming both, so a p99 typed out of habit on a p95 scenario is seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.metrics import fields as metric_fields
from bench.read.constraints import Constraint
from bench.read.runset import SLO_FIELDS, CellView
from bench.read.slo import LIMITS, Slo, describe_all, slo_at_ms, slo_of

REQUEST_LATENCY = "request_latency_s"  # the metric whose percentiles a serve SLO bounds
# The metric whose percentiles each limit of an SLO bounds: request_latency_s -> latency_ms,
# and a generate cell's ttft_s -> ttft_ms, tpot_s -> tpot_ms.
_BOUNDED = {metric: limit for limit, _, metric in LIMITS}


def bounded_fields() -> dict[str, tuple[str | None, float | None]]:
    """``--where`` field -> (the SLO limit it bounds, the percentile it reads): ``p99_ms`` ->
    (``latency_ms``, 99) on a serve cell, ``ttft_p99_ms`` -> (``ttft_ms``, 99) on a generate
    cell, and ``slo_latency_ms`` -> (None, None): each cell's own first limit and percentile."""
    out: dict[str, tuple[str | None, float | None]] = {}
    for m, f in metric_fields():
        limit = next((_BOUNDED[n] for n in (m.name, *f.fallback) if n in _BOUNDED), None)
        if limit is None or not f.stat.startswith("p"):
            continue
        try:
            out[f.name] = (limit, float(f.stat[1:].replace("_", ".")))
        except ValueError:
            continue
    out["slo_latency_ms"] = (None, None)
    return out


def latency_percentiles() -> dict[str, float | None]:
    """``--where`` field -> the request-latency percentile it reads (``p99_ms`` -> 99 on a
    serve cell), and ``slo_latency_ms`` -> None (each cell's own percentile)."""
    return {
        name: percentile
        for name, (limit, percentile) in bounded_fields().items()
        if limit in (None, "latency_ms")
    }


def overriding(constraints: Sequence[Constraint]) -> list[Constraint]:
    """The user's constraints that replace each cell's own SLO: on a percentile an SLO
    bounds (request latency, TTFT, TPOT) or on an SLO field."""
    bounded = bounded_fields()
    return [k for k in constraints if k.field in bounded or k.field in SLO_FIELDS]


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
        at = slo_at_ms(cell.record, slo)
        known = {n: v for n, v in at.items() if v is not None}
        # The limits it missed; where none is known missed (a cell not ok), every figure.
        missed = {n: v for n, v in known.items() if not slo.meets(v, n)} or known
        if missed:
            shown = "; ".join(f"{slo.word(n)} = {v:.3g} ms" for n, v in missed.items())
            return f"{shown} (its SLO: {slo.describe()})"
        if cell.get("slo_met") == "false":
            return f"missed its SLO {slo.describe()} (requests dropped at {slo.name})"
        return f"whether it met its SLO {slo.describe()} is unknown"

    def excess(self, cell: CellView) -> float:
        """How far over its SLO: the limit missed by most, relative to that limit."""
        if self.holds(cell):
            return 0.0
        slo = slo_of(cell.record)
        if slo is None:
            return 1.0
        at = slo_at_ms(cell.record, slo)
        bounds = dict(slo.limits())
        over = [v / bounds[n] - 1 for n, v in at.items() if v is not None and v > bounds[n]]
        if over:
            return max(over)
        if any(v is None for v in at.values()):
            return 1.0
        return max(abs(v / bounds[n] - 1) for n, v in at.items() if v is not None)


def _differences(constraint: Constraint, slo: Slo) -> list[str]:
    """How ``constraint`` judges differently from ``slo``, in words; empty when the same."""
    limit, percentile = bounded_fields().get(constraint.field, (None, None))
    if limit is None:  # slo_latency_ms: the cell's first limit, at its own percentile
        limit = slo.limits()[0][0]
    found = []
    if percentile is not None and percentile != slo.percentile:
        found.append(f"a different percentile (p{percentile:g}, not {slo.name})")
    bound = dict(slo.limits()).get(limit)
    if bound is None:
        found.append(f"a {dict((n, w) for n, w, _ in LIMITS)[limit]} limit it does not state")
    number = constraint.number
    if number is None or bound is None:
        return found
    if constraint.op not in ("<=", "<"):
        found.append(f"not an upper bound ({constraint.op}{number:g} ms)")
    elif number < bound:
        found.append(f"a tighter bound ({number:g} ms, not {bound:g} ms)")
    elif number > bound:
        found.append(f"a looser bound ({number:g} ms, not {bound:g} ms)")
    return found


def _unchecked(constraints: Sequence[Constraint], slo: Slo) -> list[str]:
    """The SLO's limits that no typed constraint bounds (a generate SLO's TPOT when only
    TTFT was typed): replaced along with the rest, so no longer checked."""
    bounded = bounded_fields()
    typed = {bounded[k.field][0] or slo.limits()[0][0] for k in constraints if k.field in bounded}
    if any(k.field in SLO_FIELDS and k.field != "slo_latency_ms" for k in constraints):
        return []  # slo / slo_met typed: the SLO itself is the judge
    words = dict((n, w) for n, w, _ in LIMITS)
    return [words[n] for n, _ in slo.limits() if n not in typed]


def overrides(constraints: Sequence[Constraint], cells: Sequence[CellView]) -> list[str]:
    """Warnings for the user's latency constraints that judge the ``cells`` with a recorded
    SLO otherwise than that SLO, one per (constraint, SLO), naming both; and one per SLO
    whose limits the typed ones leave unchecked."""
    bounded = bounded_fields()
    warnings = []
    slos = dict.fromkeys(s for c in cells if (s := slo_of(c.record)) is not None)

    def recorded_by(slo: Slo) -> str:
        mine = [c for c in cells if slo_of(c.record) == slo]
        kinds = "/".join(dict.fromkeys(str(c.key.get("workload")) for c in mine))
        return f"the SLO recorded by {len(mine)} {kinds} cell{'s' if len(mine) > 1 else ''}"

    for constraint in constraints:
        if constraint.field not in bounded:
            continue
        for slo in slos:
            differences = _differences(constraint, slo)
            if differences:
                warnings.append(
                    f"--where {constraint.text} replaces {recorded_by(slo)} ({slo.describe()}) "
                    f"with {' and '.join(differences)}; without a latency --where each cell is "
                    "judged by its own SLO"
                )
    typed = [k for k in constraints if k.field in bounded or k.field in SLO_FIELDS]
    for slo in slos if typed else ():
        unchecked = _unchecked(typed, slo)
        if unchecked:
            warnings.append(
                f"--where {' '.join(k.text for k in typed)} replaces {recorded_by(slo)} "
                f"({slo.describe()}): its {' and '.join(unchecked)} limit is no longer checked"
            )
    return warnings

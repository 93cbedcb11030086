"""A serve cell's own SLO, read from its record: what it promised, and whether it kept it.

A cell that served requests under load records the latency objective its scenario stated
(``serve.slo``: ``percentile`` and ``latency_ms``) and, per probed rate, the latency at that
percentile (``serve.probes[].slo_latency_s``); its metrics hold the percentiles of the rate it
reports (``request_latency_s``). The reading side judges the cell by that SLO, not by a limit
typed again on the command line: a cell whose SLO is at p95 is judged on its p95. This module
turns a record into three fields (``bench.read.runset`` registers them for ``--where``,
recommend, tables and frames):

- ``slo``: the objective as text, ``p95<=50ms``;
- ``slo_latency_ms``: the cell's latency at its own SLO percentile, at its reported rate (the
  max compliant rate of a search, else the one rate offered, or the single stream);
- ``slo_met``: ``true``/``false``, judged on ``ok`` cells only (an invalid cell's numbers are not
  a verdict).

Whether a cell has an SLO is decided by its record (a usable ``serve.slo`` block), never by its
workload's name. A record without one (any train or predict cell, a record older than SLOs) or
with a damaged one (a percentile outside (0, 100), a latency that is not a positive finite
number, a block of the wrong type) has no SLO: every field is unknown, and nothing raises.
Pure functions over plain records; no numpy, so ``bench --help`` can list the fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.finite import is_finite_number
from bench.metrics import value_of

# Latencies within this relative distance of the bound meet it: ms read back from seconds
# (0.035 s x 1e3) must not miss a bound the worker saw met.
ROUNDING = 1e-9
MET, MISSED, UNKNOWN = "✓", "✗", "?"


@dataclass(frozen=True)
class Slo:
    """A latency objective: the ``percentile`` of request latency within ``latency_ms``."""

    percentile: float
    latency_ms: float

    @property
    def stat(self) -> str:
        """The percentile's key in a latency summary: ``p95``, ``p99_9`` (as the serve
        summary writes it, ``bench.serve.summary.stat_name``)."""
        return "p" + f"{self.percentile:g}".replace(".", "_")

    @property
    def name(self) -> str:
        """The percentile for people: ``p95``, ``p99.9``."""
        return f"p{self.percentile:g}"

    @property
    def text(self) -> str:
        """The ``slo`` field: ``p95<=50ms``, one word, as ``--where slo==p95<=50ms`` takes it."""
        return f"{self.name}<={self.latency_ms:g}ms"

    def describe(self) -> str:
        """``p95 <= 50 ms``, as the serve cell's own messages say it."""
        return f"{self.name} <= {self.latency_ms:g} ms"

    def meets(self, latency_ms: float) -> bool:
        return latency_ms <= self.latency_ms * (1.0 + ROUNDING)


def slo_of(record: Mapping[str, Any]) -> Slo | None:
    """The record's own SLO, or None: none recorded, or a damaged one (see the module doc)."""
    serve = record.get("serve")
    block = serve.get("slo") if isinstance(serve, Mapping) else None
    if not isinstance(block, Mapping):
        return None
    percentile, latency = block.get("percentile"), block.get("latency_ms")
    if not (is_finite_number(percentile) and is_finite_number(latency)):
        return None
    if not 0 < percentile < 100 or latency <= 0:
        return None
    return Slo(float(percentile), float(latency))


def _probes(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = (record.get("serve") or {}).get("probes")
    return [p for p in found if isinstance(p, Mapping)] if isinstance(found, list) else []


def reported_probe(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The probe behind a serve cell's metrics: the highest offered rate that met the SLO
    (a search's max compliant rate), else its first probe (its one rate, or the single
    stream), as the serve cell chose it when it wrote the metrics."""
    probes = _probes(record)
    met = [p for p in probes if p.get("meets_slo") is True]
    if met:
        return max(
            met, key=lambda p: p["offered_qps"] if is_finite_number(p.get("offered_qps")) else 0
        )
    return probes[0] if probes else None


def slo_latency_ms(record: Mapping[str, Any], slo: Slo | None = None) -> float | None:
    """The cell's latency at its own SLO percentile, in ms, at its reported rate: from its
    ``request_latency_s`` metric where that holds the percentile, else from the reported
    probe's ``slo_latency_s``. None where unknown (no SLO, no probe, dropped requests at the
    percentile: infinitely late is no number)."""
    slo = slo or slo_of(record)
    if slo is None:
        return None
    metrics = record.get("metrics")
    entry = metrics.get("request_latency_s") if isinstance(metrics, Mapping) else None
    seconds = value_of(entry if isinstance(entry, dict) else None, slo.stat)
    if seconds is None:
        probe = reported_probe(record)
        found = probe.get("slo_latency_s") if probe is not None else None
        seconds = float(found) if is_finite_number(found) else None
    return seconds * 1e3 if seconds is not None and seconds >= 0 else None


def slo_met(record: Mapping[str, Any]) -> bool | None:
    """Whether an ``ok`` cell met its own SLO at its reported rate; None where it has no SLO,
    is not ``ok``, or neither its latency nor its probe's verdict is known. A latency lost to
    dropped requests is over any bound: the probe's verdict (``meets_slo``) says so."""
    slo = slo_of(record)
    if slo is None or record.get("status") != "ok":
        return None
    latency = slo_latency_ms(record, slo)
    if latency is not None:
        return slo.meets(latency)
    probe = reported_probe(record)
    verdict = probe.get("meets_slo") if probe is not None else None
    if isinstance(verdict, bool):
        return verdict
    return False if "slo_unmet" in (record.get("flags") or ()) else None


def verdict(record: Mapping[str, Any]) -> str:
    """The SLO column of tables: ``p95<=50ms ✓``, ``p95<=50ms ✗`` (``?`` unknown, as on a
    cell that is not ``ok``); empty without an SLO."""
    slo = slo_of(record)
    if slo is None:
        return ""
    met = slo_met(record)
    return f"{slo.text} {UNKNOWN if met is None else MET if met else MISSED}"


def distinct(records: Sequence[Mapping[str, Any]]) -> list[Slo]:
    """The different SLOs among ``records``, in first-seen order."""
    return list(dict.fromkeys(s for r in records if (s := slo_of(r)) is not None))


def describe_all(slos: Sequence[Slo]) -> str:
    """``p95 <= 50 ms`` or ``p95 <= 50 ms, p99 <= 100 ms``."""
    return ", ".join(s.describe() for s in slos)

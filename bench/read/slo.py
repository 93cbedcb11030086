"""A cell's own SLO, read from its record: what it promised, and whether it kept it.

A cell that served requests under load records the latency objective its scenario stated and,
per probed load, its figures at that percentile; its metrics hold the percentiles of the load it
reports. A serve cell's block is ``serve.slo`` (``percentile`` and ``latency_ms``, request
latency; probes' ``slo_latency_s``); a generate cell's is ``generate.slo`` (``percentile`` and
any of ``ttft_ms``, ``tpot_ms``, ``latency_ms``, each a limit its requests must meet; probes'
``slo_at``), and it met its SLO when every stated limit held. The reading side judges the cell
by that SLO, not by a limit typed again on the command line: a cell whose SLO is at p95 is
judged on its p95. This module turns a record into three fields (``bench.read.runset``
registers them for ``--where``, recommend, tables and frames):

- ``slo``: the objective as text, ``p95<=50ms`` (generate: ``ttft_p99<=500ms,tpot_p99<=50ms``);
- ``slo_latency_ms``: the cell's latency at its own SLO percentile, at its reported rate (the
  max compliant rate of a search, else the one rate offered, or the single stream); on a
  generate cell, its first stated limit's figure (``slo_at_ms`` has each);
- ``slo_met``: ``true``/``false``, judged on ``ok`` cells only (an invalid cell's numbers are not
  a verdict).

Whether a cell has an SLO is decided by its record (a usable slo block), never by its
workload's name. A record without one (any train or predict cell, a record older than SLOs) or
with a damaged one (a percentile outside (0, 100), a limit that is not a positive finite
number, no limit at all, a block of the wrong type) has no SLO: every field is unknown, and
nothing raises. Pure functions over plain records; no numpy, so ``bench --help`` can list the
fields.
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


# The limits an SLO may state, in the order they are shown: (name in the record's slo block,
# the word for people, the metric whose percentile it bounds). A serve cell states only the
# end-to-end latency; a generate cell any of the three (its ``generate.slo`` block).
LIMITS = (
    ("ttft_ms", "TTFT", "ttft_s"),
    ("tpot_ms", "TPOT", "tpot_s"),
    ("latency_ms", "latency", "request_latency_s"),
)
_WORD = {name: word for name, word, _ in LIMITS}
_METRIC = {name: metric for name, _, metric in LIMITS}
# The probe's ``slo_at`` keys of a generate cell (seconds), by limit.
_PROBE_KEY = {"ttft_ms": "ttft_s", "tpot_ms": "tpot_s", "latency_ms": "latency_s"}


@dataclass(frozen=True)
class Slo:
    """A latency objective at ``percentile``: each stated limit (ms) must hold there. A serve
    cell's states ``latency_ms`` (request latency); a generate cell's any of ``ttft_ms``,
    ``tpot_ms`` and ``latency_ms``. At least one is stated."""

    percentile: float
    latency_ms: float | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None

    @property
    def stat(self) -> str:
        """The percentile's key in a latency summary: ``p95``, ``p99_9`` (as the serve
        summary writes it, ``bench.serve.summary.stat_name``)."""
        return "p" + f"{self.percentile:g}".replace(".", "_")

    @property
    def name(self) -> str:
        """The percentile for people: ``p95``, ``p99.9``."""
        return f"p{self.percentile:g}"

    def limits(self) -> list[tuple[str, float]]:
        """The stated limits, ``(name, ms)``, in ``LIMITS`` order."""
        return [(n, v) for n, _, _ in LIMITS if (v := getattr(self, n)) is not None]

    @property
    def latency_only(self) -> bool:
        """Only the end-to-end latency is bounded (every serve SLO): the short forms."""
        return [n for n, _ in self.limits()] == ["latency_ms"]

    @property
    def text(self) -> str:
        """The ``slo`` field, one word as ``--where slo==...`` takes it: ``p95<=50ms``; a
        generate cell's ``ttft_p99<=500ms,tpot_p99<=50ms`` (named as the --where fields)."""
        if self.latency_only:
            return f"{self.name}<={self.latency_ms:g}ms"
        return ",".join(f"{n[:-3]}_{self.stat}<={v:g}ms" for n, v in self.limits())

    def describe(self) -> str:
        """``p95 <= 50 ms``, as the serve cell's own messages say it; ``p99 TTFT <= 500 ms and
        TPOT <= 50 ms`` as the generate cell's."""
        if self.latency_only:
            return f"{self.name} <= {self.latency_ms:g} ms"
        return f"{self.name} " + " and ".join(f"{_WORD[n]} <= {v:g} ms" for n, v in self.limits())

    def word(self, limit: str) -> str:
        """A limit for people: ``p99 TTFT``, or ``p95`` for a serve SLO's latency."""
        return self.name if self.latency_only else f"{_WORD[limit]} {self.name}"

    def meets(self, latency_ms: float, limit: str = "latency_ms") -> bool:
        bound = getattr(self, limit)
        return bound is not None and latency_ms <= bound * (1.0 + ROUNDING)


def _limit(block: Mapping[str, Any], name: str) -> float | bool | None:
    """A stated limit in ms, None where not stated, False where damaged."""
    value = block.get(name)
    if value is None:
        return None
    return float(value) if is_finite_number(value) and value > 0 else False


def _block(record: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """The record's slo block and the part of the record holding it (``serve``/``generate``)."""
    for part in ("serve", "generate"):
        holder = record.get(part)
        block = holder.get("slo") if isinstance(holder, Mapping) else None
        if isinstance(block, Mapping):
            return part, block
    return None


def slo_of(record: Mapping[str, Any]) -> Slo | None:
    """The record's own SLO, or None: none recorded, or a damaged one (see the module doc)."""
    found = _block(record)
    if found is None:
        return None
    part, block = found
    percentile = block.get("percentile")
    if not is_finite_number(percentile) or not 0 < percentile < 100:
        return None
    names = ("latency_ms",) if part == "serve" else tuple(_WORD)
    limits = {n: _limit(block, n) for n in names}
    if any(v is False for v in limits.values()) or all(v is None for v in limits.values()):
        return None
    return Slo(float(percentile), **limits)  # type: ignore[arg-type]


def _probes(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = _block(record)
    holder = record.get(found[0] if found else "serve")
    probes = holder.get("probes") if isinstance(holder, Mapping) else None
    return [p for p in probes if isinstance(p, Mapping)] if isinstance(probes, list) else []


def reported_probe(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The probe behind a cell's metrics: the highest offered rate that met the SLO (a
    search's max compliant rate), else its first probe (its one rate, or the single stream),
    as the cell chose it when it wrote the metrics. A generate cell's search also probed its
    offline load first, only to bound the search: that probe is not a candidate."""
    probes = _probes(record)
    generate = record.get("generate")
    if isinstance(generate, Mapping) and generate.get("search") is not None:
        probes = [p for p in probes if p.get("offered_qps") is not None] or probes
    met = [p for p in probes if p.get("meets_slo") is True]
    if met:
        return max(
            met, key=lambda p: p["offered_qps"] if is_finite_number(p.get("offered_qps")) else 0
        )
    return probes[0] if probes else None


def _at_ms(record: Mapping[str, Any], slo: Slo, limit: str) -> float | None:
    metrics = record.get("metrics")
    entry = metrics.get(_METRIC[limit]) if isinstance(metrics, Mapping) else None
    seconds = value_of(entry if isinstance(entry, dict) else None, slo.stat)
    if seconds is None:
        probe = reported_probe(record)
        if probe is None:
            return None
        at = probe.get("slo_at")
        if isinstance(at, Mapping):  # a generate probe: each limit's figure
            found = at.get(_PROBE_KEY[limit])
        else:  # a serve probe: its one latency
            found = probe.get("slo_latency_s") if limit == "latency_ms" else None
        seconds = float(found) if is_finite_number(found) else None
    return seconds * 1e3 if seconds is not None and seconds >= 0 else None


def slo_at_ms(record: Mapping[str, Any], slo: Slo | None = None) -> dict[str, float | None]:
    """Each stated limit's figure at the SLO percentile, in ms, at the reported load: from the
    metrics where they hold the percentile, else the reported probe's. None where unknown (no
    probe; failed or dropped requests at the percentile: infinitely late is no number)."""
    slo = slo or slo_of(record)
    if slo is None:
        return {}
    return {limit: _at_ms(record, slo, limit) for limit, _ in slo.limits()}


def slo_latency_ms(record: Mapping[str, Any], slo: Slo | None = None) -> float | None:
    """The cell's latency at its own SLO percentile, in ms, at its reported rate: a serve
    cell's request latency; a generate cell's figure of its first stated limit (TTFT, else
    TPOT, else end-to-end latency; ``slo_at_ms`` has each). None where unknown."""
    slo = slo or slo_of(record)
    if slo is None:
        return None
    return next(iter(slo_at_ms(record, slo).values()), None)


def slo_met(record: Mapping[str, Any]) -> bool | None:
    """Whether an ``ok`` cell met its own SLO at its reported rate (every stated limit held);
    None where it has no SLO, is not ``ok``, or neither its figures nor its probe's verdict
    is known. A figure lost to dropped requests is over any bound: the probe's verdict
    (``meets_slo``) says so."""
    slo = slo_of(record)
    if slo is None or record.get("status") != "ok":
        return None
    at = slo_at_ms(record, slo)
    if any(v is not None and not slo.meets(v, n) for n, v in at.items()):
        return False
    if all(v is not None for v in at.values()):
        return True
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

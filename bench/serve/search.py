"""The highest request rate that meets the SLO: a bracketing search over full measurements.

Between a low rate and a high one (in a serve cell: the offline throughput of the largest
bucket, which no server can beat), each probe is a complete, valid measurement at one rate
(``bench.serve.summary``). The bracket [highest rate that met the SLO, lowest that did not]
halves geometrically until its ends are within ``tolerance`` of each other; the answer is its
lower end, a rate that was measured to meet the SLO. Every probe is kept.

Where the low rate misses the SLO, the search steps down (a factor ``STEP_DOWN`` each time, at
most ``MAX_STEPS_DOWN`` times) before it says the SLO cannot be met, and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STEP_DOWN = 4.0
MAX_STEPS_DOWN = 2
MAX_PROBES = 24  # rates, not attempts
GROW = 2.0

Probe = Callable[[float], dict[str, Any]]


@dataclass
class SearchResult:
    max_qps: float | None  # None: no rate met the SLO
    bracket: tuple[float, float | None]  # (highest met, lowest missed); None: never missed
    probes: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""  # why max_qps is None, or a note on the bracket

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_qps": self.max_qps,
            "bracket_qps": list(self.bracket),
            "reason": self.reason,
            "probes": sorted(self.probes, key=lambda p: p["offered_qps"]),
        }


def search(
    probe: Probe,
    low: float,
    high: float,
    tolerance: float = 0.05,
    steps_down: int = MAX_STEPS_DOWN,
    hopeless: str = "",
    floor: float = 0.0,
    retries: int = 0,
    grow: int = 0,
) -> SearchResult:
    """The highest rate in [low, high] that ``probe`` finds meeting the SLO, to ``tolerance``.

    ``hopeless``: why no rate can meet the SLO, known beforehand (a single request alone takes
    longer than the SLO allows); the low rate is still measured, as evidence, but the search
    does not step down. ``floor``: the lowest rate a valid probe can have (below it the
    minimum queries do not fit in the time allowed); the search never steps below it.
    ``retries``: a rate that misses is measured up to this many more times, and counts as
    missed only if every attempt misses: on a shared machine a burst of other work inflates a
    p99 and nothing deflates one, so a single miss below a met rate is often the machine's.
    ``grow``: where ``high`` meets the SLO, up to this many rates ``GROW`` times higher each
    are tried, for a ``high`` that is an estimate rather than a bound (an endpoint's capacity
    measured by a Python client)."""
    if hopeless:
        steps_down = 0
    if not 0 < low < high:
        raise ValueError(f"search needs 0 < low < high (got {low}, {high})")
    probes: list[dict[str, Any]] = []

    def run(rate: float) -> bool:
        for attempt in range(1 + retries):
            found = probe(rate)
            found["attempt"] = attempt + 1
            probes.append(found)
            if found["meets_slo"]:
                return True
        return False

    met = low
    steps = 0
    while not run(met):
        if steps == steps_down or met / STEP_DOWN < floor:
            last = probes[-1]
            # A probe may say itself what it missed (generation: TTFT, TPOT, each limit).
            missed = last.get("slo_miss") or (
                f"the latency at the SLO percentile was {_ms(last['slo_latency_s'])}"
            )
            why = last["invalid_reason"] or (
                f"SLO not met at any rate tried: at {met:.4g} QPS, the lowest, {missed}"
            )
            if hopeless and not last["invalid_reason"]:
                why += f"; {hopeless}"
            return SearchResult(None, (0.0, met), probes, why)
        high, met = met, met / STEP_DOWN
        steps += 1
    missed: float | None = high
    if steps == 0 and run(high):
        met = high
        for _ in range(grow):
            if not run(met * GROW):
                missed = met * GROW
                break
            met *= GROW
        else:
            return SearchResult(
                met, (met, None), probes, "met the SLO at the top of the range searched"
            )
    assert missed is not None
    while missed / met > 1 + tolerance and len({p["offered_qps"] for p in probes}) < MAX_PROBES:
        mid = math.sqrt(met * missed)
        if run(mid):
            met = mid
        else:
            missed = mid
    note = "" if missed / met <= 1 + tolerance else f"stopped after {MAX_PROBES} probes"
    return SearchResult(met, (met, missed), probes, note)


def _ms(seconds: float | None) -> str:
    return "unanswered (dropped requests)" if seconds is None else f"{seconds * 1e3:.3g} ms"

"""When a measured difference is a claim: one notion of noise for compare, recommend,
``input_bound`` and the gate.

A 95% interval from one process's step times says how noisy *steps* are; it says nothing of the
variation between processes (allocation, thread placement, clock state, other jobs), which is
what a rerun meets. Two identical quickstart runs 50 minutes apart on a 2-core VM differed by
ratios of 0.65-1.18 with intervals under 2% wide, so "the interval excludes 1.00" alone called
most cells better or worse. Like criterion's ``noise_threshold`` and asv's ``factor``, a claim
also needs the whole interval beyond a noise threshold T: above ``1 + T`` or below
``1 / (1 + T)``, the band the gate uses (10% slower and 10% faster are the same distance from 1
in log scale). A band beyond 1 also excludes 1, so both conditions are this one test.

T, in order of precedence:

1. set by the user (``bench compare --noise 0.05``, ``bench recommend --noise``);
2. the spread between repeated processes where ``measure.repeats`` measured one: the largest
   relative difference between two processes' median step times of the compared cells
   (``max / min - 1``), i.e. what a rerun of the same cell has been seen to change;
3. ``DEFAULT_THRESHOLD``, the gate's default tolerance.

Pure arithmetic over records (plain dicts), so the runner (``input_bound``) and every reader
share it without importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

# The gate's default tolerance, and the default here when no repeats measured a spread. A/A
# pairs of quickstart on a shared 2-core VM (docs: the noise note of issue 12) moved cells by up
# to ~10% between runs; a smaller default would mark those as differences.
DEFAULT_THRESHOLD = 0.10

Source = Literal["set", "repeats", "default"]
Side = Literal["above", "below"]


@dataclass(frozen=True)
class Noise:
    """The threshold one claim was judged against, and where it came from."""

    threshold: float  # a fraction: 0.1 is 10%
    source: Source

    @property
    def why(self) -> str:
        return {
            "set": "set by --noise",
            "repeats": "spread between repeated processes",
            "default": "default; no repeats",
        }[self.source]

    def describe(self) -> str:
        """``10% (default; no repeats)``: what an output line says was used."""
        return f"{percent(self.threshold)} ({self.why})"


def percent(fraction: float) -> str:
    """0.1 -> "10%", 0.034 -> "3.4%"."""
    return f"{fraction * 100:.3g}%"


def check_threshold(value: float) -> float:
    """``value`` if it is a usable threshold; ValueError saying what is expected otherwise."""
    if not math.isfinite(value) or not 0 <= value < 10:
        raise ValueError(f"expected a finite fraction in [0, 10), e.g. 0.05 for 5%; got {value}")
    return value


def beyond(ci_lo: float, ci_hi: float, threshold: float) -> Side | None:
    """Where the interval of a ratio lies: wholly above ``1 + T`` ("above"), wholly below
    ``1 / (1 + T)`` ("below"), or neither (None: no claim)."""
    if ci_lo > 1.0 + threshold:
        return "above"
    if ci_hi < 1.0 / (1.0 + threshold):
        return "below"
    return None


def process_medians(record: Mapping[str, Any]) -> list[float]:
    """Each ok repeat's median step time (``measure.repeats`` keeps them under ``repeats``)."""
    found = []
    for repeat in record.get("repeats") or ():
        if not isinstance(repeat, Mapping) or repeat.get("status") != "ok":
            continue
        median = repeat.get("median_step_s")
        if isinstance(median, int | float) and math.isfinite(median) and median > 0:
            found.append(float(median))
    return found


def spread(medians: Sequence[float]) -> float | None:
    """``max / min - 1`` of per-process medians; None with fewer than two."""
    if len(medians) < 2:
        return None
    return max(medians) / min(medians) - 1.0


def noise_for(records: Iterable[Mapping[str, Any]], override: float | None = None) -> Noise:
    """The threshold for a claim about ``records`` (the cells compared; see the module
    docstring for the order of precedence)."""
    if override is not None:
        return Noise(check_threshold(override), "set")
    spreads = [s for r in records if (s := spread(process_medians(r))) is not None]
    if spreads:
        return Noise(max(spreads), "repeats")
    return Noise(DEFAULT_THRESHOLD, "default")


def summary(used: Iterable[Noise]) -> str:
    """One line saying which thresholds a set of claims used, for a legend."""
    found = sorted(set(used), key=lambda n: (n.source, n.threshold))
    if not found:
        return f"noise threshold {Noise(DEFAULT_THRESHOLD, 'default').describe()}"
    if len(found) == 1:
        return f"noise threshold {found[0].describe()}"
    from_repeats = [n.threshold for n in found if n.source == "repeats"]
    parts = []
    if from_repeats:
        lo, hi = min(from_repeats), max(from_repeats)
        span = percent(lo) if lo == hi else f"{percent(lo)}-{percent(hi)}"
        parts.append(f"{span} from the spread between repeated processes")
    parts += [n.describe() for n in found if n.source != "repeats"]
    return "noise threshold per cell: " + "; ".join(parts)

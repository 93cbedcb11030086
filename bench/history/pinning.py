"""Pinning a suspect to one commit with as few re-runs as the evidence allows.

The first stage gives a commit and a window it may really be in. One comparison of the pair
at the suspect (the commit before it against it) settles most; when that pair shows nothing,
the window's two ends are compared, and if they differ, the window is bisected against its
first end down to the first commit that differs from it: each step compares the window's
first end with its middle, and where that shows nothing, the middle with the window's end. Every
comparison is the caller's (``compare(i, j)``: a real interleaved re-run, or a simulated one
in ``.ci/history-bench``), so the counting here is the same in both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.history.judge import CLEARED, CONFIRMED, INCONCLUSIVE, Judgement

Compare = Callable[[int, int], Judgement]


@dataclass
class Pinned:
    status: str  # confirmed | cleared | inconclusive
    index: int | None = None  # where the new level starts, when confirmed
    judgement: Judgement | None = None  # the comparison that showed it (or last seen)
    comparisons: list[tuple[int, int, str]] = field(default_factory=list)


def _size(judged: Judgement) -> float:
    return abs(math.log(judged.ratio)) if judged.ratio and judged.ratio > 0 else 0.0


def pin(at: int, lo: int, hi: int, compare: Compare) -> Pinned:
    """Pin the change suspected at index ``at`` (window ``lo..hi``; ``lo >= 1``)."""
    result = Pinned(INCONCLUSIVE)

    def ask(i: int, j: int) -> Judgement:
        judged = compare(i, j)
        result.comparisons.append((i, j, judged.status))
        result.judgement = judged
        return judged

    first = ask(at - 1, at)
    if first.changed:
        result.status, result.index = CONFIRMED, at
        return result
    if lo == hi == at:
        result.status = first.status
        return result
    whole = ask(lo - 1, hi)
    if not whole.changed:
        result.status = whole.status
        return result
    shown, a, b = whole, lo, hi  # (lo - 1, b) differ; the first index that differs is in a..b
    while a < b:
        mid = (a + b) // 2
        left = ask(lo - 1, mid)
        if left.changed:
            shown, b = left, mid
            continue
        # Not shown before mid: a change after it shows between mid and the window's end. A
        # comparison can miss a real change (the gate's threshold widens to the runs'
        # spread), so when neither shows one, the larger measured change decides.
        right = ask(mid, hi)
        if right.changed or _size(right) > _size(left):
            a = mid + 1
        else:
            shown, b = left, mid
    result.status, result.index, result.judgement = CONFIRMED, a, shown
    return result


__all__ = ["CLEARED", "CONFIRMED", "INCONCLUSIVE", "Pinned", "pin"]

"""Which cells fit the device's memory, from the compiler's memory analysis, before measuring.

A probe compiles one cell and reads its compiled program's memory (JAX:
``compiled.memory_analysis()``, ``bench.measure.memory``) against the device's limit, without
running a step. Memory grows with the batch, so within a *memory group* (every axis but the
batch size) the cells that fit are the batches up to a boundary, and the largest batch that
fits is found by bisection over the group's batch sizes: about log2(n) compiles, not n runs
(the largest batch is probed first, so a group that fits whole costs one). A
measured cell tells the same (an ok cell fits; an oom cell does not), so measurements narrow
the boundary too.

A framework without a compiled memory analysis (TensorFlow) answers "unknown": its cells are
measured as they are, and an out-of-memory cell is recorded as ``oom`` like in ``bench run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.tune.space import BATCH, Space, TuneCell

# Axes that change nothing the device holds: the input arrives on the host and is fed to the
# same compiled step whatever made it; load and timeouts are the host's. A memory group ignores
# them, so one probe serves every value.
HOST_AXES = frozenset(
    {"input", "pipeline", "threads", "arrivals", "target_qps", "batch_timeout_ms", "endpoint"}
)
# Axes the device's memory grows with, besides the batch: K steps per call take K batches in one
# call. A cell fits where one with at least its batch and steps per call fits, and does not
# where one with at most both does not: one probe speaks for several groups. More: memory is a
# fixed part (weights, optimizer state) plus parts proportional to the batch and to the
# batches per call, so from a probe's bytes at (b, K) a cell at (b', K') needs at most
# bytes x (b'/b) x (K'/K) where it is larger on both, and at least that where it is smaller.
GROWS = ("steps_per_call",)


@dataclass(frozen=True)
class Probe:
    """A probe's answer: the compiled program's bytes and the device's limit (None: unknown),
    the device time it took, and why it could not tell where it could not. ``cached``: its
    program came from the tune's compilation cache, so ``seconds`` is no compile's time."""

    needed: float | None
    limit: float | None
    seconds: float
    reason: str = ""
    cached: bool = False

    @property
    def fits(self) -> bool | None:
        if self.needed is None or self.limit is None:
            return None
        return self.needed <= self.limit


@dataclass
class Group:
    """What is known of one memory group: batches below ``fit`` fit, from ``miss`` up don't."""

    batches: list[Any]
    fit: int = -1  # index of the largest batch known to fit
    miss: int | None = None  # index of the smallest batch known not to fit
    unknown: bool = False  # no memory analysis: every cell is measured as it is
    needed: dict[int, float] = field(default_factory=dict)  # probed bytes by index


class Memory:
    """Memory knowledge of a space; ``probe(cell)`` is the measurer's compile-only probe."""

    def __init__(self, space: Space, probe: Any, on_probe: Any = None):
        self.space = space
        self.probe = probe
        self.on_probe = on_probe  # called with (cell, Probe): device time and reports
        self.groups: dict[tuple[Any, ...], Group] = {}
        self.probes = 0
        self.ruled_out: set[str] = set()
        self.blind: set[str] = set()  # frameworks whose probes cannot tell
        self.limit: float | None = None
        # (the key's other axes, (batch, steps per call...), fits, bytes or None) of every
        # answer so far
        self.seen: list[tuple[tuple[str, ...], tuple[float, ...], bool, float | None]] = []

    def _base(self, cell: TuneCell) -> tuple[tuple[str, ...], tuple[float, ...]]:
        skip = {BATCH, *HOST_AXES, *GROWS}
        base = tuple(str(cell.key.get(a)) for a in self.space.axes if a not in skip)
        coords = tuple(float(cell.key.get(a) or 1) for a in (BATCH, *GROWS))
        return base, coords

    def _observe(self, cell: TuneCell, fits: bool, needed: float | None = None) -> None:
        self.seen.append((*self._base(cell), fits, needed))

    def _dominated(self, cell: TuneCell) -> bool | None:
        """What the answers so far say of ``cell`` (None: nothing), by ``GROWS``' rules."""
        base, coords = self._base(cell)
        for other, at, fits, needed in self.seen:
            if other != base:
                continue
            above = all(c >= a for a, c in zip(at, coords, strict=True))
            below = all(c <= a for a, c in zip(at, coords, strict=True))
            if (fits and below) or (not fits and above):
                return fits
            if needed is None or self.limit is None:
                continue
            scale = 1.0
            for a, c in zip(at, coords, strict=True):
                scale *= c / a
            if above and needed * scale <= self.limit:  # at most this much
                return True
            if below and needed * scale > self.limit:  # at least this much
                return False
        return None

    def _group(self, cell: TuneCell) -> tuple[tuple[Any, ...], Group, int | None]:
        ident = tuple(
            str(cell.key.get(a)) for a in self.space.axes if a != BATCH and a not in HOST_AXES
        )
        group = self.groups.get(ident)
        if group is None:
            values = self.space.values.get(BATCH) or [cell.value(BATCH)]
            group = self.groups[ident] = Group(list(values))
        batch = cell.value(BATCH)
        index = group.batches.index(batch) if batch in group.batches else None
        return ident, group, index

    def _ask(self, cell: TuneCell, group: Group, index: int) -> bool | None:
        found = self.probe(cell)
        self.probes += 1
        if self.on_probe is not None:
            self.on_probe(cell, found)
        if found.limit is not None:
            self.limit = found.limit
        if found.needed is not None:
            group.needed[index] = found.needed
        if found.fits is not None:
            self.seen.append((*self._base(cell), found.fits, found.needed))
        elif found.needed is None:
            # no analysis in this framework (TensorFlow): none of its cells is probed again
            self.blind.add(str(cell.key.get("framework")))
        return found.fits

    def known(self, cell: TuneCell) -> bool | None:
        """Whether ``cell`` fits as far as known without probing (None: not known)."""
        _, group, index = self._group(cell)
        if group.unknown or index is None or str(cell.key.get("framework")) in self.blind:
            return True
        if index <= group.fit:
            return True
        if group.miss is not None and index >= group.miss:
            return False
        return self._dominated(cell)

    def fits(self, cell: TuneCell) -> bool:
        """Whether ``cell`` may be measured: it fits, or no analysis can tell. A cell not
        known either way is probed itself (one compile); its bytes bound the rest of its
        group (``GROWS``)."""
        found = self.known(cell)
        if found is None:
            _, group, index = self._group(cell)
            assert index is not None
            answer = self._ask(cell, group, index)
            if answer is None:
                group.unknown = True
                return True
            self._bound(group, index, answer)
            found = answer
        if not found:
            self.ruled_out.add(cell.cell_id)
        return found

    @staticmethod
    def _bound(group: Group, index: int, fits: bool) -> None:
        if fits:
            group.fit = max(group.fit, index)
        else:
            group.miss = index if group.miss is None else min(group.miss, index)

    def _settle(self, cell: TuneCell, group: Group, low: int, high: int) -> bool:
        """Bound ``group`` by what earlier answers say of its batches ``low..high``; whether
        anything moved."""
        moved = False
        for index in range(low, high + 1):
            other = self.space.find({**cell.key, BATCH: group.batches[index]})
            known = self._dominated(other) if other is not None else None
            if known is not None and (index > group.fit if known else group.miss != index):
                before = (group.fit, group.miss)
                self._bound(group, index, known)
                moved = moved or before != (group.fit, group.miss)
        return moved

    def largest(self, cell: TuneCell) -> Any | None:
        """The largest batch of ``cell``'s memory group that fits, by bisection over the
        group's batch sizes (after one look at the largest)."""
        _, group, _ = self._group(cell)
        while not group.unknown:
            low = group.fit + 1
            high = (group.miss if group.miss is not None else len(group.batches)) - 1
            if low > high:
                break
            if self._settle(cell, group, low, high):
                continue  # the answers so far moved the bounds: no probe needed for those
            # The largest batch first: where it fits (a CPU, a small model) one compile settles
            # the whole group; then the upper middle of what is left.
            mid = high if group.fit < 0 and group.miss is None else (low + high + 1) // 2
            probe_cell = self.space.find({**cell.key, BATCH: group.batches[mid]})
            if probe_cell is None:  # a ragged grid: this batch is not in the group
                group.batches.pop(mid)
                if group.miss is not None and group.miss > mid:
                    group.miss -= 1
                continue
            known = self._dominated(probe_cell)
            answer = known if known is not None else self._ask(probe_cell, group, mid)
            if answer is None:
                group.unknown = True
                break
            self._bound(group, mid, answer)
        if group.unknown:
            return group.batches[-1]
        return group.batches[group.fit] if group.fit >= 0 else None

    def measured(self, cell: TuneCell, status: str) -> None:
        """What a measurement showed: an ok cell fits, an oom cell does not."""
        _, group, index = self._group(cell)
        if index is not None and status in ("ok", "oom"):
            self._bound(group, index, status == "ok")
            self._observe(cell, status == "ok")

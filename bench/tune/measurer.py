"""What the tune's decisions ask of a measurer; the real one and the simulated one provide it.

Records are run-folder records (``bench.runfolder``), so everything downstream (the race, the
final ``bench recommend`` decision, the report) reads simulated and real cells alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from bench.measure.timing import RunLength
from bench.read.runset import RunSet
from bench.tune.memory import Probe
from bench.tune.space import TuneCell


class Measurer(Protocol):
    def probe(self, cell: TuneCell) -> Probe:
        """Compile ``cell`` (never run it) and read its compiled program's memory."""

    def measure(
        self, cells: Sequence[TuneCell], rule: RunLength, fresh: bool = False
    ) -> list[tuple[dict[str, Any], float]]:
        """Measure each cell once, in this order, for ``rule``'s run length; ``fresh``: in
        processes other than any earlier measurement's (a round of the race). Each record (kept
        where the run's results are) with the device seconds it took."""

    def settle(self, records: Sequence[dict[str, Any]]) -> RunSet:
        """Keep these merged records as their cells' final ones; the cells as ``bench
        recommend`` reads them."""

"""What a report section is: an anchor, a title, when it applies, and how it renders.

A section reads one ``Context`` (the loaded runs and what every section shares, computed once
per report) and returns the blocks of ``bench.report.document``; it never writes HTML or
markdown, so every renderer shows it without a change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.read.runset import CellView, RunSet
from bench.report.document import Block


@dataclass(frozen=True)
class Context:
    """What every section reads, computed once per report."""

    runset: RunSet
    # The latest record of each cell per host (as ``bench recommend`` reads them): a cell
    # measured again on the same host in a later run shows once, with the later numbers.
    cells: list[CellView]
    superseded: int  # earlier records set aside for a later one
    letters: dict[str, str]  # run id -> the letter tables name the run by
    objective: str  # what the summary's recommendation optimises


def always(ctx: Context) -> bool:
    return True


@dataclass(frozen=True)
class ReportSection:
    """One section of the report, as listed in ``bench.report.sections.SECTIONS``.

    ``anchor`` is the section's id in the HTML (its link in the navigation bar): unique.
    ``applies`` says whether the report has the section at all for these runs; a section that
    applies to every report says what is missing inside it instead (a paragraph), so readers
    learn why, and reports of older runs keep the sections they had.
    """

    anchor: str
    title: str
    render: Callable[[Context], list[Block]]
    applies: Callable[[Context], bool] = always

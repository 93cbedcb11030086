"""The report's sections, in the order the report shows them: one module each, one line here.

``SECTIONS`` is the one list the report is built from (``bench.report.content.build``): each
entry is a ``ReportSection`` (``base.py``) with an anchor, a title, ``render(ctx)`` returning
blocks of ``bench.report.document``, and ``applies(ctx)`` for a section only some runs have.
A section kept outside this package (a plug-in, a test) joins with ``register(section)``, so
this package never imports its module: imports go one way, down the layers.
"""

from __future__ import annotations

from bench.report.sections import (
    all_cells,
    cost_energy,
    environment,
    generation,
    input_bound,
    mfu,
    pareto,
    parity,
    percentiles,
    problems,
    profiles,
    serving,
    summary,
    throughput,
)
from bench.report.sections.base import Context, ReportSection

__all__ = ["SECTIONS", "Context", "ReportSection", "register"]

SECTIONS: list[ReportSection] = [
    summary.SECTION,
    throughput.SECTION,
    percentiles.SECTION,
    cost_energy.SECTION,
    mfu.SECTION,
    pareto.SECTION,
    serving.SECTION,
    generation.SECTION,
    parity.SECTION,
    input_bound.SECTION,
    profiles.SECTION,
    problems.SECTION,
    all_cells.SECTION,
    environment.SECTION,
]


def register(section: ReportSection, *, before: str | None = None) -> None:
    """Add ``section`` to the report: at the end, or before the section anchored ``before``.

    An anchor is the section's HTML id and navigation link: a second section with one already
    taken, or ``before`` naming none, is an error rather than a report with a dead link.
    """
    anchors = [s.anchor for s in SECTIONS]
    if section.anchor in anchors:
        raise ValueError(f"report section {section.anchor!r} is already registered")
    if before is None:
        SECTIONS.append(section)
        return
    if before not in anchors:
        raise ValueError(
            f"no report section {before!r} to put {section.anchor!r} before; "
            f"expected one of: {', '.join(anchors)}"
        )
    SECTIONS.insert(anchors.index(before), section)

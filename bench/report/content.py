"""What a report says, independent of how it is written: every section of
``bench.report.sections.SECTIONS`` that applies to the loaded runs, in that order, as the
neutral structure of ``bench.report.document``.

Cells: where one host measured the same cell in several runs, the latest run's record is used
throughout (as ``bench recommend`` does), and the report says how many were set aside.
"""

from __future__ import annotations

from bench.read.compare import run_labels
from bench.read.recommend import latest_per_host
from bench.read.runset import RunSet
from bench.report import sections
from bench.report.document import Report, Section
from bench.report.sections import Context
from bench.text import join_words


def context(runset: RunSet, objective: str = "throughput") -> Context:
    """What every section reads, computed once."""
    cells, superseded = latest_per_host(runset.cells, runset)
    letters = dict(zip((r.run_id for r in runset.runs), run_labels(len(runset.runs)), strict=True))
    return Context(runset, cells, superseded, letters, objective)


def build(runset: RunSet, objective: str = "throughput") -> Report:
    """Every section that applies, from the runs given (in the order given)."""
    ctx = context(runset, objective)
    runs = [f"{ctx.letters[r.run_id]} = {r.run_id}" for r in runset.runs]
    subtitle = f"{len(runset.runs)} run(s): {join_words(runs)}"
    names = sorted({str(c.key.get("model")) for c in ctx.cells})
    # Looked up on the module each time, so a test can swap in a list with its own section.
    shown = [Section(s.anchor, s.title, s.render(ctx)) for s in sections.SECTIONS if s.applies(ctx)]
    return Report(f"bench report: {', '.join(names) or 'no cells'}", subtitle, shown)

"""What a tune did, for people and for ``run.json``: cells measured, probes, device time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.read.constraints import Constraint
from bench.tune.search import Outcome


def tune_meta(
    objective: str, constraints: Sequence[Constraint], budget: str, brief_s: float
) -> dict[str, Any]:
    """``run.json``'s ``tune`` entry: what was asked (the folder holds what was measured)."""
    return {
        "objective": objective,
        "constraints": [k.text for k in constraints],
        "budget": budget,
        "brief_s": brief_s,
    }


def summary_lines(outcome: Outcome, n_cells: int, path: Path | None = None) -> list[str]:
    race, memory, budget = outcome.race, outcome.memory, outcome.budget
    full = budget.full_s
    share = (
        f" ({budget.spent_s / full:.1%} of the full grid's, estimated {full:.0f} s)"
        if (full)
        else ""
    )
    lines = [
        f"measured {outcome.measured_cells} of {n_cells} cells in {outcome.measurements} "
        f"brief measurements and {outcome.rounds} rounds; {memory.probes} memory probes ruled "
        f"out {len(memory.ruled_out)} cells without running them",
        f"device time {budget.spent_s:.0f} s of a budget of {budget.total_s:.0f} s{share}",
        f"race: {race.eliminated} cells dropped as worse than the leader beyond noise "
        f"(threshold {race.threshold():.1%}); finalists: {', '.join(outcome.finalists)}",
    ]
    rec = outcome.recommendation
    for choice in rec.choices if rec is not None else ():
        if choice.winner is not None:
            tied = [choice.name(r.cell) for r in choice.tied]
            lines.append(
                f"tie set: {choice.name(choice.winner)}"
                + (f" with {', '.join(tied)} (within noise of it)" if tied else " alone")
            )
    if outcome.stopped:
        lines.append(f"stopped early: {outcome.stopped}")
    if path is not None:
        lines.append(f"run folder: {path} (bench compare / report / recommend read it)")
    return lines


def no_answer(outcome: Outcome) -> str:
    """Why a tune has no answer, for its exit-1 message."""
    entries = list(outcome.race.entries.values())
    unsure = outcome.race.guide([e for e in entries if e.unsure], dropped=True)
    if unsure:
        named = ", ".join(e.cell.cell_id for e in unsure[:3])
        return (
            f"no measured cell was shown to meet the limits within the budget: {len(unsure)} "
            f"not settled (best first: {named}; {unsure[0].unsure}); raise --budget"
        )
    if any(e.broken for e in entries):
        return (
            "every cell measured breaks a constraint (the search reached none that meets it); "
            "raise --budget or loosen --where"
        )
    return "no cell could be measured within the budget"

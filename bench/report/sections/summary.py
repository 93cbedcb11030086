"""Summary: what the runs hold, and the recommended configuration per model and workload."""

from __future__ import annotations

from bench.metrics import find_field
from bench.read.recommend import recommend
from bench.report.document import Block, Bullets, Heading, Paragraph, TableBlock
from bench.report.recommend import as_ranked, explain, ranking_rows
from bench.report.sections.base import Context, ReportSection
from bench.runfolder import STATUSES


def _counts(ctx: Context) -> Paragraph:
    statuses = [c.status for c in ctx.cells]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in STATUSES if s in statuses)
    hosts = sorted({h.label for h in ctx.runset.hosts})
    text = (
        f"{len(ctx.runset.runs)} run(s) on {len(hosts)} host(s) ({', '.join(hosts)}); "
        f"{len(ctx.cells)} cells: {counts or 'none'}."
    )
    if ctx.superseded:
        text += (
            f" {ctx.superseded} earlier record(s) of cells measured again on the same host are "
            "set aside for the latest run's."
        )
    return Paragraph(text)


def _recommendation(ctx: Context) -> list[Block]:
    rec = recommend(ctx.runset, ctx.objective)
    goal = rec.objective
    blocks: list[Block] = [
        Paragraph(
            f"Recommendation for {goal.name} ({goal.field}, "
            f"{'higher' if goal.maximize else 'lower'} is better{as_ranked(rec)}); rerun "
            "`bench recommend` with "
            f"--where to add constraints such as p99_ms<=50. A lead is beyond noise when its "
            f"whole 95% CI lies beyond the {rec.noise_rule}."
            # Serve cells that recorded an SLO are judged by it (bench.read.own_slo).
            + "".join(f" Constraint: {k.text}." for k in rec.implicit)
        )
    ]
    for choice in rec.choices:
        verdict = "recommended" if choice.winner is not None else "nothing qualifies"
        blocks.append(Heading(f"{choice.model} {choice.workload}: {verdict}"))
        if choice.common:
            blocks.append(Paragraph(f"Every cell: {choice.common}.", "muted"))
        blocks.append(Bullets(explain(choice)))
        rows = ranking_rows(choice)
        if rows:
            partner = find_field(goal.partner)[1].column
            blocks.append(
                TableBlock(
                    ["rank", "cell", goal.unit, partner, "winner's lead [95% CI]", "noise"],
                    [list(r) for r in rows],
                    [False, False, True, True, False, False],
                )
            )
    return blocks


def render(ctx: Context) -> list[Block]:
    return [_counts(ctx), *_recommendation(ctx)]


SECTION = ReportSection("summary", "Summary", render)

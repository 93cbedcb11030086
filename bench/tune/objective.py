"""What ``bench tune --objective`` optimises, and whether a scenario can measure it.

Every objective is one of ``bench recommend``'s (``bench.read.recommend.objectives``), so the
answer is judged by the same field. ``tokens_per_s`` is the one exception in naming: the field
that counts tokens depends on the workload, so it is looked up in ``TOKEN_FIELDS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.read.recommend import Objective, objectives

# The tokens-per-second field of each workload (bench.metrics field names). Sequence models'
# train and predict cells count tokens as batch x tokens per example / step time; a workload
# with its own token count (generation: output tokens/s) adds a line here.
TOKEN_FIELDS: dict[str, str] = {
    "train": "tokens_per_s",
    "predict": "tokens_per_s",
    "generate": "output_tokens_per_s",
}

NAMES = ("throughput", "cost", "latency", "serve_rate", "tokens_per_s")


class ObjectiveError(ValueError):
    """The scenario cannot measure what was asked; the message says why and what can."""


@dataclass(frozen=True)
class Target:
    """The objective as a recommend ``Objective``, with how its samples scale.

    ``per_step``: True when every timed step is a sample of the objective (throughput, cost,
    latency, tokens/s scale with the step time); False for ``serve_rate``, one value per
    process. ``rate``: the objective is proportional to 1 / step time (else to step time)."""

    objective: Objective
    per_step: bool
    rate: bool


def target(name: str, workload: str) -> Target:
    """The objective ``name`` for cells of ``workload``; ObjectiveError when it cannot apply."""
    known = objectives()
    if name == "tokens_per_s":
        field = TOKEN_FIELDS.get(workload)
        if field is None:
            raise ObjectiveError(
                f"--objective tokens_per_s: workload {workload!r} counts no tokens "
                f"(tokens/s is measured for workloads {', '.join(sorted(TOKEN_FIELDS))})"
            )
        base = known["throughput"]
        goal = Objective("tokens_per_s", field, True, "tokens/s", "tokens/s", base.partner, False)
        return Target(goal, per_step=True, rate=True)
    if name not in known or name not in NAMES:
        choices = ", ".join(n for n in NAMES if n in known or n == "tokens_per_s")
        raise ObjectiveError(f"--objective {name!r}: expected one of {choices}")
    if name == "serve_rate":
        if workload != "serve":
            raise ObjectiveError(
                f"--objective serve_rate: workload {workload!r} serves no requests; it needs "
                "workload: serve with target_qps: search"
            )
        return Target(known[name], per_step=False, rate=True)
    if workload == "serve":
        raise ObjectiveError(
            f"--objective {name}: serve cells are tuned for serve_rate (the highest rate "
            "meeting their SLO); use --objective serve_rate"
        )
    goal = known[name]
    return Target(goal, per_step=True, rate=goal.maximize)

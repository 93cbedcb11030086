"""Everything ``bench tune`` checks before it measures: the space, the objective, the budget.

Each failure is a one-line error the CLI prints with exit 2: an objective the scenario's
workload cannot measure, a space that constraints on the key leave empty, a budget that cannot
hold a single brief measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.measure.timing import RunLength
from bench.read.constraints import Constraint
from bench.run.scenario import LoadedScenario
from bench.tune import budget as budgets
from bench.tune.objective import Target, target
from bench.tune.search import brief_rule
from bench.tune.space import Space, TuneCell, build

# A measurement also starts a worker and compiles: a budget under this is refused whatever
# the run length says (JAX's import and first compile take several seconds on a small CPU).
WORKER_START_S = 3.0


@dataclass(frozen=True)
class Plan:
    space: Space
    target: Target
    budget: budgets.Budget
    rule: RunLength  # the scenario's own run length


def scenario_rule(loaded: LoadedScenario) -> RunLength:
    m = loaded.scenario.measure
    return RunLength(m.warmup_steps, m.min_steps, m.min_seconds, m.max_seconds, m.target_rel_ci)


def plan(
    loaded: LoadedScenario,
    objective: str,
    constraints: Sequence[Constraint],
    budget: str,
    brief_s: float,
) -> Plan:
    """Raises SpaceError, ObjectiveError or BudgetError (all ValueErrors) with the reason."""
    cells = [TuneCell(c.cell_id, c.key.to_dict()) for c in loaded.cells]
    space = build(cells, constraints, loaded.path)
    workload = str(space.cells[0].key.get("workload"))
    goal = target(objective, workload)
    rule = scenario_rule(loaded)
    spent = budgets.Budget(budgets.parse(budget), rule, [c.key for c in space.cells])
    one = brief_rule(rule, brief_s)
    spent.check_floor(WORKER_START_S + one.min_seconds)
    return Plan(space, goal, spent, rule)

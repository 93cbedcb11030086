"""``bench tune``: the configuration to deploy, found without measuring the whole grid."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

from bench.cli.common import (
    EXIT_USAGE,
    add_set_option,
    err,
    parse_where,
    print_error,
    where_help,
    wide_console,
)


def _on_event(console: Any):
    def on_event(kind: str, **data: Any) -> None:
        if kind == "cell_done":
            record = data["record"]
            console.print(f"  measured {record['cell_id']}: {record['status']}", highlight=False)
        elif kind == "probe":
            probe = data["probe"]
            verdict = {True: "fits", False: "does not fit", None: "unknown"}[probe.fits]
            console.print(
                f"  memory probe {data['cell'].cell_id}: {verdict} ({probe.seconds:.1f} s)",
                highlight=False,
            )

    return on_event


def cmd_tune(args: argparse.Namespace) -> int:
    from bench.report import recommend as render
    from bench.run.scenario import ScenarioError, load_scenario
    from bench.runfolder import ResultsError
    from bench.tune.objective import ObjectiveError
    from bench.tune.plan import plan
    from bench.tune.real import RealMeasurer
    from bench.tune.search import Settings, Tune
    from bench.tune.summary import no_answer, summary_lines, tune_meta

    constraints = parse_where(args.where)
    if constraints is None:
        return EXIT_USAGE
    try:
        loaded = load_scenario(args.scenario, args.set)
    except ScenarioError as exc:
        for problem in exc.problems:
            print_error(problem)
        return EXIT_USAGE
    try:
        planned = plan(loaded, args.objective, constraints, args.budget, args.brief)
    except ValueError as exc:
        print_error(f"bench tune: {exc}")
        return EXIT_USAGE
    console = wide_console()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    meta = tune_meta(args.objective, constraints, planned.budget.spec.text, args.brief)
    try:
        measurer = RealMeasurer(loaded, Path(args.results_dir), _on_event(console), meta)
    except ResultsError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    tune = Tune(
        planned.space, measurer, planned.target, constraints, planned.budget, planned.rule,
        Settings(brief_s=args.brief), _on_event(console),
    )  # fmt: skip
    status = "failed"
    try:
        outcome = tune.run()
        status = "complete"
    except ObjectiveError as exc:
        print_error(f"bench tune: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        measurer.writer.update(tune={**meta, "status": status})
        measurer.close(status)
    rec = outcome.recommendation
    for line in summary_lines(outcome, len(loaded.cells), measurer.path):
        console.print(line, highlight=False)
    if rec is None:
        err.print(f"bench tune: {no_answer(outcome)}", style="red")
        return 1
    from bench.read.runset import load_runs

    runset = load_runs([measurer.path])
    runset.cells = [c for c in runset.cells if c.cell_id in set(outcome.finalists)]
    console.print(render.to_text(rec, runset), highlight=False)
    if args.out and rec.choices and rec.choices[0].winner is not None:
        try:
            Path(args.out).write_text(render.to_deploy_yaml(rec, runset))
        except OSError as exc:
            print_error(f"cannot write {args.out}: {exc}")
            return EXIT_USAGE
        console.print(f"wrote {args.out}", highlight=False)
    return 0 if rec.complete else 1


def add_parsers(sub: Any) -> None:
    from bench.tune.budget import DEFAULT
    from bench.tune.objective import NAMES

    p = sub.add_parser(
        "tune",
        help="find the configuration to deploy without measuring the whole grid",
        description="Search the scenario's matrix for the best cell for an objective: cells "
        "that cannot fit the device's memory are ruled out from the compiler's memory analysis "
        "before any runs, cells are measured briefly in an order the grid's structure "
        "suggests, a cell leaves only when the gate's statistics show it worse than the leader "
        "beyond noise, and the survivors are measured again, interleaved. The answer is "
        "`bench recommend`'s over the survivors, with the cells it cannot tell apart; every "
        "measured cell is in the run folder. Exit 0 with an answer, 1 with none, 2 on bad "
        "input (an objective the scenario cannot measure, no cell left after --where, a "
        "budget too small for one measurement). docs/tune.md tells how.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=where_help(),
    )
    p.add_argument("scenario", metavar="SCENARIO", help="a scenario file: its matrix is the space")
    p.add_argument("--objective", choices=list(NAMES), default="throughput")
    p.add_argument(
        "--where", action="append", default=[], metavar="EXPR",
        help="a constraint the answer must meet (repeatable); on key fields (device==gpu) it "
        "narrows the space before anything runs",
    )  # fmt: skip
    p.add_argument(
        "--budget", default=DEFAULT,
        help=f"device time to spend: a share of the full grid's (estimated as cells are "
        f"measured), e.g. 10%%, or minutes, e.g. 30 (default {DEFAULT.replace('%', '%%')})",
    )  # fmt: skip
    p.add_argument(
        "--brief", type=float, default=1.0, metavar="SECONDS",
        help="seconds of timed steps in one brief measurement (at most the scenario's "
        "measure.min_seconds; default 1)",
    )  # fmt: skip
    p.add_argument("--results-dir", default="results", help="where the run folder goes")
    p.add_argument("--out", metavar="FILE", help="write the answer as deploy.yaml")
    add_set_option(p, "override a scenario field, as bench run --set")
    p.set_defaults(func=cmd_tune)

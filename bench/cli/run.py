"""Commands that measure: ``bench run``, ``bench validate``, ``bench schema``, ``bench data make``."""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.cli.common import EXIT_USAGE, bounded_int, err, input_error, out, pydantic_lines

PROFILE_STEPS = 1000  # what measure.profile.steps takes (bench.run.scenario.Profile)


def cmd_validate(args: argparse.Namespace) -> int:
    from bench.run.scenario import ScenarioError, load_scenario

    code = 0
    for path in args.files:
        try:
            loaded = load_scenario(path, args.set)
        except ScenarioError as exc:
            for problem in exc.problems:
                err.print(problem, style="red", highlight=False, markup=False)
            code = EXIT_USAGE
            continue
        out.print(f"{path}: valid, {len(loaded.cells)} cells", highlight=False)
    return code


def cmd_schema(args: argparse.Namespace) -> int:
    from bench.run.scenario import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def _on_event(progress: Progress, task_ref: dict[str, Any]):
    from bench.report.terminal import cell_line

    def on_event(kind: str, **data: Any) -> None:
        if kind == "start":
            resumed = (
                f", resuming after {data['resumed']} recorded cells" if "resumed" in data else ""
            )
            progress.console.print(f"run [bold]{data['run_id']}[/] -> {data['path']}{resumed}")
            task_ref["id"] = progress.add_task("starting", total=len(data["cells"]))
        elif kind == "worker_ready":
            ready = data["ready"]
            what = "ready" if ready["present"] else f"device not available: {ready['reason']}"
            progress.console.print(
                f"[dim]worker {data['framework']}/{data['device']} {what}[/]", highlight=False
            )
        elif kind == "tpu_node":
            node = data["node"]
            what = (
                f"{node.state}/{node.health}, {node.accelerator_type}"
                if node.usable
                else node.reason
            )
            progress.console.print(f"[dim]TPU node {node.name}: {what}[/]", highlight=False)
        elif kind == "cell_start":
            progress.update(task_ref["id"], description=data["cell"].cell_id)
        elif kind == "cell_done":
            progress.console.print(cell_line(data["record"]), highlight=False)
            progress.advance(task_ref["id"])
        elif kind == "repaired":  # a resume set aside a cut-off record before appending
            err.print(f"note: {data['message']}", highlight=False, markup=False)
        elif kind == "cell_updated":  # judged again once its synthetic twin finished
            progress.console.print(cell_line(data["record"]), highlight=False)

    return on_event


def cmd_run(args: argparse.Namespace) -> int:
    from bench.platform.cluster import ClusterError, resolve
    from bench.run.runner import start_run
    from bench.run.scenario import ScenarioError, load_scenario
    from bench.runfolder import ResultsError

    if bool(args.scenario) == bool(args.resume):
        err.print("bench run: give a SCENARIO file, or --resume RUN_DIR (not both)")
        return EXIT_USAGE
    try:
        cluster = resolve(args.coordinator, args.num_processes, args.process_id, args.worker_hosts)
    except ClusterError as exc:
        err.print(f"bench run: {exc}", style="red", highlight=False, markup=False)
        return EXIT_USAGE
    if cluster is not None and args.resume:
        # Each host recorded a different set of cells when it stopped: resuming would send the
        # processes into different cells, where each would wait for the others forever.
        err.print("bench run: --resume is single-host only; rerun a multi-host scenario whole")
        return EXIT_USAGE
    profile = (
        args.profile_steps if args.profile_steps is not None else (5 if args.profile else None)
    )
    if args.resume and (args.set or profile is not None):
        # A resumed run measures the scenario it was started with, so its cells stay one
        # experiment; run.json keeps that text and its overrides.
        err.print(
            "bench run: --set does not apply to --resume, nor does --profile (a resumed run "
            "keeps the scenario and overrides it started with); start a new run to change it",
            style="red",
            highlight=False,
            markup=False,
        )
        return EXIT_USAGE
    if args.resume:
        return _resume(args)
    loaded = None
    if args.scenario:
        sets = list(args.set)
        if profile is not None:
            # An override like any other, so run.json records it and a resume keeps it (and a
            # step count below 1 is refused by the scenario's own validation).
            sets.append(f"measure.profile.steps={profile}")
        try:
            loaded = load_scenario(args.scenario, sets)
        except ScenarioError as exc:
            for problem in exc.problems:
                err.print(problem, style="red", highlight=False, markup=False)
            err.print(f"{len(exc.problems)} problem(s); nothing was run.")
            return EXIT_USAGE
        if args.only:
            loaded = _select(loaded, args.only)
            if loaded is None:
                return EXIT_USAGE
        if args.dry_run:
            for cell in loaded.cells:
                out.print(cell.cell_id, highlight=False)
            out.print(f"{len(loaded.cells)} cells", highlight=False)
            return 0

    # SIGTERM (a CI job cancelled, `kill`) stops the run as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    task_ref: dict[str, Any] = {}
    with _progress() as progress:
        on_event = _on_event(progress, task_ref)
        try:
            outcome = start_run(
                loaded,
                Path(args.results_dir),
                on_event,
                cluster=cluster,
                only=[c.cell_id for c in loaded.cells] if args.only else None,
            )
        except (ResultsError, ScenarioError) as exc:
            err.print(str(exc), style="red", highlight=False, markup=False)
            return EXIT_USAGE
    code = _report_outcome(outcome)
    if args.history and outcome.status != "interrupted":
        return _add_to_history(args, outcome.run.path, code)
    return code


def _add_to_history(args: argparse.Namespace, path: Path, code: int) -> int:
    """``--history``: file the finished run under its commit; a history that cannot take it
    exits 2 whatever the run did, so a CI job notices the gap."""
    from bench.cli.history import add_runs, history_error
    from bench.history.store import HistoryError

    try:
        (added,) = add_runs([str(path)], args.db, args.results_dir, args.branch, None)
    except HistoryError as exc:
        return history_error("add", exc)
    out.print(
        f"history: {added.points} points at {added.commit[:12]}", highlight=False, markup=False
    )
    return code


def _select(loaded: Any, only: list[str]) -> Any:
    """The scenario with only the cells named by ``--only`` (ids as ``--dry-run`` lists them),
    in the scenario's order; None after printing the ids it does not have."""
    import dataclasses
    import difflib

    wanted = [c.strip() for item in only for c in item.split(",") if c.strip()]
    known = {c.cell_id for c in loaded.cells}
    unknown = [c for c in wanted if c not in known]
    for cell_id in unknown:
        close = difflib.get_close_matches(cell_id, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        err.print(
            f"bench run: --only: {loaded.path} has no cell {cell_id!r}{hint}; expected ids "
            "as bench run --dry-run lists them",
            style="red",
            highlight=False,
            markup=False,
        )
    if unknown or not wanted:
        if not wanted:
            err.print("bench run: --only: expected at least one cell id", style="red")
        return None
    chosen = set(wanted)
    return dataclasses.replace(loaded, cells=[c for c in loaded.cells if c.cell_id in chosen])


def _resume(args: argparse.Namespace) -> int:
    from bench.run.runner import plan_resume, resume_run
    from bench.runfolder import ResultsError

    try:
        plan = plan_resume(Path(args.resume), retry_failed=args.retry_failed)
    except ResultsError as exc:
        return input_error("run --resume", exc)
    run = plan.run
    if args.dry_run:
        for cell in plan.todo:
            out.print(cell.cell_id, highlight=False)
        out.print(
            f"{len(plan.todo)} of {len(plan.loaded.cells)} cells to run "
            f"({len(run.cells)} recorded); nothing was run",
            highlight=False,
        )
        return 0
    if not plan.todo:
        return _complete(run, args.retry_failed)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    task_ref: dict[str, Any] = {}
    with _progress() as progress:
        try:
            outcome = resume_run(
                Path(args.resume), _on_event(progress, task_ref), retry_failed=args.retry_failed
            )
        except ResultsError as exc:
            return input_error("run --resume", exc)
    if "id" not in task_ref:
        return _complete(outcome.run, args.retry_failed)  # completed by another process meanwhile
    return _report_outcome(outcome)


def _complete(run: Any, retry_failed: bool) -> int:
    """A resume with nothing to run: say so, write nothing, exit as the run did."""
    from bench.run.runner import exit_code
    from bench.runfolder import FAILED

    failed = sum(1 for r in run.cells.values() if r["status"] in FAILED)
    hint = (
        f"; {failed} failed (--retry-failed runs them again)" if failed and not retry_failed else ""
    )
    out.print(
        f"run {run.run_id} is complete: every planned cell has a record{hint}; nothing was run "
        f"and nothing changed in {run.path}",
        highlight=False,
        soft_wrap=True,
    )
    return exit_code(r["status"] for r in run.cells.values())


def _progress() -> Progress:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=out, transient=True)


def _report_outcome(outcome: Any) -> int:
    from bench.report.terminal import cells_table

    run = outcome.run
    out.print(cells_table(run, run.meta.get("cells_planned")))
    statuses = [r["status"] for r in run.cells.values()]
    summary = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    out.print(f"run {run.run_id} {outcome.status}: {summary or 'no cells'}", highlight=False)
    out.print(f"results: {run.path}", highlight=False)
    if outcome.status == "interrupted":
        out.print(f"interrupted; finish it with: bench run --resume {run.path}", highlight=False)
    return outcome.exit_code


def cmd_data_make(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bench.inputs.datafiles import DataError, make_for_model
    from bench.inputs.settings import DataFiles
    from bench.limits import MAX_SEED
    from bench.modeldef import ModelError
    from bench.run.scenario import ScenarioError, load_scenario

    def problem(message: str) -> int:
        err.print(f"bench data make: {message}", style="red", highlight=False, markup=False)
        return EXIT_USAGE

    if bool(args.models) == bool(args.scenario):
        return problem("give MODEL names, or --scenario FILE (not both)")
    flags = {
        "examples": args.examples,
        "shards": args.shards,
        "stored_image_size": args.stored_image_size,
        "jpeg_quality": args.jpeg_quality,
        "dir": args.dir,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        return problem(f"--seed: got {args.seed}; expected a whole number from 0 to {MAX_SEED}")
    if not args.scenario and args.set:
        return problem("--set: applies with --scenario only")
    try:
        if args.scenario:
            s = load_scenario(args.scenario, args.set).scenario
            jobs = [(s.model, s.model_args)]
            data = DataFiles(**{**s.data.model_dump(exclude_none=True), **given})
            seed = s.seed if args.seed is None else args.seed
        else:
            model_args = json.loads(args.model_args) if args.model_args else {}
            if not isinstance(model_args, dict):
                return problem("--model-args: expected a JSON object, e.g. '{\"hidden\": [64]}'")
            jobs = [(name, model_args) for name in args.models]
            data, seed = DataFiles(**given), args.seed or 0
    except ScenarioError as exc:
        for line in exc.problems:
            err.print(line, style="red", highlight=False, markup=False)
        return EXIT_USAGE
    except ValidationError as exc:
        flags_named = {k: "--" + k.replace("_", "-") for k in flags}
        for line in pydantic_lines(exc, flags_named):
            problem(line)
        return EXIT_USAGE
    except ValueError as exc:  # JSON, and integers of thousands of digits
        return problem(f"--model-args: not valid JSON ({exc})")

    for model, model_args in jobs:
        try:
            with out.status(f"{model}: making or checking data files..."):
                made = make_for_model(model, model_args, data, seed)
        except ModelError as exc:
            err.print(
                f"bench data make: {model}: {exc}", style="red", highlight=False, markup=False
            )
            return EXIT_USAGE
        except ValidationError as exc:
            for line in pydantic_lines(exc):
                problem(f"{model}: model_args.{line}")
            return EXIT_USAGE
        except DataError as exc:
            err.print(
                f"bench data make: {model}: {exc}", style="red", highlight=False, markup=False
            )
            return 1
        info = made.describe()
        how = f"made in {info['make_s']:.1f} s" if info["made"] else "found in the cache, checked"
        # One line per model, never wrapped: the folder is what users copy.
        print(
            f"{model} ({info['kind']}): {info['examples']} examples in {info['files']} files, "
            f"{info['bytes'] / 2**20:.1f} MiB, {how}: {info['dir']}"
        )
    return 0


def add_parsers(sub: Any) -> None:
    _add_run(sub)
    _add_validate_and_data(sub)


def _add_run(sub: Any) -> None:
    p = sub.add_parser("run", help="run a scenario's cells and write a run folder")
    p.add_argument("scenario", nargs="?", help="scenario YAML file")
    p.add_argument(
        "--results-dir", default="results", help="where run folders go (default: results)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario field, e.g. --set matrix.batch_size=[8,16] (repeatable)",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="CELL_ID,...",
        help="run only these cells of the scenario (ids as --dry-run lists them; repeatable); "
        "the run plans just these, so --resume finishes just these",
    )
    # A flag, and the step count in its own option: ``--profile [STEPS]`` with an optional
    # value took ``bench run --profile scenario.yaml``'s file for STEPS.
    p.add_argument(
        "--profile",
        action="store_true",
        help="after each cell's timed phase, trace 5 more steps under the framework's profiler "
        "into the run folder, with a time breakdown on the record (sets measure.profile.steps; "
        "docs/profiling.md)",
    )
    p.add_argument(
        "--profile-steps",
        type=bounded_int(1, PROFILE_STEPS),
        metavar="STEPS",
        help="trace STEPS steps instead of 5 (implies --profile)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="run only the cells RUN_DIR has no record of, with the scenario and overrides it "
        "started with (--set is refused; --dry-run lists those cells); a complete run is left "
        "as it is. One process at a time writes a run folder",
    )
    p.add_argument(
        "--retry-failed", action="store_true", help="with --resume: also rerun failed cells"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the cells that would run and exit, writing nothing",
    )
    history = p.add_argument_group("history (docs/history.md)")
    history.add_argument(
        "--history",
        action="store_true",
        help="add the finished run to the results history (bench history add)",
    )
    history.add_argument(
        "--db", metavar="URL_OR_FILE",
        help="with --history: the database (default $BENCH_DB, else RESULTS_DIR/history.sqlite)",
    )  # fmt: skip
    history.add_argument(
        "--branch", help="with --history: default $BENCH_BRANCH, $GITHUB_REF_NAME, else git's"
    )
    _add_multi_host(p)
    p.set_defaults(func=cmd_run)


def _add_multi_host(p: Any) -> None:
    from bench.limits import MAX_PROCESSES

    multi = p.add_argument_group(
        "multi-host",
        "run the same scenario on every host, each with its own --process-id; process 0 "
        "writes every host's figures (or set BENCH_COORDINATOR, BENCH_NUM_PROCESSES, "
        "BENCH_PROCESS_ID, BENCH_WORKER_HOSTS)",
    )
    multi.add_argument(
        "--coordinator", metavar="HOST:PORT", help="address of process 0 (JAX coordinator)"
    )
    multi.add_argument(
        "--num-processes",
        type=bounded_int(1, MAX_PROCESSES),
        metavar="N",
        help="processes in the job",
    )
    multi.add_argument(
        "--process-id",
        type=bounded_int(0, MAX_PROCESSES - 1),
        metavar="I",
        help="this process: 0..N-1",
    )
    multi.add_argument(
        "--worker-hosts",
        metavar="H0,H1,...",
        help="every process's host, in process-id order (TensorFlow needs each worker's "
        "address; default: all on the coordinator's host)",
    )


def _add_validate_and_data(sub: Any) -> None:
    p = sub.add_parser("validate", help="check scenario files (exit 0 valid, 2 invalid)")
    p.add_argument("files", nargs="+")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the scenario JSON Schema (for editor completion)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("data", help="data files for tfdata cells")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = data_sub.add_parser(
        "make",
        help="write a model's data files (deterministic from the seed) or find them in the cache",
        description="Write the sharded TFRecord files (and CSV for tabular data) that tfdata "
        "cells of a model read, into a cache folder named by a hash of every parameter; "
        "print where. Files already there are checked and reused.",
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help="registered model names")
    p.add_argument("--scenario", help="take model, model_args, seed and data: from a scenario")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --scenario: override a scenario field, as bench run does",
    )
    p.add_argument("--model-args", help="the model's options as JSON, e.g. '{\"image_size\": 64}'")
    p.add_argument("--examples", type=int, help="examples to write (default 2048)")
    p.add_argument("--shards", type=int, help="TFRecord files to split them into (default 8)")
    p.add_argument("--seed", type=int, help="default 0 (or the scenario's seed)")
    p.add_argument(
        "--stored-image-size", type=int, help="store JPEGs at this size (default: the model's)"
    )
    p.add_argument("--jpeg-quality", type=int, help="default 90")
    p.add_argument("--dir", help="cache root (default $BENCH_DATA_DIR or ~/.cache/bench/data)")
    p.set_defaults(func=cmd_data_make)

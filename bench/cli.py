"""The ``bench`` command: parse arguments, call the library, render. No logic lives here.

Exit codes: 0 every runnable cell succeeded; 1 some cell failed (failed, oom, timeout or
invalid); 2 usage or validation error; 3 nothing could run (every cell skipped); 130 the run
was interrupted (its finished cells are kept; ``bench run --resume RUN_DIR`` finishes it).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import __version__

EXIT_USAGE = 2
WHERE_HELP = """\
--where EXPR is FIELD OP VALUE, OP one of <= >= < > == != (text fields: == and != only,
alternatives joined by |, e.g. device==gpu|tpu). Fields:
{fields}
"""
out = Console()
if not out.is_terminal:
    # Piped into a log or a CI job: tables are read later, wide, rather than folded at 80.
    out = Console(width=160)
# Errors are never wrapped: a message names a file and line that tools and people grep for.
err = Console(stderr=True, soft_wrap=True)


def cmd_validate(args: argparse.Namespace) -> int:
    from bench.scenario import ScenarioError, load_scenario

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
    from bench.scenario import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def _on_event(progress: Progress, task_ref: dict[str, Any]):
    from bench.render import cell_line

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
        elif kind == "cell_updated":  # judged again once its synthetic twin finished
            progress.console.print(cell_line(data["record"]), highlight=False)

    return on_event


def cmd_run(args: argparse.Namespace) -> int:
    from bench.cluster import ClusterError, resolve
    from bench.render import cells_table
    from bench.results import ResultsError
    from bench.runner import resume_run, start_run
    from bench.scenario import ScenarioError, load_scenario

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
    loaded = None
    if args.scenario:
        try:
            loaded = load_scenario(args.scenario, args.set)
        except ScenarioError as exc:
            for problem in exc.problems:
                err.print(problem, style="red", highlight=False, markup=False)
            err.print(f"{len(exc.problems)} problem(s); nothing was run.")
            return EXIT_USAGE
        if args.dry_run:
            for cell in loaded.cells:
                out.print(cell.cell_id, highlight=False)
            out.print(f"{len(loaded.cells)} cells", highlight=False)
            return 0

    # SIGTERM (a CI job cancelled, `kill`) stops the run as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    task_ref: dict[str, Any] = {}
    with Progress(*columns, console=out, transient=True) as progress:
        on_event = _on_event(progress, task_ref)
        try:
            if loaded is not None:
                outcome = start_run(loaded, Path(args.results_dir), on_event, cluster=cluster)
            else:
                outcome = resume_run(Path(args.resume), on_event, retry_failed=args.retry_failed)
        except (ResultsError, ScenarioError) as exc:
            err.print(str(exc), style="red", highlight=False, markup=False)
            return EXIT_USAGE
    run = outcome.run
    out.print(cells_table(run, run.meta.get("cells_planned")))
    statuses = [r["status"] for r in run.cells.values()]
    summary = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    out.print(f"run {run.run_id} {outcome.status}: {summary or 'no cells'}", highlight=False)
    out.print(f"results: {run.path}", highlight=False)
    if outcome.status == "interrupted":
        out.print(f"interrupted; finish it with: bench run --resume {run.path}", highlight=False)
    return outcome.exit_code


def cmd_results(args: argparse.Namespace) -> int:
    from bench.render import cells_table, runs_table
    from bench.results import ResultsError, list_runs, load_run

    if args.run:
        try:
            run = load_run(args.run)
        except ResultsError as exc:
            err.print(str(exc), style="red", highlight=False, markup=False)
            return EXIT_USAGE
        out.print(cells_table(run, run.meta.get("cells_planned")))
        return 0
    runs = list_runs(args.results_dir)
    if not runs:
        out.print(f"no runs in {args.results_dir}/ yet: bench run scenarios/quickstart.yaml")
        return 0
    out.print(runs_table(runs))
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from bench.devices import inventory
    from bench.render import devices_table

    with out.status("asking each installed framework what it sees..."):
        found = inventory()
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        out.print(devices_table(found))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from bench.modeldef import load_model, registered_models

    models = Table(title="models", title_justify="left")
    models.add_column("name")
    models.add_column("description")
    for name in registered_models():
        models.add_row(name, load_model(name).DESCRIPTION)
    out.print(models)
    scenarios = Table(title=f"scenarios in {args.scenarios}/", title_justify="left")
    scenarios.add_column("file")
    scenarios.add_column("what it shows")
    for path in sorted(Path(args.scenarios).glob("*.yaml")):
        first = next(
            (ln.lstrip("# ").strip() for ln in path.read_text().splitlines() if ln.startswith("#")),
            "",
        )
        scenarios.add_row(str(path), first)
    out.print(scenarios)
    return 0


def cmd_selfcheck(args: argparse.Namespace) -> int:
    from bench.measure.overhead import run_in_subprocess

    with out.status("timing one compiled JAX step bare and through bench's timer..."):
        try:
            found = run_in_subprocess(args.steps, args.trials, args.size)
        except RuntimeError as exc:
            err.print(str(exc), style="red", markup=False)
            return 1
    verdict = "meets" if found["ratio"] >= 0.98 else "MISSES"
    out.print(
        f"step {found['step_ms']:.3f} ms on {found['device']} (jax {found['jax']}): bare loop "
        f"{found['bare_steps_per_s']:,.1f} steps/s, bench timer {found['bench_steps_per_s']:,.1f} "
        f"steps/s, ratio {found['ratio']:.3f} ({verdict} the 0.98 target; "
        f"{found['trials']} interleaved trials x {found['steps_per_trial']} steps)",
        highlight=False,
    )
    return 0


def _load_for_reading(paths: list[str], *, allow_repeats: bool = False):
    """Runs for the reading commands, or None after printing why (the caller exits 2)."""
    from bench.results import ResultsError
    from bench.runset import load_runs

    try:
        runset = load_runs(paths, allow_repeats=allow_repeats)
    except ResultsError as exc:
        err.print(str(exc), style="red", highlight=False, markup=False)
        return None
    for warning in runset.warnings:
        err.print(f"warning: {warning}", style="yellow", highlight=False, markup=False)
    return runset


def _constraints(expressions: list[str]):
    """Parsed --where options, or None after printing why (the caller exits 2)."""
    from bench.constraints import ConstraintError, parse_all

    try:
        return parse_all(expressions)
    except ConstraintError as exc:
        err.print(str(exc), style="red", highlight=False, markup=False)
        return None


def _warn_unmatched(constraints, runset) -> None:
    from bench.constraints import unmatched_words

    for warning in unmatched_words(constraints, runset.cells):
        err.print(f"warning: {warning}", style="yellow", highlight=False, markup=False)


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.compare import ComparisonError, compare
    from bench.constraints import select
    from bench.report import compare as render

    constraints = _constraints(args.where)
    runset = _load_for_reading(args.runs, allow_repeats=True)
    if constraints is None or runset is None:
        return EXIT_USAGE
    _warn_unmatched(constraints, runset)
    by = [a.strip() for a in args.by.split(",") if a.strip()] if args.by else None
    try:
        result = compare(runset, select(runset.cells, constraints), by=by)
    except ComparisonError as exc:
        err.print(str(exc), style="red", highlight=False, markup=False)
        return EXIT_USAGE
    if args.format == "table":
        # Piped output keeps whole rows (no wrapping to 80 columns); a terminal gets its width.
        console = out if out.is_terminal else Console(width=250)
        console.print(render.to_table(result), highlight=False)
    else:
        writer = {"md": render.to_markdown, "csv": render.to_csv, "json": render.to_json}
        sys.stdout.write(writer[args.format](result))
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from bench.recommend import recommend
    from bench.report import recommend as render

    constraints = _constraints(args.where)
    runset = _load_for_reading(args.runs)
    if constraints is None or runset is None:
        return EXIT_USAGE
    _warn_unmatched(constraints, runset)
    result = recommend(runset, args.objective, constraints)
    console = out if out.is_terminal else Console(width=250)
    console.print(render.to_text(result, runset), highlight=False)
    if args.out:
        if not any(c.winner is not None for c in result.choices):
            err.print(f"{args.out} not written: nothing to deploy", style="red")
        else:
            try:
                Path(args.out).write_text(render.to_deploy_yaml(result, runset))
            except OSError as exc:
                err.print(f"cannot write {args.out}: {exc}", style="red", markup=False)
                return EXIT_USAGE
            console.print(f"wrote {args.out}", highlight=False)
    # 1 when some (model, workload) has no cell meeting the constraints: scripts can tell.
    return 0 if result.complete else 1


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import content, html, markdown

    runset = _load_for_reading(args.runs)
    if runset is None:
        return EXIT_USAGE
    report = content.build(runset, args.objective)
    target = Path(args.output or f"report.{'md' if args.format == 'md' else 'html'}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if args.format == "md":
            written = markdown.write(report, target)
            out.print(
                f"wrote {target} and {len(written) - 1} plot(s) in {markdown.plots_dir(target)}",
                highlight=False,
            )
        else:
            target.write_text(html.render(report))
            out.print(f"wrote {target}", highlight=False)
    except OSError as exc:
        err.print(f"cannot write {target}: {exc}", style="red", markup=False)
        return EXIT_USAGE
    return 0


def _input_error(command: str, exc: Exception) -> int:
    """A file that cannot be used: one message per problem, exit 2, never a traceback."""
    for line in str(exc).splitlines():
        err.print(f"bench {command}: {line}", style="red", highlight=False, markup=False)
    return EXIT_USAGE


def cmd_baseline_save(args: argparse.Namespace) -> int:
    from bench.baseline import BaselineError, load_side, save_baseline

    try:
        side = load_side(args.runs, args.max_samples)
        path = save_baseline(side, args.output)
    except BaselineError as exc:
        return _input_error("baseline save", exc)
    for note in side.notes:
        err.print(f"note: {note}", highlight=False, markup=False)
    size = path.stat().st_size
    out.print(
        f"baseline {path}: {len(side.cells)} cells from run(s) {', '.join(side.run_ids)}, "
        f"{size / 1024:,.0f} KiB",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    from bench.baseline import METRICS, BaselineError, load_side
    from bench.gate_policy import PolicyError, build_config
    from bench.regression import GateError, run_gate
    from bench.report.gate import RENDERERS, render_markdown

    metrics = None
    if args.metric:
        metrics = list(METRICS) if "all" in args.metric else list(dict.fromkeys(args.metric))
    flags = {"threshold": args.threshold, "alpha": args.alpha, "min_samples": args.min_samples}
    try:
        config = build_config(args.policy, flags, METRICS)
        baseline = load_side(args.baseline, args.max_samples)
        candidate = load_side(args.candidate, args.max_samples)
        report = run_gate(baseline, candidate, config, metrics, strict_env=args.strict_env)
    except (BaselineError, PolicyError, GateError) as exc:
        return _input_error("gate", exc)
    sys.stdout.write(RENDERERS[args.format](report))
    sys.stdout.flush()
    if args.step_summary:
        try:
            with open(args.step_summary, "a") as f:
                f.write(render_markdown(report))
        except OSError as exc:
            return _input_error("gate", OSError(f"{args.step_summary}: cannot append ({exc})"))
    return report.exit_code


def cmd_export(args: argparse.Namespace) -> int:
    from bench.export import pytest_benchmark_json
    from bench.results import ResultsError, load_run

    try:
        run = load_run(args.run)
    except ResultsError as exc:
        return _input_error("export", exc)
    doc = pytest_benchmark_json(run, include_data=args.include_data)
    text = json.dumps(doc, indent=4) + "\n"
    try:
        Path(args.output).write_text(text)
    except OSError as exc:
        return _input_error("export", OSError(f"{args.output}: cannot write ({exc})"))
    out.print(
        f"{args.output}: {len(doc['benchmarks'])} benchmarks from run {run.run_id} "
        f"(pytest-benchmark format; compare with: pytest-benchmark compare {args.output})",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def _add_gate_parsers(sub: Any) -> None:
    from bench.baseline import MAX_SAMPLES, METRICS

    p = sub.add_parser("baseline", help="save a run as a baseline file for the gate")
    baseline_sub = p.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")
    s = baseline_sub.add_parser(
        "save",
        help="keep what the gate needs from one or more runs (pooled) in a small JSON file",
        description="Keep what the gate needs from one or more run folders (or baseline files), "
        "pooled per cell, in a JSON file small enough to commit.",
    )
    s.add_argument("runs", nargs="+", metavar="RUN", help="run folders or baseline files")
    s.add_argument(
        "-o", "--output", required=True, help="the file to write, e.g. baselines/ci.json"
    )
    s.add_argument(
        "--max-samples",
        type=int,
        default=MAX_SAMPLES,
        help=f"step times kept per cell and run, evenly thinned (default {MAX_SAMPLES})",
    )
    s.set_defaults(func=cmd_baseline_save)

    p = sub.add_parser(
        "gate",
        help="fail (exit 1) on a significant slowdown of the candidate against a baseline",
        description="Compare a candidate with a baseline per cell and metric. REGRESSED needs a "
        "significant one-sided Mann-Whitney U test (Holm-adjusted, p < alpha) AND the whole "
        "bootstrap interval of the ratio of medians beyond the threshold.",
        epilog="exit codes: 0 no regression (INCONCLUSIVE, INSUFFICIENT_DATA and advisory "
        "verdicts included), 1 at least one REGRESSED, 2 usage or input error",
    )
    p.add_argument(
        "--baseline", action="append", required=True, metavar="RUN_OR_FILE",
        help="a run folder or baseline file; repeat to pool several runs",
    )  # fmt: skip
    p.add_argument(
        "--candidate", action="append", required=True, metavar="RUN_OR_FILE",
        help="a run folder or baseline file; repeat to pool several runs",
    )  # fmt: skip
    p.add_argument(
        "--metric", action="append", choices=[*METRICS, "all"],
        help="metric to gate, repeatable (default step_time, or the policy file's metrics)",
    )  # fmt: skip
    for flag, kind, default in (
        ("--threshold", "T", "0.10"),
        ("--alpha", "ALPHA", "0.01"),
        ("--min-samples", "N", "10"),
    ):
        p.add_argument(
            flag, action="append", default=[], metavar=f"[CELL_GLOB=]{kind}",
            help=f"default {default}; with CELL_GLOB= only for matching cell ids (repeatable)",
        )  # fmt: skip
    p.add_argument("--policy", metavar="FILE.yaml", help="thresholds, metrics and per-cell rules")
    p.add_argument(
        "--strict-env", action="store_true",
        help="let verdicts fail the gate even when the environment differs or the machine is "
        "UNSTABLE",
    )  # fmt: skip
    p.add_argument("--format", choices=["text", "md", "json"], default="text")
    p.add_argument(
        "--step-summary", metavar="FILE",
        help='also append the markdown report to FILE (in GitHub Actions: "$GITHUB_STEP_SUMMARY")',
    )  # fmt: skip
    p.add_argument(
        "--max-samples", type=int, default=MAX_SAMPLES,
        help=f"step times used per cell and run, evenly thinned (default {MAX_SAMPLES})",
    )  # fmt: skip
    p.set_defaults(func=cmd_gate)

    p = sub.add_parser("export", help="write a run in another tool's format (pytest-benchmark)")
    p.add_argument("run", metavar="RUN", help="a run folder")
    p.add_argument("--format", choices=["pytest-benchmark"], default="pytest-benchmark")
    p.add_argument("-o", "--output", required=True, help="the JSON file to write")
    p.add_argument("--include-data", action="store_true", help="also write every raw step time")
    p.set_defaults(func=cmd_export)


def cmd_data_make(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bench.inputs.datafiles import DataError, make_for_model
    from bench.inputs.settings import DataFiles
    from bench.modeldef import ModelError
    from bench.scenario import ScenarioError, load_scenario

    if bool(args.models) == bool(args.scenario):
        err.print("bench data make: give MODEL names, or --scenario FILE (not both)")
        return EXIT_USAGE
    flags = {
        "examples": args.examples,
        "shards": args.shards,
        "stored_image_size": args.stored_image_size,
        "jpeg_quality": args.jpeg_quality,
        "dir": args.dir,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        if args.scenario:
            s = load_scenario(args.scenario, args.set).scenario
            jobs = [(s.model, s.model_args)]
            data = DataFiles(**{**s.data.model_dump(exclude_none=True), **given})
            seed = s.seed if args.seed is None else args.seed
        else:
            model_args = json.loads(args.model_args) if args.model_args else {}
            jobs = [(name, model_args) for name in args.models]
            data, seed = DataFiles(**given), args.seed or 0
    except ScenarioError as exc:
        for problem in exc.problems:
            err.print(problem, style="red", highlight=False, markup=False)
        return EXIT_USAGE
    except (ValidationError, json.JSONDecodeError) as exc:
        err.print(f"bench data make: {exc}", style="red", highlight=False, markup=False)
        return EXIT_USAGE

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
            for e in exc.errors():
                where = ".".join(str(p) for p in e["loc"])
                err.print(f"bench data make: {model}: model_args.{where}: {e['msg']}", style="red")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark ML training and batch prediction in TensorFlow and JAX on CPU, GPU and TPU.",
        epilog="exit codes: 0 ok, 1 a cell failed, 2 usage/validation error, 3 nothing could run, "
        "130 interrupted",
    )
    from bench.constraints import fields_help

    where_help = WHERE_HELP.format(fields=fields_help())
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        "--resume", metavar="RUN_DIR", help="run only the cells RUN_DIR has no record of"
    )
    p.add_argument(
        "--retry-failed", action="store_true", help="with --resume: also rerun failed cells"
    )
    p.add_argument("--dry-run", action="store_true", help="list the cells and exit")
    multi = p.add_argument_group(
        "multi-host",
        "run the same scenario on every host, each with its own --process-id; process 0 "
        "writes every host's figures (or set BENCH_COORDINATOR, BENCH_NUM_PROCESSES, "
        "BENCH_PROCESS_ID, BENCH_WORKER_HOSTS)",
    )
    multi.add_argument(
        "--coordinator", metavar="HOST:PORT", help="address of process 0 (JAX coordinator)"
    )
    multi.add_argument("--num-processes", type=int, metavar="N", help="processes in the job")
    multi.add_argument("--process-id", type=int, metavar="I", help="this process: 0..N-1")
    multi.add_argument(
        "--worker-hosts",
        metavar="H0,H1,...",
        help="every process's host, in process-id order (TensorFlow needs each worker's "
        "address; default: all on the coordinator's host)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check scenario files (exit 0 valid, 2 invalid)")
    p.add_argument("files", nargs="+")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the scenario JSON Schema (for editor completion)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("results", help="list runs, or show one run's cells")
    p.add_argument("run", nargs="?", help="a run folder to show")
    p.add_argument("--results-dir", default="results")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("devices", help="what each installed framework sees on this machine")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("selfcheck", help="measure the timer's overhead against a bare JAX loop")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--trials", type=int, default=7)
    p.add_argument("--size", type=int, default=256, help="matrix size (sets the step time)")
    p.set_defaults(func=cmd_selfcheck)

    p = sub.add_parser(
        "compare",
        help="side-by-side table of runs: cells matched by key, ratios with 95%% CIs",
        description="Match cells across runs and show each metric side by side, with the ratio "
        "to the first run and its 95%% bootstrap CI. Exit 0, or 2 on bad input.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=where_help,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders; the first is the baseline")
    p.add_argument(
        "--by",
        metavar="AXES",
        help="comma-separated axes to match cells on (default: every axis except those that "
        "differ between runs as a whole, e.g. device when run A is all cpu and B all gpu)",
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="EXPR",
        help="keep only cells where EXPR holds (repeatable), e.g. workload==predict",
    )
    p.add_argument("--format", choices=("table", "md", "csv", "json"), default="table")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "report",
        help="one self-contained HTML report (or markdown) of runs",
        description="Write a report of the runs: recommendation, throughput vs batch size, "
        "step-time percentiles, cost, energy, MFU, Pareto frontiers, problems and environments. "
        "HTML is one self-contained file (no network requests); --format md writes markdown for "
        "a CI job summary with the plots as SVG files beside it. Exit 0, or 2 on bad input.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders, from any machines")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="output file (default: report.html, or report.md with --format md)",
    )
    p.add_argument("--format", choices=("html", "md"), default="html")
    p.add_argument(
        "--objective",
        choices=("throughput", "cost", "energy", "latency"),
        default="throughput",
        help="what the summary's recommendation optimises",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "recommend",
        help="the configuration to deploy for an objective under constraints, and why",
        description="Pick the best cell per model and workload for an objective among the runs "
        "given (runs from different machines merge: each cell shows its host), under --where "
        "constraints. Exit 0 when every model/workload has a recommendation, 1 when some has "
        "no cell meeting the constraints (the closest cells are named), 2 on bad input.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=where_help,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders, from any machines")
    p.add_argument(
        "--objective",
        choices=("throughput", "cost", "energy", "latency"),
        default="throughput",
        help="throughput: most examples/s; cost: least USD per 1M examples; energy: least kWh "
        "per 1M examples; latency: lowest p99 step time (default: throughput)",
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="EXPR",
        help="a constraint every chosen cell must meet (repeatable), e.g. p99_ms<=50",
    )
    p.add_argument("--out", metavar="FILE", help="write the chosen configuration as YAML")
    p.set_defaults(func=cmd_recommend)

    _add_gate_parsers(sub)

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

    p = sub.add_parser("list", help="list models and scenarios")
    p.add_argument("--scenarios", default="scenarios")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

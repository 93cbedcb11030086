"""Commands that read run folders: ``bench results``, ``compare``, ``report``, ``recommend``, ``export``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.cli.common import (
    EXIT_USAGE,
    add_noise_option,
    err,
    input_error,
    load_for_reading,
    out,
    parse_where,
    warn_unmatched,
    where_help,
)


def cmd_results(args: argparse.Namespace) -> int:
    from bench.report.terminal import cells_table, runs_table
    from bench.runfolder import ResultsError, list_runs, load_run

    if args.where and (not args.runs or args.cell is not None):
        return input_error("results", ValueError("--where needs RUN folders and no --cell"))
    if args.cell is not None:
        return _one_cell(args)
    keep = _matching(args.runs, args.where) if args.where else None
    if args.where and keep is None:
        return EXIT_USAGE
    if args.format != "table":
        return _results_rows(args, keep)
    if args.runs:
        for path in args.runs:
            try:
                run = load_run(path)
            except ResultsError as exc:
                err.print(str(exc), style="red", highlight=False, markup=False)
                return EXIT_USAGE
            planned = run.meta.get("cells_planned") or list(run.cells)
            if keep is not None:
                planned = [c for c in planned if (run.run_id, c) in keep]
                if not planned:
                    out.print(f"{path}: no cell meets {' and '.join(args.where)}", highlight=False)
                    continue
            out.print(cells_table(run, planned))
        return 0
    if Path(args.results_dir).exists() and not Path(args.results_dir).is_dir():
        err.print(
            f"{args.results_dir}: is a file; expected the results folder (--results-dir)",
            style="red",
            highlight=False,
            markup=False,
        )
        return EXIT_USAGE
    runs = list_runs(args.results_dir)
    if not runs:
        out.print(f"no runs in {args.results_dir}/ yet: bench run scenarios/quickstart.yaml")
        return 0
    out.print(runs_table(runs))
    return 0


def _matching(paths: list[str], expressions: list[str]) -> set[tuple[str, str]] | None:
    """(run id, cell id) of the cells meeting every ``--where``; None after printing why not
    (a malformed expression, a damaged run: the caller exits 2)."""
    from bench.read.constraints import select

    constraints = parse_where(expressions)
    runset = load_for_reading(paths) if constraints is not None else None
    if constraints is None or runset is None:
        return None
    warn_unmatched(constraints, runset)
    return {(c.run_id, c.cell_id) for c in select(runset.cells, constraints)}


def _one_cell(args: argparse.Namespace) -> int:
    """``--cell ID``: one cell of one run in detail, its profile's breakdown included."""
    from bench.report.cell import cell_detail
    from bench.runfolder import ResultsError, load_run

    if len(args.runs) != 1:
        return input_error("results", ValueError("--cell needs exactly one RUN folder"))
    if args.format != "table":
        return input_error("results", ValueError("--cell shows a table; drop --format"))
    try:
        run = load_run(args.runs[0])
    except ResultsError as exc:
        return input_error("results", exc)
    record = run.cells.get(args.cell)
    if record is None:
        known = sorted(run.cells)
        listed = ", ".join(known[:8]) + (f" and {len(known) - 8} more" if len(known) > 8 else "")
        return input_error(
            "results",
            ValueError(f"{args.runs[0]}: no cell {args.cell!r}; its cells: {listed or 'none'}"),
        )
    out.print(cell_detail(record, args.runs[0]))
    return 0


def _results_rows(args: argparse.Namespace, keep: set[tuple[str, str]] | None) -> int:
    """``--format csv|json``: the rows of ``bench.results.load`` (one per cell), as written;
    ``keep``: only those cells (``--where``)."""
    import warnings

    from bench.results import ResultsError, load, rows

    if not args.runs:
        return input_error("results", ValueError(f"--format {args.format} needs a RUN folder"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # printed below, as every reading command does
            frame = load(args.runs)
    except ResultsError as exc:
        return input_error("results", exc)
    if keep is None:  # with --where, the runs were read (and warned about) once already
        for warning in frame.attrs["warnings"]:
            err.print(f"warning: {warning}", style="yellow", highlight=False, markup=False)
    else:
        frame = frame[[(r, c) in keep for r, c in zip(frame["run"], frame["cell_id"], strict=True)]]
    if args.format == "csv":
        sys.stdout.write(frame.to_csv(index=False, lineterminator="\n"))
    else:
        sys.stdout.write(json.dumps(rows(frame), indent=2) + "\n")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.read.compare import ComparisonError, compare
    from bench.read.constraints import select
    from bench.report import compare as render

    constraints = parse_where(args.where)
    runset = load_for_reading(args.runs, allow_repeats=True)
    if constraints is None or runset is None:
        return EXIT_USAGE
    warn_unmatched(constraints, runset)
    by = [a.strip() for a in args.by.split(",") if a.strip()] if args.by else None
    try:
        result = compare(runset, select(runset.cells, constraints), by=by, noise=args.noise)
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
    from bench.read.recommend import recommend
    from bench.report import recommend as render

    constraints = parse_where(args.where)
    runset = load_for_reading(args.runs)
    if constraints is None or runset is None:
        return EXIT_USAGE
    warn_unmatched(constraints, runset)
    result = recommend(runset, args.objective, constraints, noise=args.noise)
    for warning in result.warnings:  # a typed latency limit that is not the cells' own SLO
        err.print(f"warning: {warning}", style="yellow", highlight=False, markup=False)
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

    runset = load_for_reading(args.runs)
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


def cmd_export(args: argparse.Namespace) -> int:
    from bench.read.export import pytest_benchmark_json
    from bench.runfolder import ResultsError, load_run

    try:
        run = load_run(args.run)
    except ResultsError as exc:
        return input_error("export", exc)
    doc = pytest_benchmark_json(run, include_data=args.include_data)
    text = json.dumps(doc, indent=4) + "\n"
    try:
        Path(args.output).write_text(text)
    except OSError as exc:
        return input_error("export", OSError(f"{args.output}: cannot write ({exc})"))
    out.print(
        f"{args.output}: {len(doc['benchmarks'])} benchmarks from run {run.run_id} "
        f"(pytest-benchmark format; compare with: pytest-benchmark compare {args.output})",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def add_parsers(sub: Any) -> None:
    help_for_where = where_help()
    _add_results(sub)
    _add_compare(sub, help_for_where)
    _add_report(sub)
    _add_recommend(sub, help_for_where)
    _add_export(sub)


def _add_results(sub: Any) -> None:
    p = sub.add_parser(
        "results",
        help="list runs, or show one run's cells",
        description="Without RUN: list the runs in --results-dir. With RUN: its cells as a "
        "table, or with --format csv|json one row per cell (run, host, cell id, every axis, "
        "status, reason, flags and every metric field, as bench.results.load gives them). "
        "Exit 0, or 2 on bad input.",
    )
    p.add_argument(
        "runs", nargs="*", metavar="RUN", help="run folders to show (several: one table each)"
    )
    p.add_argument("--results-dir", default="results", help="where to list runs from")
    p.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="table: the terminal table; csv, json: one row per cell, columns as in "
        "bench.results.load (units: docs/results.md)",
    )
    p.add_argument(
        "--cell",
        metavar="ID",
        help="show one cell of RUN in detail: every metric, compilations while timed, and "
        "where the time goes (top ops, busy share) when it was profiled",
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="EXPR",
        help="with RUN: show only cells where EXPR holds (repeatable), e.g. slo_met==false",
    )
    p.set_defaults(func=cmd_results)


def _add_compare(sub: Any, help_for_where: str) -> None:
    p = sub.add_parser(
        "compare",
        help="side-by-side table of runs: cells matched by key, ratios with 95%% CIs",
        description="Match cells across runs and show each metric side by side, with the ratio "
        "to the first run and its 95% bootstrap CI. Exit 0, or 2 on bad input.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=help_for_where,
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
    add_noise_option(p, "a ratio is better/worse")
    p.set_defaults(func=cmd_compare)


def _add_report(sub: Any) -> None:
    from bench.metrics import objectives

    p = sub.add_parser(
        "report",
        help="one self-contained HTML report (or markdown) of runs",
        description="Write a report of the runs: recommendation, throughput vs batch size, "
        "step-time percentiles, cost, energy, MFU, Pareto frontiers, problems and environments. "
        "HTML is one self-contained file (no network requests); --format md writes markdown with "
        "the plots as SVG files in a folder beside it (a CI job summary shows its tables, not its "
        "plots: keep the HTML report as an artifact for those). Exit 0, or 2 on bad input.",
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
        choices=list(objectives()),
        default="throughput",
        help="what the summary's recommendation optimises",
    )
    p.set_defaults(func=cmd_report)


def _add_recommend(sub: Any, help_for_where: str) -> None:
    from bench.metrics import objectives

    p = sub.add_parser(
        "recommend",
        help="the configuration to deploy for an objective under constraints, and why",
        description="Pick the best cell per model and workload for an objective among the runs "
        "given (runs from different machines merge: each cell shows its host), under --where "
        "constraints. Serve cells that recorded an SLO are judged by their own SLO (a p95 SLO "
        "on their p95) unless a --where on a latency percentile or an slo field replaces it; "
        "a replacement that judges otherwise than a recorded SLO is warned about. "
        "Exit 0 when every model/workload has a recommendation, 1 when some has "
        "no cell meeting the constraints (the closest cells are named), 2 on bad input.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=help_for_where,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders, from any machines")
    p.add_argument(
        "--objective",
        choices=list(objectives()),
        default="throughput",
        help="; ".join(
            f"{name}: {'highest' if m.better == 'higher' else 'lowest'} {f.objective.label} "
            f"({f.objective.unit}, field {f.name})"
            for name, (m, f) in objectives().items()
            if f.objective is not None
        )
        + " (default: throughput)",
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="EXPR",
        help="a constraint every chosen cell must meet (repeatable), e.g. memory_gb<=16; one "
        "on a latency percentile (p99_ms<=50) replaces serve cells' own SLO",
    )
    p.add_argument("--out", metavar="FILE", help="write the chosen configuration as YAML")
    add_noise_option(p, "a lead is beyond noise")
    p.set_defaults(func=cmd_recommend)


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="write a run in another tool's format (pytest-benchmark)")
    p.add_argument("run", metavar="RUN", help="a run folder")
    p.add_argument("--format", choices=["pytest-benchmark"], default="pytest-benchmark")
    p.add_argument("-o", "--output", required=True, help="the JSON file to write")
    p.add_argument("--include-data", action="store_true", help="also write every raw step time")
    p.set_defaults(func=cmd_export)

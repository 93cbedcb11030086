"""``bench history``: results across commits in a database, and their confirmed changes.

``add`` and ``import`` file runs under their commits; ``show`` reads points back; ``changes``
runs the first stage of change detection over each series and lists the changes a re-run
confirmed; ``confirm`` re-runs the commits around each suspect, interleaved, and judges them by
the gate's rule. Every command takes ``--db`` (a SQLAlchemy URL or a SQLite file; default
``$BENCH_DB``, else ``RESULTS_DIR/history.sqlite``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.cli.common import EXIT_USAGE, err, out


def history_error(command: str, exc: Exception) -> int:
    err.print(f"bench history {command}: {exc}", style="red", highlight=False, markup=False)
    return EXIT_USAGE


def _open(args: argparse.Namespace, *, write: bool) -> Any:
    from bench.history.store import Store, resolve_url

    return Store.open(resolve_url(args.db, args.results_dir), write=write)


def add_runs(
    paths: list[str], db: str | None, results_dir: str, branch: str | None, commit: str | None
) -> list[Any]:
    """Add run folders to the history (what ``bench run --history`` calls too)."""
    from bench.history.ingest import add_paths, current_branch
    from bench.history.store import Store, resolve_url

    store = Store.open(resolve_url(db, results_dir), write=True)
    try:
        return add_paths(store, paths, branch or current_branch(), commit)
    finally:
        store.close()


def _print_added(done: list[Any], where: str) -> None:
    for a in done:
        what = f"{a.points} points" if a.added else "already in the history, nothing added"
        out.print(f"{a.run_id} at {a.commit[:12]}: {what}", highlight=False, markup=False)
    added = sum(a.added for a in done)
    out.print(f"{added} run(s) added to {where}", highlight=False, markup=False)


def cmd_add(args: argparse.Namespace) -> int:
    from bench.history.store import HistoryError, resolve_url, shown

    try:
        done = add_runs(args.runs, args.db, args.results_dir, args.branch, args.commit)
    except HistoryError as exc:
        return history_error("add", exc)
    _print_added(done, shown(resolve_url(args.db, args.results_dir)))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from bench.history.ingest import run_folders
    from bench.history.store import HistoryError, resolve_url, shown

    try:
        folders = run_folders(args.folder)
        done = add_runs([str(f) for f in folders], args.db, args.results_dir, args.branch, None)
    except HistoryError as exc:
        return history_error("import", exc)
    _print_added(done, shown(resolve_url(args.db, args.results_dir)))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from bench.history.read import load
    from bench.history.store import HistoryError

    try:
        df = load(
            args.db,
            results_dir=args.results_dir,
            metric=args.metric,
            branch=args.branch,
            where_=args.where,
            commits=args.commits,
        )
    except HistoryError as exc:
        return history_error("show", exc)
    if args.format == "csv":
        df.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        sys.stdout.write(df.to_json(orient="records", indent=1) + "\n")
    else:
        from bench.report.history import points_table

        out.print(points_table(df))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        metavar="URL_OR_FILE",
        help="the history database: a SQLAlchemy URL (postgresql+psycopg://user@host/db, "
        "bigquery://project/dataset) or a SQLite file (default: $BENCH_DB, else "
        "RESULTS_DIR/history.sqlite)",
    )
    p.add_argument("--results-dir", default="results", help="where the default SQLite file lives")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "history",
        help="results across commits in a database; changes confirmed by an interleaved re-run",
        description="Keep a point per (run, cell, metric) under its commit, find where a series "
        "changed, and confirm each change by re-running the two commits interleaved.",
        epilog="exit codes: 0 done, 1 (changes --fail-on-regression) a confirmed slowdown, "
        "2 usage, input or database error",
    )
    hsub = p.add_subparsers(dest="history_command", required=True, metavar="ACTION")
    a = hsub.add_parser("add", help="add run folders (adding a run twice adds nothing)")
    a.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    a.add_argument("--branch", help="default: $BENCH_BRANCH, $GITHUB_REF_NAME, else git's")
    a.add_argument("--commit", help="the commit measured, where run.json has none")
    _common(a)
    a.set_defaults(func=cmd_add)

    i = hsub.add_parser("import", help="add every run folder under a results folder")
    i.add_argument("folder", metavar="RESULTS_DIR")
    i.add_argument("--branch", help="default: $BENCH_BRANCH, $GITHUB_REF_NAME, else git's")
    _common(i)
    i.set_defaults(func=cmd_import)

    s = hsub.add_parser("show", help="the points: a table, CSV or JSON")
    s.add_argument("--metric", help="one metric (step_time, throughput, ...)")
    s.add_argument("--branch", help="one branch")
    s.add_argument(
        "--where", action="append", default=[], metavar="FIELD OP VALUE",
        help="keep rows where it holds, e.g. framework=jax or median<0.01 (repeatable)",
    )  # fmt: skip
    s.add_argument("--commits", metavar="A..B", help="from commit A through B (hash prefixes)")
    s.add_argument("--format", choices=["table", "csv", "json"], default="table")
    _common(s)
    s.set_defaults(func=cmd_show)
    _add_change_parsers(hsub)


def _add_change_parsers(hsub: Any) -> None:
    """``changes`` and ``confirm`` (added with the detector and the confirmation stage)."""


def results_dir_of(path: str) -> Path:
    return Path(path).parent

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


def _change_line(row: dict[str, Any]) -> str:
    ratio, suspected = row.get("ratio"), row["detail"].get("ratio")
    if ratio is not None and row.get("ci_lo") is not None:
        size = f"x{ratio:.3f} [{row['ci_lo']:.3f}, {row['ci_hi']:.3f}]"
    else:
        size = f"x{suspected:.3f} (first stage)" if suspected else "(given by hand)"
    return (
        f"{row['status']:<12} {row['cell_id']} {row['metric']}: {row['before_commit'][:12]}"
        f"..{row['after_commit'][:12]} {size}"
    )


def cmd_changes(args: argparse.Namespace) -> int:
    import json

    from bench.history import changes
    from bench.history.store import HistoryError

    try:
        store = _open(args, write=not args.no_detect)
        try:
            new = (
                []
                if args.no_detect
                else changes.detect(store, args.branch, args.metric or ["step_time"])
            )
            found = changes.rows(store, args.branch)
        finally:
            store.close()
    except HistoryError as exc:
        return history_error("changes", exc)
    shown = [
        r
        for r in found
        if r["status"] == "confirmed" or (args.suspects and r["status"] == "suspect")
    ]
    if args.format == "json":
        sys.stdout.write(json.dumps(shown, indent=1, default=str) + "\n")
    else:
        for row in shown:
            out.print(_change_line(row), highlight=False, markup=False)
        pending = sum(r["status"] == "suspect" for r in found)
        out.print(
            f"{sum(r['status'] == 'confirmed' for r in found)} confirmed change(s); "
            f"{len(new)} new suspect(s), {pending} awaiting bench history confirm",
            highlight=False,
        )
    slower = [r for r in shown if r["status"] == "confirmed" and _slower(r)]
    return 1 if args.fail_on_regression and slower else 0


def _slower(row: dict[str, Any]) -> bool:
    from bench.gate.baseline import METRICS

    metric = METRICS.get(row["metric"])
    ratio = row.get("ratio") or 1.0
    return ratio < 1 if metric is not None and metric.higher_is_better else ratio > 1


def _plant(args: argparse.Namespace, store: Any) -> None:
    """``--commits A..B --cell ID``: a suspect given by hand, recorded like a detected one."""
    from bench.history import changes
    from bench.history.store import HistoryError

    before, sep, after = (args.commits or "").partition("..")
    if not (sep and before and after and args.cell):
        raise HistoryError("--commits needs the form BEFORE..AFTER, and --cell the cell id")
    series = changes.Series(
        args.branch or "main", args.cell, (args.metric or ["step_time"])[0], [before, after], [], []
    )
    changes.record_suspect(store, series, 1, (1, 1), None)


def cmd_confirm(args: argparse.Namespace) -> int:
    from bench.history import changes
    from bench.history.confirm import confirm_one
    from bench.history.store import HistoryError

    try:
        store = _open(args, write=True)
        try:
            if args.commits:
                _plant(args, store)
            todo = [
                r for r in changes.rows(store, args.branch, changes.SUSPECT)
                if not args.cell or r["cell_id"] == args.cell
            ]  # fmt: skip
            for suspect in todo:
                pinned, window, runs = confirm_one(
                    suspect, Path(args.repo), args.scenario, args.rounds, args.threshold, args.keep
                )
                pair = (window[pinned.index - 1], window[pinned.index]) if pinned.index else None
                changes.record_judgement(
                    store, suspect, pinned.status, pair, pinned.judgement, pinned.comparisons
                )
                where = f"{pair[0][:12]}..{pair[1][:12]}" if pair else "-"
                j = pinned.judgement
                size = f"x{j.ratio:.3f} [{j.ci_lo:.3f}, {j.ci_hi:.3f}]" if j and j.ratio else ""
                out.print(
                    f"{pinned.status:<12} {suspect['cell_id']} {suspect['metric']} "
                    f"(suspected at {suspect['after_commit'][:12]}): {where} {size}; "
                    f"{len(pinned.comparisons)} comparison(s), {runs} runs",
                    highlight=False,
                    markup=False,
                )
                if j is not None and pinned.status != "confirmed":
                    out.print(f"  {j.reason}", highlight=False, markup=False)
            out.print(f"{len(todo)} suspect(s) judged", highlight=False)
        finally:
            store.close()
    except HistoryError as exc:
        return history_error("confirm", exc)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.gate.baseline import METRICS
    from bench.history import changes
    from bench.history.store import HistoryError
    from bench.report.trend import page

    try:
        store = _open(args, write=False)
        try:
            found = []
            for metric in args.metric or ["step_time"]:
                found += changes.series_of(store.point_rows(metric, args.branch))
            rows = changes.rows(store, args.branch)
        finally:
            store.close()
    except HistoryError as exc:
        return history_error("report", exc)
    units = {name: m.unit for name, m in METRICS.items()}
    target = Path(args.output)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page(found, rows, units, store.where))
    except OSError as exc:
        return history_error("report", OSError(f"{target}: cannot write ({exc})"))
    out.print(f"wrote {target}: {len(found)} series", highlight=False, markup=False)
    return 0


def _add_change_parsers(hsub: Any) -> None:
    from bench.cli.common import bounded_int

    r = hsub.add_parser(
        "report",
        help="the trend page: each series over commits with its intervals and changes (HTML)",
    )
    r.add_argument("-o", "--output", default="history.html", help="default history.html")
    r.add_argument("--branch", help="one branch (default: every branch)")
    r.add_argument("--metric", action="append", default=None, help="default step_time; repeatable")
    _common(r)
    r.set_defaults(func=cmd_report)

    c = hsub.add_parser(
        "changes",
        help="find suspected changes in every series; list the confirmed ones",
        description="Run the first stage of change detection over every series (recording new "
        "suspects for bench history confirm) and list the changes a re-run confirmed, with "
        "their size (after / before) and its 95%% interval.",
    )
    c.add_argument("--branch", help="one branch (default: every branch)")
    c.add_argument(
        "--metric", action="append", default=None,
        help="series of this metric (default step_time; repeatable)",
    )  # fmt: skip
    c.add_argument("--suspects", action="store_true", help="also list unconfirmed suspects")
    c.add_argument("--no-detect", action="store_true", help="list only; record nothing")
    c.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 1 when a confirmed change is a slowdown",
    )
    c.add_argument("--format", choices=["table", "json"], default="table")
    _common(c)
    c.set_defaults(func=cmd_changes)

    f = hsub.add_parser(
        "confirm",
        help="re-run the commits around each suspect, interleaved, and judge by the gate's rule",
        description="For each suspect: check out the commits it needs from REPO as git "
        "worktrees, run the suspect's cell of SCENARIO at two commits in turn (A B A B ...), "
        "and judge them by the gate's rule; pin the change to one commit.",
    )
    f.add_argument("--repo", default=".", help="the git repository the commits are in (default .)")
    f.add_argument(
        "--scenario", required=True, help="the scenario file, as a path inside the repository"
    )
    f.add_argument("--branch", help="suspects of one branch (default: every branch)")
    f.add_argument(
        "--rounds", type=bounded_int(1, 20), default=3,
        help="runs of each commit per comparison (default 3; as many again when inconclusive)",
    )  # fmt: skip
    f.add_argument(
        "--threshold", type=float,
        help="the gate's threshold (default: half the suspected change, at least 0.01)",
    )  # fmt: skip
    f.add_argument("--commits", metavar="BEFORE..AFTER", help="judge this pair (with --cell)")
    f.add_argument("--cell", help="the cell of --commits; alone, only that cell's suspects")
    f.add_argument(
        "--metric", action="append", default=None, help="with --commits (default step_time)"
    )
    f.add_argument("--keep", type=Path, metavar="DIR", help="keep the runs made under DIR")
    _common(f)
    f.set_defaults(func=cmd_confirm)

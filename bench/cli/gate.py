"""Commands that decide: ``bench baseline save`` and ``bench gate``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.cli.common import bounded_int, err, input_error, out


def cmd_baseline_save(args: argparse.Namespace) -> int:
    from bench.gate.baseline import BaselineError, load_side, save_baseline

    try:
        side = load_side(args.runs, args.max_samples)
        path = save_baseline(side, args.output)
    except BaselineError as exc:
        return input_error("baseline save", exc)
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
    from bench.gate.baseline import METRICS, BaselineError, load_side
    from bench.gate.policy import PolicyError, build_config
    from bench.gate.regression import GateError, run_gate
    from bench.report.gate import RENDERERS, render_markdown

    metrics = None
    if args.metric:
        metrics = list(METRICS) if "all" in args.metric else list(dict.fromkeys(args.metric))
    flags = {"threshold": args.threshold, "alpha": args.alpha, "min_samples": args.min_samples}
    try:
        config = build_config(args.policy, flags, METRICS)
        candidate = load_side(args.candidate, args.max_samples)
        if any(b.startswith("history:") for b in args.baseline):
            baseline = _history_baseline(args, candidate)
        else:
            baseline = load_side(args.baseline, args.max_samples)
        report = run_gate(baseline, candidate, config, metrics, strict_env=args.strict_env)
    except (BaselineError, PolicyError, GateError) as exc:
        return input_error("gate", exc)
    sys.stdout.write(RENDERERS[args.format](report))
    sys.stdout.flush()
    if args.step_summary:
        try:
            with open(args.step_summary, "a") as f:
                f.write(render_markdown(report))
        except OSError as exc:
            return input_error("gate", OSError(f"{args.step_summary}: cannot append ({exc})"))
    return report.exit_code


def _history_baseline(args: argparse.Namespace, candidate: Any) -> Any:
    """``--baseline history:BRANCH``: the branch's runs since each cell's last confirmed
    change, from the results history (bench.history.baseline)."""
    from bench.gate.baseline import BaselineError

    if len(args.baseline) != 1:
        raise BaselineError("--baseline history:BRANCH cannot be pooled with other baselines")
    try:
        from bench.history.baseline import side
        from bench.history.store import HistoryError, Store, resolve_url
    except ImportError as exc:
        raise BaselineError(f"--baseline history: needs bench[history] ({exc})") from None
    try:
        store = Store.open(resolve_url(args.db, args.results_dir), write=False)
        try:
            return side(store, args.baseline[0], exclude=candidate.run_ids)
        finally:
            store.close()
    except HistoryError as exc:
        raise BaselineError(str(exc)) from None


def add_parsers(sub: Any) -> None:
    from bench.gate.baseline import MAX_SAMPLES, METRICS
    from bench.limits import MAX_GATE_SAMPLES

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
        type=bounded_int(1, MAX_GATE_SAMPLES),
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
        help="a run folder or baseline file; repeat to pool several runs; or history:BRANCH, "
        "the branch's runs since each cell's last confirmed change (docs/history.md)",
    )  # fmt: skip
    p.add_argument(
        "--db", metavar="URL_OR_FILE",
        help="with history:BRANCH: the history database (default $BENCH_DB, else "
        "RESULTS_DIR/history.sqlite)",
    )  # fmt: skip
    p.add_argument("--results-dir", default="results", help="where the default history lives")
    p.add_argument(
        "--candidate", action="append", required=True, metavar="RUN_OR_FILE",
        help="a run folder or baseline file; repeat to pool several runs",
    )  # fmt: skip
    p.add_argument(
        "--metric", action="append", choices=[*METRICS, "all"],
        help="metric to gate, repeatable (default: the policy file's metrics, else each cell's "
        "workload's: step_time; ttft, tpot and tokens_per_s on generate cells)",
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
        "--max-samples", type=bounded_int(1, MAX_GATE_SAMPLES), default=MAX_SAMPLES,
        help=f"step times used per cell and run, evenly thinned (default {MAX_SAMPLES})",
    )  # fmt: skip
    p.set_defaults(func=cmd_gate)

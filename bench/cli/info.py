"""Commands about this machine and this install: ``bench devices``, ``list``, ``selfcheck``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.cli.common import bounded_int, err, out


def cmd_devices(args: argparse.Namespace) -> int:
    from bench.report.terminal import devices_table
    from bench.run.devices import inventory

    with out.status("asking each installed framework what it sees..."):
        found = inventory()
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        out.print(devices_table(found))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from bench.limits import InputFileError, read_text_file
    from bench.modeldef import load_model, registered_models
    from bench.workloads import registry as workloads

    models = Table(title="models", title_justify="left")
    models.add_column("name")
    models.add_column("description")
    for name in registered_models():
        models.add_row(name, load_model(name).DESCRIPTION)
    out.print(models)
    kinds = Table(title="workloads", title_justify="left")
    kinds.add_column("name")
    kinds.add_column("what a cell does")
    for name in workloads.names():
        kinds.add_row(name, workloads.spec(name).help)
    out.print(kinds)
    scenarios = Table(title=f"scenarios in {args.scenarios}/", title_justify="left")
    scenarios.add_column("file")
    scenarios.add_column("what it shows")
    for path in sorted(Path(args.scenarios).glob("*.yaml")):
        try:
            lines = read_text_file(path, "a scenario file").splitlines()
        except InputFileError as exc:  # listed with why, so the other scenarios still show
            scenarios.add_row(str(path), f"unreadable: {str(exc).removeprefix(f'{path}: ')}")
            continue
        first = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("#")), "")
        scenarios.add_row(str(path), first)
    out.print(scenarios)
    return 0


def cmd_selfcheck(args: argparse.Namespace) -> int:
    import importlib.util

    from bench.backends import registry
    from bench.measure.overhead import run_in_subprocess

    chosen = registry.names() if args.framework == "all" else [args.framework]
    code = 0
    for framework in chosen:
        # Each backend's self-check runs in its own child process (the CLI imports no framework).
        module = registry.module(framework, "selfcheck")
        if importlib.util.find_spec(module) is None:  # optional part of a backend
            out.print(f"{framework}: its backend has no self-check, skipped", highlight=False)
            continue
        if importlib.util.find_spec(registry.spec(framework).packages[0]) is None:
            out.print(f"{framework}: not installed, skipped", highlight=False)
            continue
        with out.status(f"timing one compiled {framework} step bare and through bench's loop..."):
            try:
                found = run_in_subprocess(args.steps, args.trials, args.size, module)
            except RuntimeError as exc:
                err.print(f"{framework}: {exc}", style="red", markup=False)
                code = 1
                continue
        verdict = "meets" if found["ratio"] >= 0.98 else "MISSES"
        out.print(
            f"{framework} {found['version']}: step {found['step_ms']:.3f} ms on "
            f"{found['device']}: bare loop {found['bare_steps_per_s']:,.1f} steps/s, bench "
            f"{found['bench_steps_per_s']:,.1f} steps/s, ratio {found['ratio']:.3f} ({verdict} "
            f"the 0.98 target; median of {found['trials']} interleaved trials x "
            f"{found['steps_per_trial']} steps)",
            highlight=False,
        )
    return code


def add_parsers(sub: Any) -> None:
    from bench.limits import MAX_SELFCHECK_SIZE, MAX_SELFCHECK_STEPS, MAX_SELFCHECK_TRIALS

    p = sub.add_parser("devices", help="what each installed framework sees on this machine")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser(
        "selfcheck", help="measure bench's loop overhead against a plain loop, per framework"
    )
    p.add_argument("--steps", type=bounded_int(1, MAX_SELFCHECK_STEPS), default=300)
    p.add_argument("--trials", type=bounded_int(1, MAX_SELFCHECK_TRIALS), default=7)
    p.add_argument(
        "--size",
        type=bounded_int(1, MAX_SELFCHECK_SIZE),
        default=256,
        help="matrix size / MLP width (sets the step time)",
    )
    from bench.backends.registry import names

    p.add_argument("--framework", choices=["all", *names()], default="all")
    p.set_defaults(func=cmd_selfcheck)

    p = sub.add_parser("list", help="list models and scenarios")
    p.add_argument("--scenarios", default="scenarios")
    p.set_defaults(func=cmd_list)

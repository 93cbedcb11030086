"""The example GitHub Actions workflow stays in step with the CLI it documents."""

from __future__ import annotations

import re
import shlex

import yaml

from bench.cli import build_parser
from tests.conftest import REPO

WORKFLOW = REPO / ".github" / "examples" / "bench-gate.yml"


def test_example_workflow_is_not_active_and_its_bench_commands_parse():
    assert not (REPO / ".github" / "workflows" / "bench-gate.yml").exists()
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["gate"]["steps"]
    commands = [s["run"] for s in steps if "run" in s and s["run"].startswith("bench ")]
    assert [c.split()[1] for c in commands] == ["run", "gate", "baseline"]
    parser = build_parser()
    for command in commands:
        # shell substitutions stand for a run folder
        argv = shlex.split(re.sub(r'"\$\(.*?\)"', "results/run", command))[1:]
        argv = [a.replace("$GITHUB_STEP_SUMMARY", "summary.md") for a in argv]
        parser.parse_args(argv)  # exits 2 on an unknown option
    gate = next(c for c in commands if c.startswith("bench gate"))
    assert "--step-summary" in gate and "baselines/quickstart.json" in gate


def test_history_workflow_commands_parse():
    """The history example runs bench with --history, then changes, confirm and changes."""
    workflow = REPO / ".github" / "examples" / "bench-history.yml"
    assert not (REPO / ".github" / "workflows" / "bench-history.yml").exists()
    steps = yaml.safe_load(workflow.read_text())["jobs"]["history"]["steps"]
    commands = [s["run"] for s in steps if "run" in s and s["run"].startswith("bench ")]
    assert [c.split()[1:3] for c in commands] == [
        ["run", "scenarios/quickstart.yaml"],
        ["history", "changes"],
        ["history", "confirm"],
        ["history", "changes"],
    ]
    parser = build_parser()
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])  # exits 2 on an unknown option
    assert "--history" in commands[0] and "--fail-on-regression" in commands[-1]

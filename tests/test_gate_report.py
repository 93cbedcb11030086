"""The gate report as users read it: golden files, exit codes, and bad inputs that exit 2.

Golden inputs live in tests/golden/gate (made by its make_inputs.py; each cell is built to land
on one verdict). The expected reports are compared byte for byte; after an intended change of
wording, rewrite them with ``BENCH_UPDATE_GOLDEN=1 python -m pytest tests/test_gate_report.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gate.baseline import METRICS, load_side
from bench.gate.policy import build_config
from bench.gate.regression import run_gate
from bench.report.gate import render_json, render_markdown, render_text
from tests.conftest import REPO, bench_cmd

GOLDEN = REPO / "tests" / "golden" / "gate"
# Relative paths, so the rendered labels do not depend on where the repository is checked out.
BASELINE = "tests/golden/gate/baseline.json"
CANDIDATE = "tests/golden/gate/candidate-run"
UPDATE = os.environ.get("BENCH_UPDATE_GOLDEN") == "1"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; see the module docstring to update"


@pytest.fixture(scope="module")
def report(request):
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        config = build_config(None, {}, METRICS)
        return run_gate(load_side([BASELINE]), load_side([CANDIDATE]), config)
    finally:
        os.chdir(cwd)


def test_every_verdict_lands_where_the_inputs_were_built_to(report):
    verdicts = {r.cell_id.rsplit("-float32", 1)[0]: r.decision.verdict.value for r in report.rows}
    assert verdicts == {
        "jax-cpu-train-bs32": "REGRESSED",  # 25% slower, CV 5%
        "jax-cpu-predict-bs32": "NO_CHANGE",
        "tensorflow-cpu-train-bs32": "IMPROVED",  # 30% faster
        "tensorflow-cpu-predict-bs32": "INCONCLUSIVE",  # 12% slower at CV 20%: straddles 10%
        "jax-cpu-train-bs256": "INSUFFICIENT_DATA",  # 6 candidate samples < 10
        "jax-gpu-train-bs32": "INSUFFICIENT_DATA",  # skipped on both sides
    }
    assert report.exit_code == 1
    assert report.tests == 4  # Holm family: the four cells with enough samples


@pytest.mark.parametrize(
    ("name", "render"),
    [("report.txt", render_text), ("report.md", render_markdown), ("report.json", render_json)],
)
def test_rendered_report_matches_golden(report, name, render):
    check_golden(name, render(report))


def test_rendering_is_deterministic(report):
    again = run_gate(report.baseline, report.candidate, report.config)
    assert render_text(again) == render_text(report)
    assert render_markdown(again) == render_markdown(report)


def gate(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(bench_cmd("gate", *args), cwd=cwd, capture_output=True, text=True)


def test_cli_prints_the_golden_report_and_exits_1_on_a_regression(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    done = gate("--baseline", BASELINE, "--candidate", CANDIDATE, "--step-summary", str(summary))
    assert done.returncode == 1, done.stderr
    assert done.stdout == (GOLDEN / "report.txt").read_text()
    # appended, not replaced: other steps write the same summary file
    assert summary.read_text() == "earlier step\n" + (GOLDEN / "report.md").read_text()
    done = gate("--baseline", BASELINE, "--candidate", CANDIDATE, "--format", "json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["counts"]["REGRESSED"] == 1


def test_a_pass_prints_the_report_too():
    done = gate("--baseline", BASELINE, "--candidate", BASELINE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("bench gate: PASS (exit 0): no regression")
    assert "verdicts: 6 NO_CHANGE, 1 INSUFFICIENT_DATA" in done.stdout
    assert "exit 0: no cell and metric REGRESSED" in done.stdout


def test_per_cell_threshold_turns_the_regression_into_inconclusive():
    # jax-cpu-train-bs32's interval [1.243, 1.332] straddles a 30% tolerance
    done = gate("--baseline", BASELINE, "--candidate", CANDIDATE, "--threshold", "jax-*=0.3")
    assert done.returncode == 0, done.stdout
    assert "threshold 30%" in done.stdout and "(--threshold)" in done.stdout
    assert (
        "jax-cpu-train-bs32-float32-synthetic: interval of the ratio [1.243, 1.332] straddles"
        in (done.stdout)
    )


def test_policy_file_sets_rules(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("alpha: 0.05\nrules:\n  - cells: 'jax-cpu-train-*'\n    threshold: 0.4\n")
    done = gate("--baseline", BASELINE, "--candidate", CANDIDATE, "--policy", str(policy))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "alpha 0.05" in done.stdout and "cells jax-cpu-train-*: threshold 40%" in done.stdout


def test_environment_mismatch_makes_verdicts_advisory_unless_strict(tmp_path):
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    meta = json.loads((GOLDEN / "candidate-run" / "run.json").read_text())
    meta["environment"]["host"]["cpu_model"] = "Other CPU"
    (candidate / "run.json").write_text(json.dumps(meta))
    (candidate / "cells.jsonl").write_text((GOLDEN / "candidate-run" / "cells.jsonl").read_text())
    done = gate("--baseline", BASELINE, "--candidate", str(candidate))
    assert done.returncode == 0, done.stdout
    assert "REGRESSED (advisory)" in done.stdout
    assert "cpu_model: Example CPU @ 2.0GHz -> Other CPU" in done.stdout
    assert "PASS (exit 0), advisory: 1 REGRESSED not counted because the environment differs" in (
        done.stdout
    )
    strict = gate("--baseline", BASELINE, "--candidate", str(candidate), "--strict-env")
    assert strict.returncode == 1
    assert "verdicts count anyway (--strict-env)" in strict.stdout


def test_baseline_save_round_trip_gives_the_same_report(tmp_path):
    saved = tmp_path / "b.json"
    done = subprocess.run(
        bench_cmd("baseline", "save", "tests/golden/gate/baseline-run", "-o", str(saved)),
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert saved.read_text() == (GOLDEN / "baseline.json").read_text()
    from_run = gate("--baseline", "tests/golden/gate/baseline-run", "--candidate", CANDIDATE)
    from_file = gate("--baseline", BASELINE, "--candidate", CANDIDATE)
    strip = lambda text: text.split("\n", 2)[2]  # noqa: E731 - the baseline label line differs
    assert strip(from_run.stdout) == strip(from_file.stdout)


# ------------------------------------------------------------------ bad input: exit 2


def assert_usage_error(done: subprocess.CompletedProcess, *expected: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""  # no report: nothing was gated
    for text in expected:
        assert text in done.stderr, done.stderr


def test_missing_file_is_an_input_error(tmp_path):
    missing = tmp_path / "nope.json"
    assert_usage_error(
        gate("--baseline", str(missing), "--candidate", CANDIDATE),
        f"bench gate: {missing}: no such run folder or baseline file",
    )


def test_folder_that_is_not_a_run_is_an_input_error(tmp_path):
    assert_usage_error(
        gate("--baseline", BASELINE, "--candidate", str(tmp_path)),
        f"{tmp_path}: not a bench run folder (no run.json)",
    )


def test_corrupt_baseline_json_names_the_line(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{\n "format": "bench-baseline",\n "runs": [\n')
    assert_usage_error(
        gate("--baseline", str(broken), "--candidate", CANDIDATE), f"{broken}:4: not valid JSON"
    )


def test_json_that_is_not_a_baseline_is_an_input_error(tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"benchmarks": []}')
    assert_usage_error(
        gate("--baseline", str(other), "--candidate", CANDIDATE),
        "not a bench baseline file",
        "bench baseline save RUN_DIR",
    )


def test_baseline_with_a_bad_field_names_the_field(tmp_path):
    doc = json.loads((GOLDEN / "baseline.json").read_text())
    cell = doc["cells"]["jax-cpu-train-bs32-float32-synthetic"]
    cell["quantities"]["step_time_s"]["samples"][3] = -1.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert_usage_error(
        gate("--baseline", str(bad), "--candidate", CANDIDATE),
        "cells.jax-cpu-train-bs32-float32-synthetic.quantities.step_time_s.samples.3: "
        "Input should be greater than 0",
    )


def test_baseline_of_an_unknown_format_version_is_refused(tmp_path):
    doc = json.loads((GOLDEN / "baseline.json").read_text())
    doc.update(format_version=99, bench_version="9.9")
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(doc))
    assert_usage_error(
        gate("--baseline", str(newer), "--candidate", CANDIDATE),
        "format_version 99 (written by bench 9.9); this bench reads version 1",
    )


def test_bad_policy_and_flags_are_usage_errors(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("treshold: 0.1\n")
    assert_usage_error(
        gate("--baseline", BASELINE, "--candidate", CANDIDATE, "--policy", str(policy)),
        f"{policy}: treshold: Extra inputs are not permitted",
    )
    assert_usage_error(
        gate("--baseline", BASELINE, "--candidate", CANDIDATE, "--threshold", "lots"),
        "--threshold 'lots': expected a number or CELL_GLOB=number",
    )
    assert_usage_error(
        gate("--baseline", BASELINE, "--candidate", CANDIDATE, "--alpha", "1.5"),
        "alpha must lie in (0, 1)",
    )
    done = gate("--baseline", BASELINE)  # argparse: --candidate is required
    assert done.returncode == 2 and "--candidate" in done.stderr


def test_sides_with_no_cell_in_common_are_an_input_error(tmp_path):
    doc = json.loads((GOLDEN / "baseline.json").read_text())
    doc["cells"] = {"x-" + k: v for k, v in doc["cells"].items()}
    renamed = tmp_path / "renamed.json"
    renamed.write_text(json.dumps(doc))
    assert_usage_error(
        gate("--baseline", str(renamed), "--candidate", CANDIDATE), "no cell is in both"
    )


def test_baseline_save_errors_exit_2(tmp_path):
    done = subprocess.run(bench_cmd("baseline", "save", str(tmp_path), "-o", str(tmp_path / "b.json")),
                          capture_output=True, text=True)  # fmt: skip
    assert_usage_error(done, "not a bench run folder")
    assert not (tmp_path / "b.json").exists()


def test_gate_baseline_and_export_import_no_framework(tmp_path):
    from tests.test_cli import NO_FRAMEWORK

    for argv in (
        ["bench", "gate", "--baseline", BASELINE, "--candidate", BASELINE],
        ["bench", "baseline", "save", CANDIDATE, "-o", str(tmp_path / "b.json")],
        ["bench", "export", CANDIDATE, "-o", str(tmp_path / "e.json")],
    ):
        done = subprocess.run([sys.executable, "-c", NO_FRAMEWORK.format(argv=argv)], cwd=REPO,
                              capture_output=True, text=True)  # fmt: skip
        assert "LOADED [] EXIT 0" in done.stdout, done.stdout + done.stderr

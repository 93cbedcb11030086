"""compare, report and recommend from the command line: exit codes, and bad input that ends in
a clear message and exit 2, never a traceback. None of them imports a framework."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, bench_cmd
from tests.fixtures.runs import fleet, record, write_run
from tests.test_cli import NO_FRAMEWORK

GOLDEN = REPO / "tests" / "golden" / "runs"
A, B = str(GOLDEN / "quickstart-a"), str(GOLDEN / "quickstart-b")


def bench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(bench_cmd(*args), capture_output=True, text=True, cwd=cwd or REPO)


def assert_clean_failure(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert message in " ".join(done.stderr.split()), done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "compare", A, B, "--format", "md"],
        ["bench", "recommend", A, B],
        ["bench", "report", A, B, "-o", "/tmp/bench-test-no-framework.html"],
    ],
)
def test_reading_commands_import_no_framework(argv):
    done = subprocess.run(
        [sys.executable, "-c", NO_FRAMEWORK.format(argv=argv)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "LOADED [] EXIT 0" in done.stdout, done.stdout + done.stderr


def test_compare_formats(tmp_path):
    for fmt in ("table", "md", "csv"):
        done = bench("compare", A, B, "--format", fmt)
        assert done.returncode == 0, done.stderr
        assert "20261126-053755-quickstart-ba29" in done.stdout or fmt == "csv"
    done = bench("compare", A, B, "--format", "json", "--where", "workload==predict")
    data = json.loads(done.stdout)
    assert {g["match"]["workload"] for g in data["groups"]} == {"predict"}
    assert data["runs"][0]["label"] == "A"


@pytest.mark.parametrize("command", ["compare", "report", "recommend"])
def test_a_folder_that_is_not_a_run(command, tmp_path):
    assert_clean_failure(bench(command, str(tmp_path)), "not a bench run folder (no run.json)")


def test_a_results_folder_instead_of_runs_says_so(tmp_path):
    write_run(tmp_path, "r1", [record()])
    assert_clean_failure(
        bench("compare", str(tmp_path), str(tmp_path)),
        "not a run folder but a results folder holding 1 runs (r1)",
    )


def test_missing_folder(tmp_path):
    assert_clean_failure(bench("recommend", str(tmp_path / "nope")), "no such folder")


def test_cells_file_corrupted_in_the_middle(tmp_path):
    run = write_run(tmp_path, "r", [record(batch_size=8), record(batch_size=16)])
    lines = (run / "cells.jsonl").read_text().splitlines()
    (run / "cells.jsonl").write_text(lines[0][:40] + "\n" + lines[1] + "\n")
    assert_clean_failure(bench("recommend", str(run)), "cells.jsonl:1: not valid JSON")


def test_a_run_cut_off_mid_record_is_read_with_a_warning(tmp_path):
    # A killed `bench run` leaves a torn last line; every earlier record is intact and usable.
    run = write_run(tmp_path, "r", [record(batch_size=8), record(batch_size=16)])
    text = (run / "cells.jsonl").read_text()
    (run / "cells.jsonl").write_text(text[: len(text) - 200])
    done = bench("recommend", str(run))
    assert done.returncode == 0, done.stderr
    assert "cells.jsonl:2: truncated last record ignored" in done.stderr
    assert "1 of 1 cells qualify" in done.stdout


def test_a_record_cut_to_valid_json_without_its_metrics(tmp_path):
    run = write_run(tmp_path, "r", [record()])
    (run / "cells.jsonl").write_text(
        json.dumps({"cell_id": "x", "key": {"model": "mlp", "batch_size": 8}, "status": "ok"})
        + "\n"
    )
    assert_clean_failure(bench("compare", str(run), str(run)), "status ok but no examples_per_s")


def test_record_without_a_key(tmp_path):
    run = write_run(tmp_path, "r", [record()])
    (run / "cells.jsonl").write_text(json.dumps({"cell_id": "x", "status": "ok"}) + "\n")
    assert_clean_failure(bench("report", str(run), "-o", str(tmp_path / "r.html")), "no cell key")


def test_unknown_schema_version_names_the_writer(tmp_path):
    run = write_run(tmp_path, "r", [record()])
    meta = json.loads((run / "run.json").read_text())
    meta.update(schema_version=7, bench_version="3.1.4")
    (run / "run.json").write_text(json.dumps(meta))
    assert_clean_failure(
        bench("compare", str(run), A), "schema_version 7 (bench 3.1.4); this bench reads version 1"
    )


@pytest.mark.parametrize("command", ["compare", "recommend"])
@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("p99<=50", "unknown field 'p99'; did you mean p99_ms?"),
        ("p99_ms=<50", "p99_ms is a number in ms; got '<50'"),
        ("nonsense", "expected FIELD OP VALUE"),
    ],
)
def test_malformed_where(command, expr, message):
    assert_clean_failure(bench(command, A, B, "--where", expr), message)


def test_unknown_by_axis():
    assert_clean_failure(
        bench("compare", A, B, "--by", "framework,devices"), "no axis 'devices' in these runs"
    )


def test_typo_in_a_value_warns(tmp_path):
    done = bench("recommend", A, "--where", "device==gpuu")
    assert "no loaded cell has device 'gpuu' (seen: cpu, gpu)" in " ".join(done.stderr.split())
    assert done.returncode == 1  # and nothing qualifies


def test_recommend_exit_codes_and_deploy_file(tmp_path):
    runs = [str(p) for p in fleet(tmp_path / "runs")]
    out = tmp_path / "deploy.yaml"
    done = bench(
        "recommend", *runs, "--objective", "cost", "--where", "workload==predict", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "tpu-vm" in out.read_text()
    done = bench("recommend", *runs, "--where", "p99_ms<=0.01", "--out", str(tmp_path / "x.yaml"))
    assert done.returncode == 1
    assert "nothing meets the constraints" in done.stdout and "Closest:" in done.stdout
    assert "not written: nothing to deploy" in done.stderr
    assert not (tmp_path / "x.yaml").exists()


def test_report_writes_html_and_markdown(tmp_path):
    html = tmp_path / "out" / "report.html"
    done = bench("report", A, B, "-o", str(html))
    assert done.returncode == 0, done.stderr
    assert html.read_text().startswith("<!DOCTYPE html>")
    md = tmp_path / "summary.md"
    done = bench("report", A, B, "--format", "md", "-o", str(md))
    assert done.returncode == 0, done.stderr
    assert "![mlp predict: throughput vs batch size](summary_files/" in md.read_text()
    assert (tmp_path / "summary_files" / "throughput-mlp-predict.svg").exists()

"""``bench.results.load``: run folders as a pandas frame, and ``bench results --format csv|json``.

The golden runs are real quickstart runs: quickstart-a has 8 ok CPU cells (jax and tensorflow,
train and predict, batch 32 and 256) and one skipped GPU cell; quickstart-b has 12 ok cells
(batch 32, 256 and 1024).
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import results
from bench.axes import NAMES
from bench.metrics import fields as metric_fields
from bench.runfolder import CELLS_FILE, load_run
from tests.conftest import REPO, RealRun, bench_cmd
from tests.test_cli import NO_FRAMEWORK

GOLDEN = REPO / "tests" / "golden" / "runs"
A, B = GOLDEN / "quickstart-a", GOLDEN / "quickstart-b"


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(bench_cmd(*args), capture_output=True, text=True, cwd=REPO)


def test_one_row_per_cell_with_the_axes_metrics_and_units():
    df = results.load(A)
    run = load_run(A)
    assert list(df["cell_id"]) == list(run.cells)
    assert len(df) == 9
    # run, host, cell id, model and every axis in registry order, status, the metrics, then
    # a serve cell's own SLO (none here: NA).
    head = 4 + len(NAMES) + 3
    assert list(df.columns[:head]) == [
        "run", "host", "cell_id", "model", *NAMES, "status", "reason", "flags"
    ]  # fmt: skip
    assert list(df.columns[head:-3]) == [f.name for _, f in metric_fields()]
    assert list(df.columns[-3:]) == ["slo", "slo_met", "slo_latency_ms"]
    assert df["slo"].isna().all() and df["slo_met"].isna().all()
    assert "scaling_efficiency" in df.columns  # derived on the read side, per run
    assert set(df["run"]) == {run.run_id}
    assert df.attrs["units"]["examples_per_s"] == "examples/s"
    assert df.attrs["units"]["p99_ms"] == "ms"
    assert df.attrs["units"]["batch_size"] == "examples"
    assert "framework" not in df.attrs["units"]  # text columns have no unit

    cell = df.set_index("cell_id").loc["jax-cpu-train-bs256-float32-synthetic"]
    assert cell["batch_size"] == 256 and cell["framework"] == "jax" and cell["status"] == "ok"
    record = run.cells["jax-cpu-train-bs256-float32-synthetic"]
    assert cell["examples_per_s"] == record["metrics"]["examples_per_s"]["value"]
    # p99_ms is the p99 step time in ms: the unit of the field, not of the record.
    assert cell["p99_ms"] == pytest.approx(record["metrics"]["step_time_s"]["p99"] * 1e3)
    assert cell["replicas"] == 1  # records older than the axis ran on one replica

    skipped = df[df["status"] == "skipped"]
    assert list(skipped["device"]) == ["gpu"]
    assert skipped["reason"].iloc[0] and math.isnan(skipped["examples_per_s"].iloc[0])
    assert str(df["batch_size"].dtype) == "Int64"
    assert df["examples_per_s"].dtype == "float64"


def test_several_runs_load_into_one_frame_told_apart_by_run():
    df = results.load([A, B])
    assert len(df) == 9 + 12
    counts = df.groupby("run").size().to_dict()
    assert counts == {load_run(A).run_id: 9, load_run(B).run_id: 12}
    # The notebook example of docs/results.md: B over A per framework and batch size.
    ok = df[df["status"] == "ok"]
    table = ok.pivot_table(
        "examples_per_s", index=["workload", "framework", "batch_size"], columns="run"
    )
    ratio = table[load_run(B).run_id] / table[load_run(A).run_id]
    assert ratio.notna().sum() == 8  # batch 1024 is only in B


def test_a_run_given_twice_is_read_once_with_a_warning():
    with pytest.warns(UserWarning, match="given twice"):
        df = results.load([A, A])
    assert len(df) == 9
    assert any("given twice" in w for w in df.attrs["warnings"])


def _damaged(tmp_path: Path) -> Path:
    run = tmp_path / "damaged"
    shutil.copytree(A, run)
    lines = (run / CELLS_FILE).read_text().splitlines(keepends=True)
    lines[2] = '{"cell_id": "x", "key": \n'  # cut mid-file: not a killed run's last line
    (run / CELLS_FILE).write_text("".join(lines))
    return run


def test_a_damaged_run_folder_raises_results_error_naming_the_file(tmp_path):
    run = _damaged(tmp_path)
    with pytest.raises(results.ResultsError, match=rf"{run / CELLS_FILE}:3"):
        results.load(run)
    with pytest.raises(results.ResultsError, match="no such folder"):
        results.load(tmp_path / "missing")


def test_csv_and_json_give_the_frame_rows():
    frame = results.rows(results.load(A))
    as_json = json.loads(bench("results", str(A), "--format", "json").stdout)
    assert as_json == frame
    done = bench("results", str(A), "--format", "csv")
    assert done.returncode == 0, done.stderr
    as_csv = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["cell_id"] for r in as_csv] == [r["cell_id"] for r in frame]
    assert list(as_csv[0]) == list(frame[0])
    for got, row in zip(as_csv, frame, strict=True):
        # CSV is text: numbers written in full, missing values empty.
        want = row["examples_per_s"]
        assert (float(got["examples_per_s"]) if got["examples_per_s"] else None) == want
        assert int(got["batch_size"]) == row["batch_size"] and got["status"] == row["status"]


def test_results_format_bad_input_exits_2_without_a_traceback(tmp_path):
    run = _damaged(tmp_path)
    for args, message in (
        (["results", str(run), "--format", "csv"], f"{run / CELLS_FILE}:3"),
        (["results", "--format", "json"], "--format json needs a RUN folder"),
    ):
        done = bench(*args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and done.stderr.startswith("bench results: ")
        assert message in done.stderr


def test_help_names_format_and_neither_help_nor_rows_import_pandas_or_a_framework():
    assert "--format" in bench("results", "--help").stdout
    probe = NO_FRAMEWORK.replace("('jax',", "('pandas', 'jax',")
    for argv, pandas in (
        (["bench", "--help"], False),
        (["bench", "results", "--help"], False),
        (["bench", "results", str(A)], False),  # the table reads no frame
        (["bench", "results", str(A), "--format", "json"], True),
    ):
        done = subprocess.run(
            [sys.executable, "-c", probe.format(argv=argv)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        loaded = "['pandas']" if pandas else "[]"
        assert f"LOADED {loaded} EXIT" in done.stdout, done.stdout + done.stderr


@pytest.mark.slow
def test_load_on_a_real_run(real_run: RealRun):
    # The check, on a fresh real run: the session's shared MLP run (jax and tensorflow,
    # train and predict, batch 16: 4 cells).
    run = real_run.run_dir
    df = results.load(run)
    assert len(df) == len(load_run(run).meta["cells_planned"]) == 4
    assert set(df["workload"]) == {"train", "predict"}
    assert set(df["framework"]) == {"jax", "tensorflow"} and list(df["batch_size"]) == [16] * 4
    assert (df["status"] == "ok").all() and (df["examples_per_s"] > 0).all()

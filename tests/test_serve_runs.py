"""workload: serve end to end: real workers in both frameworks, then compare and recommend."""

from __future__ import annotations

import json
import subprocess

import pytest

from bench.cli import main
from bench.runfolder import load_run
from tests.conftest import bench_cmd

pytestmark = [pytest.mark.slow, pytest.mark.heavy]

SCENARIO = """\
name: serve_e2e
model: mlp
model_args: {hidden: [32], vocab_size: 50, embed_dim: 4}
workload: serve
matrix:
  framework: [jax, tensorflow]
max_batch_size: 4
batch_timeout_ms: 1.0
slo: {percentile: 99, latency_ms: 50}
pricing: {cpu: 1.0}
measure:
  timeout_s: 120
  serve: {min_queries: 100, min_seconds: 0.3, warmup_queries: 10, drain_s: 0.3, tolerance: 0.2}
"""


def test_serve_cells_in_both_frameworks_are_measured_compared_and_recommended(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    results = tmp_path / "results"
    done = subprocess.run(
        bench_cmd("run", str(path), "--results-dir", str(results)),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    run = load_run(run_dir)
    assert len(run.cells) == 2
    for cell_id, rec in run.cells.items():
        assert rec["status"] == "ok", (cell_id, rec["reason"], rec.get("traceback"))
        m, serve = rec["metrics"], rec["serve"]
        assert serve["policy"]["buckets"] == [1, 2, 4]
        assert 0 < m["max_compliant_qps"]["value"] <= serve["offline_qps"]
        assert m["request_latency_s"]["p99"] <= 0.050
        assert m["cost_per_million_examples_usd"]["value"] > 0
        assert len(serve["probes"]) >= 2

    assert main(["compare", str(run_dir), "--format", "json"]) == 0
    fields = {
        r["field"] for g in json.loads(capsys.readouterr().out)["groups"] for r in g["metrics"]
    }
    assert {"max_qps", "latency_p99_ms", "mean_batch", "queue_ms", "compute_ms"} <= fields
    assert main(["recommend", str(run_dir), "--objective", "cost", "--where", "p99_ms<=50"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 cells qualify" in out and "max batch 4" in out
    report = tmp_path / "report.md"
    assert main(["report", str(run_dir), "--format", "md", "-o", str(report)]) == 0
    text = report.read_text()
    assert "## Online serving: latency under load" in text
    assert (
        "p99 latency vs offered rate" in text
        and "SLO p99 50 ms" in (tmp_path / "report_files" / "serving-latency-mlp.svg").read_text()
    )

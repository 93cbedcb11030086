"""workload: generate as a user meets it: scenario validation of the generate block, the slo's
limits and the axes each workload runs, then real JAX cells end to end (offline and a search
for the highest compliant rate), their records, and an slo no rate can meet."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from bench.cli import main
from bench.runfolder import load_run
from tests.conftest import bench_cmd

BASE = """\
name: gen
model: decoder
workload: generate
slo: {percentile: 99, ttft_ms: 500, tpot_ms: 50}
"""


def validate(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    code = main(["validate", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("cache_len: 128\ngenerate: {prompt_tokens: 200}\n",
         r"s.yaml:\d+: generate.prompt_tokens: cell .*-c128: prompts up to 200 tokens do not fit cache_len 128"),
        ("cache_len: 128\ngenerate: {prompt_tokens: 64, output_tokens: {uniform: [8, 100]}}\n",
         r"generate.output_tokens: .* need 163 positions; expected at most cache_len 128"),
        ("cache_len: 1024\n", r"cache_len: .* longer than the model's max_positions \(256\)"),
        ("generate: {output_tokens: {uniform: [9, 3]}}\n", r"generate.output_tokens.*lowest <= highest"),
        ("generate: {prompt_tokens: {lognormal: {mean: 10, sigma: 0}}}\n", r"generate.prompt_tokens"),
        ("generate: {prompt_tokens: 64, prompt_buckets: [16, 32]}\n",
         r"generate.prompt_buckets: the largest bucket 32 is shorter than the longest prompt \(64\)"),
        ("framework: litert\n", r"framework: .*workload: generate runs framework jax, tensorflow only"),
        ("arrivals: single_stream\n", r"arrivals: .*runs arrivals poisson, constant, gamma, offline only"),
        ("generate: {trace: nowhere.csv}\n", r"generate.trace: .*nowhere.csv: cannot read a generation trace"),
        ("generate: {requests: 0}\n", r"generate.requests"),
    ],
)  # fmt: skip
def test_a_broken_generate_scenario_names_the_field(tmp_path, capsys, extra, expected) -> None:
    code, out = validate(tmp_path, BASE + extra, capsys)
    assert code == 2
    assert re.search(expected, out), out


def test_a_trace_file_is_checked_row_by_row(tmp_path, capsys) -> None:
    (tmp_path / "t.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0,8,4\n0.5,8,x\n")
    code, out = validate(tmp_path, BASE + "generate: {trace: t.csv}\n", capsys)
    assert code == 2 and "t.csv:3: expected arrival_s (seconds)" in out
    (tmp_path / "t.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0,8,4\n0.5,300,4\n")
    code, out = validate(tmp_path, BASE + "generate: {trace: t.csv}\n", capsys)
    assert code == 2 and "generate.trace: cell" in out and "300 tokens do not fit" in out
    (tmp_path / "t.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0,8,4\n0.5,12,6\n")
    assert validate(tmp_path, BASE + "generate: {trace: t.csv}\n", capsys)[0] == 0


def test_slo_limits_each_workload_can_judge(tmp_path, capsys) -> None:
    code, out = validate(tmp_path, BASE.replace("ttft_ms: 500, tpot_ms: 50", ""), capsys)
    assert (
        code == 2
        and "slo: got {'percentile': 99}; expected a limit: latency_ms (serve), or ttft_ms" in out
    )
    serve = "name: s\nmodel: mlp\nworkload: serve\nslo: {ttft_ms: 5}\n"
    code, out = validate(tmp_path, serve, capsys)
    assert code == 2 and "slo.latency_ms: required by workload: serve cells" in out
    code, out = validate(
        tmp_path, serve.replace("ttft_ms", "latency_ms") + "arrivals: gamma\n", capsys
    )
    assert (
        code == 2 and "workload: serve runs arrivals poisson, constant, single_stream only" in out
    )


E2E = (
    BASE
    + """\
pricing: {cpu: 1.0}
generate: {prompt_tokens: {uniform: [4, 16]}, output_tokens: {uniform: [2, 12]}, requests: 12,
           warmup_requests: 2}
cache_len: 64
slots: 4
measure:
  timeout_s: 300
  serve: {tolerance: 0.5, retries: 0}
matrix:
  scheduler: [static, continuous]
  arrivals: [offline, poisson]
exclude:
  - {scheduler: static, arrivals: poisson}
"""
)


@pytest.mark.slow
@pytest.mark.heavy
def test_generate_cells_end_to_end(tmp_path) -> None:
    path = tmp_path / "s.yaml"
    # Continuous offline under an slo no load can meet (TPOT under a nanosecond).
    path.write_text(E2E + "include:\n  - {scheduler: continuous, arrivals: offline, slots: 2}\n")
    results = tmp_path / "results"
    done = subprocess.run(
        bench_cmd("run", str(path), "--results-dir", str(results)),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run = load_run(next(results.iterdir()))
    cells = run.cells
    assert len(cells) == 4 and all(c["status"] == "ok" for c in cells.values()), cells
    for record in cells.values():
        m = record["metrics"]
        assert m["ttft_s"]["p99"] >= m["ttft_s"]["p50"] > 0
        assert m["output_tokens_per_s"]["value"] > 0
        assert m["kv_cache_bytes"]["value"] > 0 and m["decode_step_s"]["value"] > 0
        assert len(record["samples"]["ttft_s"]) == 12
        assert "cost_usd_per_million_output_tokens" in m
    search = next(c for c in cells.values() if c["key"]["arrivals"] == "poisson")
    assert search["generate"]["search"]["offline_qps"] > 0
    assert search["metrics"]["max_compliant_qps"].get("value", 0) > 0
    assert len(search["generate"]["probes"]) >= 3  # the offline load and at least two rates
    assert not list(tmp_path.glob("*.jsonl"))  # nothing written beside the results folder
    strict = tmp_path / "strict.yaml"
    strict.write_text(E2E.replace("tpot_ms: 50", "tpot_ms: 0.000001").replace(
        "  scheduler: [static, continuous]\n  arrivals: [offline, poisson]",
        "  scheduler: [continuous]\n  arrivals: [poisson]\n  target_qps: [search, 5.0]"))  # fmt: skip
    done = subprocess.run(
        bench_cmd("run", str(strict), "--results-dir", str(tmp_path / "strict")),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    run = load_run(next((tmp_path / "strict").iterdir()))
    assert len(run.cells) == 2
    for record in run.cells.values():
        assert record["status"] == "ok" and "slo_unmet" in record["flags"], record
        assert "TPOT p99" in record["reason"] and "> 1e-06 ms" in record["reason"]
    searched = next(r for r in run.cells.values() if r["key"]["target_qps"] == "search")
    assert (
        "SLO not met at any rate tried" in searched["metrics"]["max_compliant_qps"]["unavailable"]
    )
    json.dumps(run.cells)  # every record is plain JSON

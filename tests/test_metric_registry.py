"""The metric registry (``bench.metrics.METRICS``) is the one place a metric is declared: a toy
metric registered there shows up in every reading command and in the gate, and the catalogs
that used to be kept by hand agree with it."""

from __future__ import annotations

import json
import math
import os
import subprocess

import pytest

from bench.cli import main
from bench.measure.derive import Basis, Inputs, derive
from bench.metrics import METRICS, FieldDef, Gate, Metric, find_field, metric, register
from bench.read.runset import load_runs
from tests.conftest import REPO, bench_cmd
from tests.fixtures.runs import record, write_run

TOY = Metric(
    "toy_score",
    "toy score",
    "points",
    "higher",
    "written into the record by the test",
    "process",
    fields=(FieldDef("toy_points", "points", "a toy metric", column="toy pts", compare=True),),
    gates=(Gate("toy", "toy points, one value per process", stat="value"),),
)


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Metric:
    """The toy metric, registered in one place for the length of a test."""
    monkeypatch.setitem(METRICS, TOY.name, TOY)
    return TOY


@pytest.fixture
def toy_run(tmp_path):
    """A run of two cells whose records hold the toy metric: 3 and 7 points."""
    cells = []
    for batch, points in ((32, 3.0), (64, 7.0)):
        rec = record(batch_size=batch, seed=batch)
        rec["metrics"]["toy_score"] = metric(points, "points", "written by the test")
        cells.append(rec)
    return write_run(tmp_path / "runs", "20250101-000000-toy-0001", cells)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_a_toy_metric_registered_once_is_in_compare_where_gate_and_report(
    toy, toy_run, tmp_path, capsys
):
    code, out = run_cli(capsys, "compare", str(toy_run), "--format", "json")
    assert code == 0
    rows = [
        m for g in json.loads(out)["groups"] for m in g["metrics"] if m["field"] == "toy_points"
    ]
    assert sorted(r["values"][0] for r in rows) == [3.0, 7.0]
    assert {(r["label"], r["unit"], r["higher_is_better"]) for r in rows} == {
        ("toy score", "points", True)
    }

    # --where: only the 7-point cell meets toy_points>5
    code, out = run_cli(
        capsys, "compare", str(toy_run), "--format", "json", "--where", "toy_points>5"
    )
    assert code == 0
    groups = json.loads(out)["groups"]
    assert [g["match"]["batch_size"] for g in groups] == ["64"]

    # the gate offers it and reads one value per process (so: too few to test, with the reason)
    code, out = run_cli(
        capsys, "gate", "--baseline", str(toy_run), "--candidate", str(toy_run),
        "--metric", "toy", "--format", "json",
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert {r["metric"] for r in report["rows"]} == {"toy"}
    assert all(r["verdict"] == "INSUFFICIENT_DATA" for r in report["rows"])
    assert all("one value per process" in r["reason"] for r in report["rows"])

    html = tmp_path / "report.html"
    code, _ = run_cli(capsys, "report", str(toy_run), "-o", str(html))
    assert code == 0
    text = html.read_text()
    assert "toy pts" in text and ">7.00<" in text


def test_without_the_toy_nothing_knows_it(toy_run, capsys):
    with pytest.raises(SystemExit):
        main(["gate", "--baseline", str(toy_run), "--candidate", str(toy_run), "--metric", "toy"])
    assert "invalid choice: 'toy'" in capsys.readouterr().err
    code, _ = run_cli(capsys, "compare", str(toy_run), "--where", "toy_points>5")
    assert code == 2


def test_names_are_unique_and_references_resolve():
    with pytest.raises(ValueError, match="already registered"):
        register(METRICS["mfu"])
    with pytest.raises(ValueError, match="field 'p99_ms' is already taken"):
        register(
            Metric("other", "o", "s", "lower", "m", "cell", fields=(FieldDef("p99_ms", "ms", "x"),))
        )
    for m in METRICS.values():
        for f in m.fields:
            for name in f.fallback:
                assert METRICS[name].unit == m.unit, (f.name, name)
            if f.objective is not None:
                find_field(f.objective.partner)  # the Pareto partner is a field
        if m.derived is not None:
            assert all(name in METRICS for name in m.derived.inputs), m.name


def test_load_computes_scaling_efficiency_per_run(tmp_path):
    # 1 replica: 64 / 0.01 s = 6,400 examples/s; 4 replicas on the same global batch at
    # 0.004 s: 16,000 = 16,000 / (4 x 6,400) = 0.625 of perfect strong scaling.
    one = record(batch_size=64, median_s=0.01, replicas=1)
    four = record(batch_size=64, median_s=0.004, replicas=4)
    four["cell_id"] += "-r4"
    runset = load_runs([write_run(tmp_path, "r", [one, four])])
    found = {c.cell_id: c.number("scaling_efficiency") for c in runset.cells}
    assert found[one["cell_id"]] is None
    assert math.isclose(found[four["cell_id"]], 0.625)


def test_derive_from_inputs_then_again_after_a_merge():
    metrics = {
        "flops_per_example": metric(1e6, "FLOP/example", "analytic"),
        "peak_flops_per_s": metric(1e12, "FLOP/s", "datasheet"),
        "price_per_hour_usd": metric(3.6, "USD/h", "list"),
        "energy_j": metric(100.0, "J", "counter"),
    }
    # 100 examples / 0.01 s = 10,000 examples/s on 2 devices
    out = derive(metrics, Basis(100, 0.01), Inputs(devices=2, tokens_per_example=8), examples=1e4)
    assert out["examples_per_s"]["value"] == pytest.approx(1e4)
    assert out["tokens_per_s"]["value"] == pytest.approx(8e4)
    assert out["mfu"]["value"] == pytest.approx(1e6 * 1e4 / 2e12)  # 0.005
    # 2 x $3.6/h = $0.002/s over 10,000 examples/s: $0.2 per million
    assert out["cost_per_million_examples_usd"]["value"] == pytest.approx(0.2)
    assert out["energy_per_example_j"]["value"] == pytest.approx(0.01)
    # A merge halves the throughput (median 0.02 s): MFU and tokens/s halve, cost doubles.
    merged = derive({**metrics, **out}, Basis(100, 0.02, "pooled", "the pooled median"))
    assert merged["examples_per_s"]["value"] == pytest.approx(5e3)
    assert merged["mfu"]["value"] == pytest.approx(0.0025)
    assert merged["tokens_per_s"]["value"] == pytest.approx(4e4)
    assert merged["cost_per_million_examples_usd"]["value"] == pytest.approx(0.4)
    assert "rescaled to the pooled median throughput" in merged["mfu"]["method"]
    assert "energy_per_example_j" not in merged  # energy per example does not move with it


@pytest.mark.slow
@pytest.mark.heavy
def test_scaling_efficiency_of_a_real_run_on_four_fake_devices_is_read_side_data(tmp_path):
    """``replicas: [1, 4]`` on 4 fake JAX CPU devices: compare JSON and the HTML report carry
    the 4-replica cell's scaling efficiency, not only the terminal table."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: dp4\nframework: jax\nbatch_size: 16\nmatrix:\n  replicas: [1, 4]\n"
        "model: mlp\nmodel_args: {hidden: [32], vocab_size: 50, embed_dim: 4}\n"
        "measure: {warmup_steps: 1, min_steps: 4, min_seconds: 0.0, max_seconds: 2.0, "
        "target_rel_ci: 0.5, timeout_s: 180}\n"
    )
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "4", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        bench_cmd("run", str(scenario), "--results-dir", str(tmp_path / "r")),
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (tmp_path / "r").iterdir()
    shown = subprocess.run(
        bench_cmd("compare", str(run_dir), "--format", "json"),
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    groups = json.loads(shown.stdout)["groups"]
    by_replicas = {
        g["match"]["replicas"]: {m["field"]: m["values"][0] for m in g["metrics"]} for g in groups
    }
    assert set(by_replicas) == {"1", "4"}
    assert "scaling_efficiency" not in by_replicas["1"]  # a 1-replica cell is the reference
    efficiency = by_replicas["4"]["scaling_efficiency"]
    rates = by_replicas["4"]["examples_per_s"], by_replicas["1"]["examples_per_s"]
    assert efficiency == pytest.approx(rates[0] / (4 * rates[1]))
    html = tmp_path / "report.html"
    made = subprocess.run(
        bench_cmd("report", str(run_dir), "-o", str(html)),
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "scaling (same global batch)" in html.read_text()

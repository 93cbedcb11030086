"""The LiteRT backend: conversion in every quantization mode, how close each mode predicts to the
float32 Keras model, file sizes, and the failure shapes (a model the converter refuses, a corrupt
model file, a missing ai-edge-litert, cells the backend does not run).

TensorFlow never enters the pytest process: conversions run in ``tests.litert_checks`` (one
process, each model converted once per mode) and in a real ``bench run`` worker.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.run import scenario as scenario_module
from bench.run.scenario import ScenarioError, parse_scenario
from bench.runfolder import load_run
from tests.conftest import REPO, bench_cmd

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ai_edge_litert") is None
    or importlib.util.find_spec("tensorflow") is None,
    reason="needs ai-edge-litert and tensorflow: pip install -e '.[litert,test]'",
)

# Bounds the tests hold (docs/edge.md states them): LiteRT float32 is the Keras graph, so it
# matches to float32 rounding (1e-5 of the largest logit where logits exceed 1); quantized modes
# agree on the arg-max class of the untrained MLP on the synthetic task's examples, where its
# logits are small and near-ties are common (a harder case than a trained model).
FLOAT32_TOLERANCE = 1e-5
MIN_TOP1 = {"float16": 0.99, "dynamic_int8": 0.95, "int8": 0.95}
INT8_SIZE_RATIO = 1 / 3  # int8 weights are 1 byte instead of 4, plus the graph's own bytes


@pytest.fixture(scope="module")
def checks_process(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The conversion checks, started at once in their own process: they run beside the real
    run of the next test (each is one mostly single-threaded TensorFlow process), which halves
    this module's time on two cores."""
    folder = tmp_path_factory.mktemp("litert")
    out, log = folder / "checks.json", folder / "checks.log"
    with log.open("w") as sink:  # a file, not a pipe: TensorFlow's logs would fill a pipe
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.litert_checks", str(out)],
            cwd=REPO, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    yield process, out, log
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def checks(checks_process: Any) -> dict[str, Any]:
    process, out, log = checks_process
    assert process.wait(timeout=300) == 0, log.read_text()[-3000:]
    return json.loads(out.read_text())


SCENARIO = """\
name: litert_e2e
model: mlp
model_args: {vocab_size: 200, hidden: [64, 32]}
workload: predict
batch_size: 4
matrix:
  framework: [litert]
  precision: [float32, float16, dynamic_int8, int8]
include:
  - {framework: litert, workload: serve, arrivals: single_stream, threads: 1}
slo: {percentile: 99, latency_ms: 50}
measure:
  warmup_steps: 2
  min_steps: 5
  min_seconds: 0.05
  max_seconds: 1
  timeout_s: 240
  serve: {min_queries: 30, min_seconds: 0.05, warmup_queries: 3, drain_s: 0.3}
"""


@pytest.mark.slow
@pytest.mark.heavy
def test_every_mode_runs_with_its_file_parity_and_size_and_single_stream_serves(
    tmp_path, checks_process
):
    path = tmp_path / "edge.yaml"
    path.write_text(SCENARIO)
    results = tmp_path / "results"
    done = subprocess.run(
        bench_cmd("run", str(path), "--results-dir", str(results)),
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    cells = load_run(run_dir).cells
    by_mode = {
        r["key"]["precision"]: r for r in cells.values() if r["key"]["workload"] == "predict"
    }
    sizes = {}
    for mode, rec in by_mode.items():
        assert rec["status"] == "ok", (mode, rec["reason"], rec.get("traceback"))
        m = rec["metrics"]
        kept = run_dir / m["model_file_bytes"]["path"]
        assert kept.is_file() and kept.stat().st_size == m["model_file_bytes"]["value"]
        sizes[mode] = m["model_file_bytes"]["value"]
        assert m["compile_s"]["method"].startswith("conversion ")
        if mode == "float32":
            assert m["parity_max_abs"]["value"] <= FLOAT32_TOLERANCE
            assert m["top1_agreement"]["value"] == 1.0
        else:
            assert m["top1_agreement"]["value"] >= MIN_TOP1[mode], mode
    assert "float_ops" in by_mode["int8"]["metrics"]["model_file_bytes"]
    assert sizes["int8"] <= INT8_SIZE_RATIO * sizes["float32"]
    assert sizes["float16"] < sizes["float32"]
    # The LiteRT worker wrote the run's parity set: the Keras twin in float32 is the reference.
    assert "litert" in by_mode["int8"]["metrics"]["top1_agreement"]["method"]
    (served,) = [r for r in cells.values() if r["key"]["workload"] == "serve"]
    assert served["status"] == "ok", (served["reason"], served.get("traceback"))
    assert served["metrics"]["request_latency_s"]["p99"] > 0
    assert served["metrics"]["model_file_bytes"]["value"] > 0


@pytest.mark.slow
@pytest.mark.heavy
def test_resnet18_float32_matches_keras_and_int8_is_under_a_third_of_its_size(checks):
    f32, i8 = checks["resnet18/float32"], checks["resnet18/int8"]
    assert f32["max_abs"] <= FLOAT32_TOLERANCE * max(1.0, f32["ref_max_abs"])
    assert f32["top1"] == 1.0
    assert f32["kept"] and i8["kept"]  # the model files stay in the run folder
    # 711 kB -> 204 kB measured: 0.29 of float32.
    assert i8["file_bytes"] <= INT8_SIZE_RATIO * f32["file_bytes"]


@pytest.mark.slow
@pytest.mark.heavy
def test_a_corrupt_model_file_is_an_error_naming_the_file(checks):
    assert checks["corrupt"].endswith(
        "corrupt.tflite: not a loadable LiteRT model file (The model is not a valid Flatbuffer "
        "buffer); expected the .tflite file the converter wrote"
    )


@pytest.mark.slow
@pytest.mark.heavy
def test_an_unconvertible_model_says_the_converters_reason(checks):
    assert checks["unconvertible"] == (
        "the LiteRT converter refused the model in int8: 'tf.Erfinv' op is neither a custom op "
        "nor a flex op"
    )


@pytest.mark.slow
@pytest.mark.heavy
def test_int8_lists_the_ops_the_converter_kept_in_float(checks):
    assert checks["float_ops"] == {"COS": 1}  # LiteRT has no int8 cosine kernel


# -- validation: what the backend does not run is refused before anything runs --------------


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    return caught.value.problems


def test_litert_cells_outside_what_it_runs_are_refused_naming_the_axis():
    found = problems("name: t\nmodel: mlp\nframework: litert\nworkload: train\ndevice: gpu\n")
    assert (
        "s.yaml:4: workload: cell litert-gpu-train-bs32-float32-synthetic: framework litert "
        "runs workload predict, serve only (got 'train'); expected one of predict, serve for "
        "litert cells, or exclude the cell"
    ) in found
    assert any(
        p.startswith("s.yaml:5: device: cell") and "runs device cpu only" in p for p in found
    )


def test_int8_is_litert_only_and_litert_serves_one_stream_only():
    found = problems(
        "name: t\nmodel: mlp\nworkload: predict\nmatrix:\n  framework: [jax, litert]\n"
        "  precision: [int8]\n"
    )
    assert (
        len(found) == 1
        and "framework jax runs precision float32, bfloat16, float16 only" in found[0]
    )
    found = problems(
        "name: t\nmodel: mlp\nworkload: serve\nframework: litert\nslo: {latency_ms: 50}\n"
    )
    assert len(found) == 1 and "runs arrivals single_stream only (got 'poisson')" in found[0]


def test_a_missing_ai_edge_litert_is_a_validation_error_naming_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        scenario_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "ai_edge_litert" else real(name, *a),
    )
    found = problems("name: t\nmodel: mlp\nworkload: predict\nframework: litert\n")
    assert found == [
        "s.yaml:4: framework: litert cells need the Python module ai_edge_litert, which is not "
        "installed; expected it installed: pip install 'bench[litert]'"
    ]


def test_the_edge_scenario_is_valid():
    loaded = scenario_module.load_scenario(Path(REPO) / "scenarios" / "edge.yaml")
    modes = {c.key.precision for c in loaded.cells if c.key.framework == "litert"}
    assert modes == {"float32", "float16", "dynamic_int8", "int8"}

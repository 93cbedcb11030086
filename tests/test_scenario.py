"""Scenario validation (every error names file, line, field, value, expectation) and expansion."""

from __future__ import annotations

import textwrap

import pytest

from bench.run.scenario import ScenarioError, json_schema, load_scenario, parse_scenario

GOOD = """\
name: t
model: mlp
matrix:
  framework: [jax, tensorflow]
  batch_size: [8, 16]
"""


def problems(text: str, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(textwrap.dedent(text), "s.yaml", overrides)
    return info.value.problems


def test_good_scenario_expands_to_the_product():
    loaded = parse_scenario(GOOD, "s.yaml")
    # 2 frameworks x 2 batch sizes; the other axes take the top-level defaults.
    assert [c.cell_id for c in loaded.cells] == [
        "jax-cpu-train-bs8-float32-synthetic",
        "jax-cpu-train-bs16-float32-synthetic",
        "tensorflow-cpu-train-bs8-float32-synthetic",
        "tensorflow-cpu-train-bs16-float32-synthetic",
    ]
    assert loaded.cells[0].key == {
        "model": "mlp",
        "workload": "train",
        "framework": "jax",
        "device": "cpu",
        "batch_size": 8,
        "precision": "float32",
        "input": "synthetic",
        "xla": True,  # JAX always compiles with XLA, whatever the scenario says
        "steps_per_call": 1,
        "replicas": 1,
    }
    assert loaded.cells[2].key["xla"] is False  # TensorFlow's default: graph, no jit_compile
    assert len(loaded.sha256) == 64


def test_compilation_axes_extend_ids_only_when_not_at_their_defaults():
    loaded = parse_scenario(
        "name: t\nmodel: mlp\nmatrix:\n  framework: [jax, tensorflow]\n"
        "  xla: [false, true]\n  steps_per_call: [1, 8]\n",
        "s.yaml",
    )
    # 2 TF x 2 K, plus JAX x 2 K once each: its xla: [false, true] collapses to one cell.
    assert [c.cell_id for c in loaded.cells] == [
        "jax-cpu-train-bs32-float32-synthetic",
        "jax-cpu-train-bs32-float32-synthetic-k8",
        "tensorflow-cpu-train-bs32-float32-synthetic",
        "tensorflow-cpu-train-bs32-float32-synthetic-k8",
        "tensorflow-cpu-train-bs32-float32-synthetic-xla",
        "tensorflow-cpu-train-bs32-float32-synthetic-xla-k8",
    ]
    assert {c.key["xla"] for c in loaded.cells if c.key["framework"] == "jax"} == {True}
    excluded = parse_scenario(
        "name: t\nmodel: mlp\nframework: tensorflow\nmatrix:\n  steps_per_call: [1, 4]\n"
        "exclude:\n  - {steps_per_call: 4}\ninclude:\n  - {xla: true, steps_per_call: 2}\n",
        "s.yaml",
    )
    assert [c.cell_id for c in excluded.cells] == [
        "tensorflow-cpu-train-bs32-float32-synthetic",
        "tensorflow-cpu-train-bs32-float32-synthetic-xla-k2",
    ]
    assert problems("name: t\nmodel: mlp\nsteps_per_call: 0\n") == [
        "s.yaml:3: steps_per_call: got 0; expected a number greater than or equal to 1"
    ]
    assert problems("name: t\nmodel: mlp\nmatrix:\n  xla: [maybe]\n") == [
        "s.yaml:4: matrix.xla[0]: got 'maybe'; expected a valid boolean, unable to interpret input"
    ]


def test_replicas_axis_extends_the_id_only_beyond_one_replica():
    loaded = parse_scenario(
        "name: t\nmodel: mlp\nbatch_size: 64\nmatrix:\n  replicas: [1, 2, 4, all]\n", "s.yaml"
    )
    # Single-device ids stay as they were, so older runs and baselines still match.
    assert [c.cell_id for c in loaded.cells] == [
        "jax-cpu-train-bs64-float32-synthetic",
        "jax-cpu-train-bs64-float32-synthetic-r2",
        "jax-cpu-train-bs64-float32-synthetic-r4",
        "jax-cpu-train-bs64-float32-synthetic-rall",
    ]
    assert [c.key["replicas"] for c in loaded.cells] == [1, 2, 4, "all"]


def test_global_batch_must_split_evenly_over_numeric_replicas():
    assert problems("name: t\nmodel: mlp\nbatch_size: 6\nmatrix:\n  replicas: [1, 4, all]\n") == [
        "s.yaml:5: replicas: cell jax-cpu-train-bs6-float32-synthetic-r4: batch_size 6 (the "
        "global batch) does not split evenly over 4 replicas; expected a batch_size divisible "
        "by 4, or exclude the cell"
    ]
    # One message per field for a union, naming both branches.
    assert problems("name: t\nmodel: mlp\nreplicas: 0\n") == [
        "s.yaml:3: replicas: got 0; expected a number greater than or equal to 1, or one of 'all'"
    ]


def test_tpu_node_is_validated_strictly():
    loaded = parse_scenario("name: t\nmodel: mlp\ntpu: {name: n1, zone: z}\n", "s.yaml")
    assert loaded.scenario.tpu is not None and loaded.scenario.tpu.wait_s == 300
    assert problems("name: t\nmodel: mlp\ntpu: {nam: n1}\n") == [
        "s.yaml:3: tpu.name: required field is missing",
        "s.yaml:3: tpu.nam: unknown key 'nam' (did you mean 'name'?); expected one of: name, "
        "zone, project, wait_s, poll_s",
    ]


def test_exclude_and_include_work_like_a_ci_matrix():
    loaded = parse_scenario(
        GOOD + "exclude:\n  - {framework: jax, batch_size: 16}\n"
        "include:\n  - {framework: jax, device: gpu, precision: bfloat16}\n"
        "  - {framework: tensorflow, batch_size: 8}\n",  # already present: not added twice
        "s.yaml",
    )
    assert [c.cell_id for c in loaded.cells] == [
        "jax-cpu-train-bs8-float32-synthetic",
        "tensorflow-cpu-train-bs8-float32-synthetic",
        "tensorflow-cpu-train-bs16-float32-synthetic",
        "jax-gpu-train-bs32-bfloat16-synthetic",  # unnamed axes come from the top level
    ]


def test_set_overrides_apply_before_validation():
    loaded = parse_scenario(GOOD, "s.yaml", ("matrix.batch_size=[4]", "measure.min_steps=3"))
    assert {c.key["batch_size"] for c in loaded.cells} == {4}
    assert loaded.scenario.measure.min_steps == 3
    assert problems(GOOD, ("measure.min_steps=-1",)) == [
        "s.yaml: measure.min_steps: got -1; expected a number greater than or equal to 2"
    ]
    assert "expected key=value" in problems(GOOD, ("nonsense",))[0]


def test_bad_yaml_syntax_names_the_line():
    assert problems("name: t\nmodel: [mlp\n") == [
        "s.yaml:3: invalid YAML: expected ',' or ']', but got '<stream end>'"
    ]


def test_unknown_key_suggests_the_near_miss():
    (msg,) = problems(GOOD + "mesure: {min_steps: 3}\n")
    assert msg.startswith("s.yaml:6: mesure: unknown key 'mesure' (did you mean 'measure'?)")


def test_wrong_type_shows_value_and_expectation():
    (msg,) = problems(GOOD.replace("[8, 16]", "[8, lots]"))
    assert msg == "s.yaml:5: matrix.batch_size[1]: got 'lots'; expected a valid integer"


def test_empty_axis_and_negative_batch_and_bad_literal_all_reported_at_once():
    found = problems(
        """\
        name: t
        model: mlp
        matrix:
          framework: []
          batch_size: [8, -4]
          device: [cpu, fpga]
        """
    )
    assert found == [
        "s.yaml:4: matrix.framework: got []; expected a non-empty list",
        "s.yaml:5: matrix.batch_size[1]: got -4; expected a number greater than or equal to 1",
        "s.yaml:6: matrix.device[1]: got 'fpga'; expected one of 'cpu', 'gpu' or 'tpu'",
    ]


def test_unknown_model_and_bad_model_args():
    assert problems("name: t\nmodel: resnet9000\n") == [
        "s.yaml:2: model: unknown model 'resnet9000'; expected one of "
        + ", ".join(sorted(__import__("bench.models").models.REGISTRY))
        + " or 'package.module:factory'"
    ]
    (msg,) = problems("name: t\nmodel: mlp\nmodel_args:\n  hiden: [4]\n")
    assert msg.startswith(
        "s.yaml:4: model_args.hiden: unknown key 'hiden' (did you mean 'hidden'?)"
    )


def test_axis_set_twice_and_duplicate_keys_are_errors():
    assert (
        "set both at the top level and in matrix.framework"
        in problems(GOOD + "framework: jax\n")[0]
    )
    assert problems(GOOD + "name: u\n") == ["s.yaml:6: name: duplicate key; expected each key once"]


def test_everything_excluded_is_an_error():
    text = GOOD + "exclude:\n  - {device: cpu}\n"
    assert problems(text) == ["s.yaml: matrix: every cell is excluded; expected at least one cell"]


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read a scenario file"):
        load_scenario(tmp_path / "nope.yaml")
    assert problems("- a\n- b\n") == [
        "s.yaml:1: expected a mapping of scenario fields, found a list"
    ]


def test_json_schema_is_strict_and_documents_axes():
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert "batch_size" in schema["$defs"]["Matrix"]["properties"]


def test_shipped_scenarios_are_valid():
    from pathlib import Path

    for path in sorted((Path(__file__).parent.parent / "scenarios").glob("*.yaml")):
        text = path.read_text()
        assert text.startswith("#"), f"{path} must open with a comment on what it shows"
        assert load_scenario(path).cells


SERVE = """\
name: s
model: mlp
workload: serve
matrix:
  framework: [jax]
  target_qps: [100, search]
  max_batch_size: [1, 8]
slo: {percentile: 99, latency_ms: 50}
"""


def test_serve_cells_expand_with_their_axes_and_only_theirs():
    loaded = parse_scenario(SERVE, "s.yaml")
    ids = [c.cell_id for c in loaded.cells]
    assert ids[0] == "jax-cpu-serve-float32-synthetic-q100.0-mb1-to2.0"
    assert len(ids) == 4 and all(c.key.batch_size == 1 for c in loaded.cells)
    single = parse_scenario(SERVE + "arrivals: single_stream\n", "s.yaml")
    # No rate and no batching in single-stream cells: the four collapse into one.
    assert [c.cell_id for c in single.cells] == ["jax-cpu-serve-float32-synthetic-single_stream"]
    train = parse_scenario(GOOD + "target_qps: 5\n", "s.yaml")
    assert all("target_qps" not in c.key.to_dict() for c in train.cells)


def test_serve_problems_name_the_field_and_what_is_expected():
    found = problems(
        SERVE.replace("slo: {percentile: 99, latency_ms: 50}\n", "")
        + "replicas: 2\nmeasure: {repeats: 2, serve: {min_queries: 0}}\n"
    )
    assert found == [
        "s.yaml:9: measure.serve.min_queries: got 0; expected a number greater than or equal to 1"
    ]
    found = problems(SERVE.replace("latency_ms: 50", "latency_ms: -1"))
    assert found == ["s.yaml:8: slo.latency_ms: got -1; expected a number greater than 0"]
    found = problems(
        SERVE.replace("slo: {percentile: 99, latency_ms: 50}\n", "")
        + "replicas: 2\nmeasure: {repeats: 2}\n"
    )
    assert found[0].startswith("s.yaml:3: slo: required by workload: serve cells; expected")
    assert any(p.startswith("s.yaml:8: replicas: cell ") and "expected 1" in p for p in found)
    assert any(p.startswith("s.yaml:9: measure.repeats: got 2; expected 1") for p in found)
    # profiling traces train and predict steps: on serve cells it is refused, not ignored
    found = problems(SERVE + "measure: {profile: {steps: 3}}\n")
    assert found == [
        "s.yaml:9: measure.profile: profiling traces train and predict steps; expected no "
        "measure.profile (or --profile) with workload: serve cells (profile the model's predict "
        "cells instead)"
    ]

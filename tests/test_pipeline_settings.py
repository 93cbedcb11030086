"""Pipeline presets, knobs and labels; the pipeline axis and data settings in scenarios."""

from __future__ import annotations

import pytest

from bench.inputs.settings import PRESETS, Pipeline, parse_label, resolve_label, to_label
from bench.run.scenario import ScenarioError, load_scenario, parse_scenario


def test_labels_are_canonical_and_parse_back_to_the_same_settings():
    assert to_label("tuned") == "tuned"
    assert to_label({"preset": "tuned", "cache": False}) == "tuned+cache=false"
    # A knob set to its preset's value changes nothing, so it is not in the label.
    assert to_label({"preset": "tuned", "cache": True, "prefetch": False}) == "tuned+prefetch=false"
    # Knobs appear in one fixed order whatever order they were written in.
    assert (
        to_label("naive+prefetch=true+parallel_map=true") == "naive+parallel_map=true+prefetch=true"
    )
    for label in ("naive", "tuned+cache=false", "naive+device_prefetch=3+cache_max_mb=64"):
        assert to_label(to_label(label)) == to_label(label)
        assert parse_label(to_label(label)).resolve() == parse_label(label).resolve()


def test_presets_say_what_naive_and_tuned_mean():
    naive, tuned = PRESETS["naive"], PRESETS["tuned"]
    assert not any([naive.parallel_reads, naive.parallel_map, naive.cache, naive.prefetch])
    assert naive.device_prefetch == 0
    assert all([tuned.parallel_reads, tuned.parallel_map, tuned.batch_before_map, tuned.cache])
    assert tuned.prefetch and tuned.device_prefetch == 2
    # One knob on its own: everything else stays as the preset has it.
    assert resolve_label("tuned+cache=false") == Pipeline(preset="tuned", cache=False).resolve()
    assert resolve_label("tuned+cache=false").prefetch is True


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("fast", "a preset (naive or tuned)"),
        ("tuned+cahce=false", "('cahce': did you mean 'cache'?)"),
        ("tuned+cache=maybe", "cache=true or cache=false"),
        ("tuned+device_prefetch=lots", "device_prefetch=<integer>"),
        ("tuned+device_prefetch=99", "device_prefetch: less than or equal to 16"),
    ],
)
def test_bad_labels_say_what_was_expected(label, expected):
    with pytest.raises(ValueError) as info:
        parse_label(label)
    assert expected in str(info.value)


SWEEP = """\
name: t
model: mlp
matrix:
  input: [synthetic, numpy, tfdata]
  pipeline: [naive, tuned, "tuned+cache=false", {preset: naive, prefetch: true}]
data: {examples: 64}
"""


def test_pipeline_axis_applies_to_tfdata_cells_only():
    loaded = parse_scenario(SWEEP, "s.yaml")
    # 3 inputs x 4 pipelines, but synthetic and numpy cells do not read a pipeline: one each.
    assert [c.cell_id for c in loaded.cells] == [
        "jax-cpu-train-bs32-float32-synthetic",
        "jax-cpu-train-bs32-float32-numpy",
        "jax-cpu-train-bs32-float32-tfdata-naive",
        "jax-cpu-train-bs32-float32-tfdata-tuned",
        "jax-cpu-train-bs32-float32-tfdata-tuned+cache=false",
        "jax-cpu-train-bs32-float32-tfdata-naive+prefetch=true",
    ]
    assert "pipeline" not in loaded.cells[0].key  # keys of other inputs are as before
    assert loaded.cells[2].key["pipeline"] == "naive"


def test_top_level_pipeline_mapping_include_and_exclude():
    text = """\
name: t
model: mlp
input: tfdata
pipeline: {preset: tuned, cache: false}
matrix:
  batch_size: [8, 16]
exclude:
  - {batch_size: 16, pipeline: "tuned+cache=false"}
include:
  - {batch_size: 16, pipeline: naive}
  - {batch_size: 16, input: synthetic, pipeline: naive}
"""
    loaded = parse_scenario(text, "s.yaml")
    assert [c.cell_id for c in loaded.cells] == [
        "jax-cpu-train-bs8-float32-tfdata-tuned+cache=false",
        "jax-cpu-train-bs16-float32-tfdata-naive",
        "jax-cpu-train-bs16-float32-synthetic",
    ]
    assert loaded.scenario.data.examples == 2048 and loaded.scenario.data.shards == 8


def test_bad_pipeline_and_too_few_examples_are_validation_errors():
    text = SWEEP.replace('"tuned+cache=false"', '"tuned+cahce=false"').replace("64}", "16}")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    (problem,) = info.value.problems
    assert problem.startswith("s.yaml:5: matrix.pipeline[2]: got 'tuned+cahce=false'; expected ")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(SWEEP.replace("64}", "16}"), "s.yaml")
    assert info.value.problems == [
        "s.yaml:6: data.examples: got 16; expected at least the largest tfdata batch_size (32): "
        "every batch is full"
    ]


def test_the_input_pipeline_scenario_validates():
    from bench.models import REGISTRY

    from tests.conftest import REPO

    if "resnet" not in REGISTRY:
        pytest.skip("scenarios/input_pipeline.yaml needs the resnet model (model zoo)")
    loaded = load_scenario(REPO / "scenarios" / "input_pipeline.yaml")
    assert {c.key["input"] for c in loaded.cells} == {"synthetic", "tfdata"}

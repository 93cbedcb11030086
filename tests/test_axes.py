"""The axis registry is the one list of axes: the scenario models, the cell id, the cell key,
the ``--where`` fields, compare's keys and the table columns all follow it, and labels name
their axis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import axes
from bench.axes import AXES, NAMES, CellKey, key_label, label
from bench.cli import main
from bench.read.constraints import parse, select
from bench.read.runset import FIELDS, load_runs
from bench.report.terminal import COLUMNS, SPLIT_AXES
from bench.run.scenario import Axes, Matrix, Scenario, parse_scenario
from bench.runfolder import load_run
from tests.fixtures.runs import record, write_run

AXES_BY = {a.name: a for a in AXES}
GOLDEN_RUNS = Path(__file__).parent / "golden" / "runs"
# A value other than the default for each axis, to see it in ids and keys.
OTHER = {
    "workload": "predict",
    "framework": "tensorflow",
    "device": "gpu",
    "batch_size": 64,
    "precision": "bfloat16",
    "input": "tfdata",
    "pipeline": "naive",
    "xla": True,
    "steps_per_call": 8,
    "replicas": 4,
    "arrivals": "constant",
    "target_qps": 250.0,
    "max_batch_size": 16,
    "batch_timeout_ms": 5.0,
    "endpoint": "kserve_http",
    "threads": 2,
    "scheduler": "static",
    "slots": 16,
    "cache_len": 1024,
}
# Axes that mean something only for some cells are left out of the base key, as keys do.
FULL = {
    "model": "mlp",
    **{a.name: a.default for a in AXES if a.default is not ... and not a.conditional},
    "xla": False,  # conditional (JAX and TensorFlow only), and this key's framework is JAX
}
SERVE_AXES = ("arrivals", "target_qps", "max_batch_size", "batch_timeout_ms", "endpoint")
GENERATE_AXES = ("scheduler", "slots", "cache_len")


def test_every_axis_is_in_the_scenario_models_the_key_and_the_columns():
    assert set(OTHER) == set(NAMES), "a new axis needs a non-default value in OTHER"
    for name in NAMES:
        assert name in Axes.model_fields and name in Matrix.model_fields
        assert name in Scenario.model_fields
        assert name in CellKey.__dataclass_fields__
        assert name in FIELDS  # a --where field
        assert name in COLUMNS or name in SPLIT_AXES  # a terminal column, or the split ones


def test_every_axis_shows_in_the_id_when_it_is_not_at_its_default():
    base = {**FULL, "framework": "tensorflow", "input": "tfdata", "pipeline": "tuned"}
    base_id = CellKey.from_dict(base).cell_id
    assert base_id == "tensorflow-cpu-train-bs32-float32-tfdata-tuned"
    for name, value in OTHER.items():
        if name in (*SERVE_AXES, *GENERATE_AXES) or name == "threads":  # LiteRT only, below
            continue
        value = {"framework": "jax", "input": "numpy"}.get(name, value)  # base has the others
        changed = CellKey.from_dict({"model": "mlp", **axes.normalize({**base, name: value})})
        assert changed.cell_id != base_id, name
    serve = axes.normalize(
        {**FULL, "workload": "serve", **{n: AXES_BY[n].default for n in SERVE_AXES}}
    )
    serve_id = CellKey.from_dict({"model": "mlp", **serve}).cell_id
    assert serve_id == "jax-cpu-serve-float32-synthetic-qsearch-mb8-to2.0"  # batch 1: not shown
    for name in SERVE_AXES:
        changed = CellKey.from_dict(
            {"model": "mlp", **axes.normalize({**serve, name: OTHER[name]})}
        )
        assert changed.cell_id != serve_id, name
    single = axes.normalize({**serve, "arrivals": "single_stream"})
    # No rate and no batching; an endpoint still applies (a server driven one request at a time).
    assert set(SERVE_AXES) & set(single) == {"arrivals", "endpoint"}


def test_generate_axes_are_in_generate_keys_only_and_in_their_ids():
    gen = axes.normalize(
        {**FULL, "workload": "generate",
         **{n: AXES_BY[n].default for n in (*SERVE_AXES, *GENERATE_AXES)}, "arrivals": "offline"}
    )  # fmt: skip
    # No batching axes (serve's), no rate offline; the engine's three axes in the key and id.
    assert not {"max_batch_size", "batch_timeout_ms", "target_qps"} & set(gen)
    gen_id = CellKey.from_dict({"model": "decoder", **gen}).cell_id
    assert gen_id == "jax-cpu-generate-float32-synthetic-offline-continuous-s8-c256"
    for name in GENERATE_AXES:
        changed = CellKey.from_dict(
            {"model": "decoder", **axes.normalize({**gen, name: OTHER[name]})}
        )
        assert changed.cell_id != gen_id, name
    for workload in ("serve", "train"):
        assert not set(GENERATE_AXES) & set(axes.normalize({**gen, "workload": workload}))


def test_threads_is_a_litert_axis_in_its_id_only_when_set():
    litert = axes.normalize(
        {**FULL, "framework": "litert", "workload": "predict", "threads": "all"}
    )
    assert litert["threads"] == "all"
    assert CellKey.from_dict({"model": "mlp", **litert}).cell_id == (
        "litert-cpu-predict-bs32-float32-synthetic"
    )
    two = CellKey.from_dict({"model": "mlp", **axes.normalize({**litert, "threads": 2})})
    assert two.cell_id == "litert-cpu-predict-bs32-float32-synthetic-t2"
    assert "threads" not in axes.normalize({**FULL, "threads": 2})  # jax: not an axis of its


def test_the_key_serialises_to_the_json_dict_of_today():
    loaded = parse_scenario(
        "name: t\nmodel: mlp\nmatrix:\n  framework: [jax, tensorflow]\n  input: [synthetic, tfdata]\n"
        "  xla: [true]\n  replicas: [1, all]\n",
        "s.yaml",
    )
    ids = [c.cell_id for c in loaded.cells]
    assert "tensorflow-cpu-train-bs32-float32-tfdata-tuned-xla-rall" in ids
    assert "jax-cpu-train-bs32-float32-synthetic" in ids  # xla fixed for JAX: not in the id
    for cell in loaded.cells:
        data = cell.key.to_dict()
        assert list(data)[:2] == ["model", "workload"]
        assert ("pipeline" in data) == (data["input"] == "tfdata")  # omitted, not null
        assert json.loads(json.dumps(data)) == cell.key  # a key equals its JSON dict
        assert CellKey.from_dict(data) == cell.key and hash(CellKey.from_dict(data)) == hash(
            cell.key
        )
        assert cell.key.batch_size == cell.key["batch_size"] == 32


@pytest.mark.parametrize("run", sorted(p.name for p in GOLDEN_RUNS.iterdir()))
def test_stored_records_keep_their_ids(run):
    """Resume matches by id: every id a run folder holds is what its key gives today."""
    for cell_id, rec in load_run(GOLDEN_RUNS / run).cells.items():
        assert CellKey.from_dict(rec["key"]).cell_id == cell_id


def test_an_unknown_key_field_is_refused():
    with pytest.raises(ValueError, match="unknown field"):
        CellKey.from_dict({**FULL, "colour": "red"})


def _registry_run(tmp_path: Path) -> Path:
    """One run whose cells differ in every axis, so each is a matching key of compare."""
    records = []
    for i, (name, value) in enumerate(OTHER.items()):
        key = {**FULL, "framework": "tensorflow", name: value}
        if name in ("input", "pipeline"):  # a pipeline only where the input is tfdata
            key.update(
                input="tfdata", pipeline=OTHER["pipeline"] if name == "pipeline" else "tuned"
            )
        rec = record(median_s=0.01 + i * 1e-3, seed=i, **key)
        rec["cell_id"] = axes.cell_id(rec["key"])
        records.append(rec)
    return write_run(tmp_path, "r", records)


def test_every_axis_is_a_where_field_and_a_key_of_compare(tmp_path, capsys):
    run = _registry_run(tmp_path)
    cells = load_runs([run]).cells
    for axis in AXES:
        probe = {"number": f"{axis.name}>=1", "text": f"{axis.name}!=nothing"}[axis.where]
        assert select(cells, [parse(probe)]), probe
    assert main(["compare", str(run), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(NAMES) <= set(out["by"])
    for group in out["groups"]:
        assert set(NAMES) - {"pipeline"} <= set(group["match"])


def test_bools_compare_as_true_and_false(tmp_path):
    run = _registry_run(tmp_path)
    cells = load_runs([run]).cells
    xla = select(cells, [parse("xla==true")])
    assert [c.key["xla"] for c in xla] == [True]
    assert len(select(cells, [parse("xla==false")])) == len(cells) - 1
    assert [c.key["steps_per_call"] for c in select(cells, [parse("steps_per_call>1")])] == [8]
    assert [c.key["replicas"] for c in select(cells, [parse("replicas==4")])] == [4]


def test_labels_name_their_axis():
    assert label("xla", True) == "xla on" and label("xla", False) == "xla off"
    assert label("steps_per_call", 8) == "steps/call 8"
    assert label("replicas", 4) == "replicas 4"
    assert label("batch_size", 256) == "batch 256"
    assert label("framework", "jax") == "jax"
    key = {**FULL, "framework": "tensorflow", "xla": True}
    text = key_label(key, NAMES)
    assert (
        text
        == "train tensorflow cpu batch 32 float32 input synthetic xla on steps/call 1 replicas 1"
    )
    words = text.split()
    assert "True" not in words and "False" not in words
    # every number follows the name of its axis
    for i, word in enumerate(words):
        if word.isdigit():
            assert words[i - 1] in {"batch", "steps/call", "replicas"}


def test_labels_leave_out_what_carries_no_information():
    jax = {**FULL, "xla": True}  # JAX always compiles with XLA
    assert key_label(jax, ["framework", "xla", "pipeline"]) == "jax"
    assert axes.differing([jax, {**jax, "batch_size": 64}], NAMES) == ["batch_size"]

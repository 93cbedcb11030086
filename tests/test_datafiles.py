"""Data-file parameters, generation and verification: the parts that need no framework.

Writing and reading real TFRecords needs TensorFlow: see ``test_input_frameworks.py``.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from bench.models import mlp

from bench.inputs import datafiles
from bench.inputs.datafiles import DataError
from bench.inputs.settings import DataFiles
from bench.modeldef import DataSpec, FeatureSpec

IMAGES = DataSpec({"image": FeatureSpec((16, 16, 3), "float32")}, "classification", 10)
TOKENS = DataSpec(
    {"tokens": FeatureSpec((12,), "int32", vocab=50)}, "classification", 5, tokens_per_example=12
)
TABULAR = mlp.data_spec(mlp.Args())


def test_layout_follows_the_data_spec():
    images = datafiles.layout(IMAGES, DataFiles(stored_image_size=40))
    assert images.kind == "images" and not images.csv
    assert images.image is not None and images.image.encoding == "jpeg"
    assert (images.image.shape, images.image.stored_shape) == ((16, 16, 3), (40, 40, 3))
    tabular = datafiles.layout(TABULAR, DataFiles())
    assert tabular.kind == "tabular" and tabular.csv
    assert [(c.name, c.encoding) for c in tabular.columns] == [
        ("numeric", "float"),
        ("categorical", "int"),
        ("label", "int"),
    ]
    assert datafiles.layout(TOKENS, DataFiles()).kind == "tokens"
    # The pipeline's decoded bytes per example: 16*16*3 floats + one int label, 4 bytes each.
    assert images.example_bytes() == (16 * 16 * 3 + 1) * 4


def test_folder_is_named_by_every_parameter_and_nothing_else():
    base = datafiles.folder_name(datafiles.parameters(IMAGES, DataFiles(), 0))
    assert base == datafiles.folder_name(datafiles.parameters(IMAGES, DataFiles(dir="/x"), 0))
    changed = [
        datafiles.parameters(IMAGES, DataFiles(), 1),
        datafiles.parameters(IMAGES, DataFiles(examples=100), 0),
        datafiles.parameters(IMAGES, DataFiles(shards=2), 0),
        datafiles.parameters(IMAGES, DataFiles(stored_image_size=32), 0),
        datafiles.parameters(IMAGES, DataFiles(jpeg_quality=75), 0),
    ]
    names = {datafiles.folder_name(p) for p in changed}
    assert base not in names and len(names) == len(changed)
    assert base.startswith("images-")


def test_generation_is_deterministic_per_example_whatever_the_chunking():
    lay = datafiles.layout(IMAGES, DataFiles(stored_image_size=24))
    whole = datafiles.generate(lay, IMAGES, 7, 0, 6)
    parts = [datafiles.generate(lay, IMAGES, 7, a, b) for a, b in ((0, 2), (2, 6))]
    for name in whole:
        assert np.array_equal(whole[name], np.concatenate([p[name] for p in parts]))
    assert whole["image"].dtype == np.uint8 and whole["image"].shape == (6, 24, 24, 3)
    assert whole["label"].dtype == np.int32 and whole["label"].shape == (6,)
    other_seed = datafiles.generate(lay, IMAGES, 8, 0, 6)
    assert not np.array_equal(whole["image"], other_seed["image"])
    tokens = datafiles.generate(datafiles.layout(TOKENS, DataFiles()), TOKENS, 0, 0, 50)
    # Zipf ids: the most frequent id is 0, and every id is below the vocabulary size.
    assert tokens["tokens"].max() < 50 and np.bincount(tokens["tokens"].ravel()).argmax() == 0


def test_shards_cover_every_example_once():
    ranges = datafiles.shard_ranges(10, 4)
    assert [list(r) for r in ranges] == [[0, 1], [2, 3, 4], [5, 6], [7, 8, 9]]
    assert datafiles.shard_names(2) == ["train-00000-of-00002", "train-00001-of-00002"]


def fake_folder(tmp_path):
    """A data folder with a manifest that matches its two files."""
    folder = tmp_path / "records-abc"
    folder.mkdir()
    files = []
    for i, content in enumerate((b"first shard", b"second shard")):
        name = f"train-{i:05d}-of-00002.tfrecord"
        (folder / name).write_bytes(content)
        digest = hashlib.sha256(content).hexdigest()
        files.append({"name": name, "examples": 1, "bytes": len(content), "sha256": digest})
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "files": files, "csv": []}))
    return folder


def test_verify_accepts_a_folder_that_matches_its_manifest(tmp_path):
    folder = fake_folder(tmp_path)
    assert len(datafiles.verify(folder)["files"]) == 2


def test_a_missing_file_is_an_error_naming_it(tmp_path):
    folder = fake_folder(tmp_path)
    (folder / "train-00001-of-00002.tfrecord").unlink()
    with pytest.raises(DataError) as info:
        datafiles.verify(folder)
    assert str(info.value).startswith(
        f"data file {folder}/train-00001-of-00002.tfrecord is missing (listed in "
        f"{folder}/manifest.json); delete {folder} to have it made again"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"first", "5 bytes, the manifest says 11"), (b"firsT shard", "its SHA-256 differs")],
)
def test_a_changed_file_is_an_error_naming_it(tmp_path, content, expected):
    folder = fake_folder(tmp_path)
    (folder / "train-00000-of-00002.tfrecord").write_bytes(content)
    with pytest.raises(DataError) as info:
        datafiles.verify(folder)
    message = str(info.value)
    assert message.startswith(f"data file {folder}/train-00000-of-00002.tfrecord is corrupt: ")
    assert expected in message


def test_a_missing_manifest_is_an_error_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"manifest .*/nowhere/manifest\.json is missing"):
        datafiles.verify(tmp_path / "nowhere")


def test_data_root_prefers_the_setting_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "env"))
    assert datafiles.data_root(DataFiles(dir=str(tmp_path / "set"))) == tmp_path / "set"
    assert datafiles.data_root(DataFiles()) == tmp_path / "env"
    monkeypatch.delenv("BENCH_DATA_DIR")
    assert str(datafiles.data_root(DataFiles())).endswith(".cache/bench/data")

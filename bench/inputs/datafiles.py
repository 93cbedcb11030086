"""Data files for ``tfdata`` cells, made deterministically from a seed: nothing is downloaded.

What a model's ``DataSpec`` asks for decides what is written, so every model gets files:

- a float feature named ``image`` of shape ``[H, W, 3]``: JPEG bytes (quality ``jpeg_quality``,
  stored at ``stored_image_size``), so decoding costs what it costs in a real pipeline. The
  pictures are smooth gradients and shapes with mild noise: natural images compress and decode
  like this, while white noise would make JPEGs several times larger and slower to decode;
- integer features (categories, token ids): Zipf-distributed ids below ``vocab``, the long tail
  real categorical columns and text have;
- other float features: standard normal values;
- ``label``: the synthetic teacher's label (``bench.inputs.synthetic``), so training learns.

Each example comes from its own generator seeded by ``(seed, index)``, so a file's content does
not depend on how many shards there are or on chunking. Examples are split into ``shards``
TFRecord files of ``tf.train.Example`` protos, in contiguous ranges; tabular data (no image, no
token sequence, a few columns) is also written as CSV with the same shards, for tools that read
CSV.

Files are kept in a cache folder named by a hash of every parameter that shapes them
(``<root>/<kind>-<hash>/``), with a ``manifest.json`` listing each file's example count, size
and SHA-256. A folder is made once (under a lock, in a temporary folder renamed into place, so a
killed maker leaves no half folder) and checked on every use: a missing or changed file is an
error that names the file, never silently remade, since a benchmark should not quietly read
other data than it says.

Writing needs TensorFlow (JPEG encoding, TFRecord writer), imported when a folder is made;
``verify`` is plain Python.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs.settings import DataFiles
from bench.inputs.synthetic import make_batch, teacher_labels
from bench.limits import InputFileError, read_text_file
from bench.modeldef import DataSpec
from bench.safefiles import open_for_writing

FORMAT = 1  # bump when what is written for the same parameters changes
MAX_MANIFEST_BYTES = 16 * 2**20  # a manifest lists at most 1024 shards: kilobytes
MANIFEST = "manifest.json"
ENV_DIR = "BENCH_DATA_DIR"
IMAGE_FEATURE = "image"
# Per-channel mean and standard deviation of ImageNet in [0, 1]: the normalisation real
# pipelines apply after decoding, applied here too so the model sees centred inputs.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
ZIPF_EXPONENT = 1.1
TABULAR_MAX_COLUMNS = 256
LABEL_CHUNK = 32  # examples per teacher call: amortises its tables, keeps arrays in cache


class DataError(Exception):
    """Data files that cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class Column:
    """How one feature (or the label) is stored and what the pipeline turns it into."""

    name: str
    encoding: str  # "jpeg" | "int" | "float"
    shape: tuple[int, ...]  # as the model sees it (per example)
    stored_shape: tuple[int, ...]  # as written (differs for resized images)
    vocab: int | None = None


@dataclass(frozen=True)
class Layout:
    kind: str  # images | tokens | tabular | records: names the cache folder
    columns: tuple[Column, ...]  # features, then the label
    csv: bool

    @property
    def image(self) -> Column | None:
        return next((c for c in self.columns if c.encoding == "jpeg"), None)

    def example_bytes(self) -> int:
        """Bytes of one decoded example as the pipeline yields it (float32/int32 arrays)."""
        return sum(4 * math.prod(c.shape) for c in self.columns)


def layout(spec: DataSpec, data: DataFiles) -> Layout:
    sample = make_batch(spec, 1, 0)  # the label's shape and dtype, as the synthetic input has it
    columns = []
    for name, feature in spec.features.items():
        if _is_image(name, feature.shape, feature.dtype):
            h, w, c = feature.shape
            side = data.stored_image_size
            stored = (side, side, c) if side else (h, w, c)
            columns.append(Column(name, "jpeg", feature.shape, stored))
        else:
            encoding = "int" if feature.dtype == "int32" else "float"
            columns.append(Column(name, encoding, feature.shape, feature.shape, feature.vocab))
    label = sample["label"]
    encoding = "int" if label.dtype == np.int32 else "float"
    columns.append(Column("label", encoding, label.shape[1:], label.shape[1:]))
    has_image = any(c.encoding == "jpeg" for c in columns)
    width = sum(math.prod(c.shape) for c in columns)
    tabular = (
        not has_image
        and not spec.tokens_per_example
        and all(len(c.shape) <= 1 for c in columns)
        and width <= TABULAR_MAX_COLUMNS
    )
    kind = (
        "images"
        if has_image
        else "tokens"
        if spec.tokens_per_example
        else "tabular"
        if tabular
        else "records"
    )
    return Layout(kind, tuple(columns), tabular)


def _is_image(name: str, shape: tuple[int, ...], dtype: str) -> bool:
    return name == IMAGE_FEATURE and dtype == "float32" and len(shape) == 3 and shape[-1] == 3


def parameters(spec: DataSpec, data: DataFiles, seed: int) -> dict[str, Any]:
    """Everything that shapes the files: their hash names the cache folder."""
    lay = layout(spec, data)
    return {
        "format": FORMAT,
        "kind": lay.kind,
        "columns": [asdict(c) for c in lay.columns],
        "task": spec.task,
        "num_outputs": spec.num_outputs,
        "examples": data.examples,
        "shards": data.shards,
        "jpeg_quality": data.jpeg_quality if lay.image else None,
        "seed": seed,
    }


def folder_name(params: dict[str, Any]) -> str:
    text = json.dumps(params, sort_keys=True, default=list)
    return f"{params['kind']}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def data_root(data: DataFiles) -> Path:
    if data.dir:
        return Path(data.dir).expanduser()
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    return Path("~/.cache/bench/data").expanduser()


def shard_names(shards: int) -> list[str]:
    return [f"train-{i:05d}-of-{shards:05d}" for i in range(shards)]


def shard_ranges(examples: int, shards: int) -> list[range]:
    return [range(i * examples // shards, (i + 1) * examples // shards) for i in range(shards)]


# --- generating values (pure numpy, deterministic) -------------------------------------------


_ZIPF_CDF: dict[int, np.ndarray] = {}


def _zipf(rng: np.random.Generator, vocab: int, shape: tuple[int, ...]) -> np.ndarray:
    if vocab not in _ZIPF_CDF:
        weights = 1.0 / np.arange(1, vocab + 1) ** ZIPF_EXPONENT
        _ZIPF_CDF[vocab] = np.cumsum(weights) / weights.sum()
    ids = np.searchsorted(_ZIPF_CDF[vocab], rng.random(shape), side="right")
    return np.minimum(ids, vocab - 1).astype(np.int32)


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _picture(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A smooth, photo-like uint8 picture: gradients, low-frequency waves, shapes, mild noise."""
    h, w, c = shape
    if (h, w) not in _GRIDS:
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        _GRIDS[(h, w)] = (y / h, x / w)
    y, x = _GRIDS[(h, w)]
    img = np.empty((h, w, c), np.float32)
    for ch in range(c):
        fy, fx, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
        wave = np.sin(np.float32(2 * np.pi) * (np.float32(fx) * x + np.float32(fy) * y) + phase)
        img[..., ch] = (
            np.float32(rng.uniform(60, 190))
            + np.float32(rng.uniform(-60, 60)) * x
            + np.float32(rng.uniform(-60, 60)) * y
            + np.float32(rng.uniform(10, 40)) * wave
        )
    for _ in range(rng.integers(2, 6)):  # a few filled ellipses of flat colour
        cy, cx, ry, rx = rng.uniform(0, 1), rng.uniform(0, 1), *rng.uniform(0.05, 0.3, size=2)
        colour = rng.uniform(0, 255, size=c).astype(np.float32)
        # Only the ellipse's bounding box is tested, not the whole picture.
        top, bottom = max(int((cy - ry) * h), 0), min(int((cy + ry) * h) + 1, h)
        left, right = max(int((cx - rx) * w), 0), min(int((cx + rx) * w) + 1, w)
        yy, xx = y[top:bottom, left:right], x[top:bottom, left:right]
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        img[top:bottom, left:right][inside] = colour
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(6)
    return np.clip(img, 0, 255).astype(np.uint8)


def generate(
    lay: Layout, spec: DataSpec, seed: int, start: int, stop: int
) -> dict[str, np.ndarray]:
    """Examples ``start..stop`` as stored: uint8 pictures at stored size, ids, floats, labels."""
    values: dict[str, list[np.ndarray]] = {c.name: [] for c in lay.columns if c.name != "label"}
    for index in range(start, stop):
        rng = np.random.default_rng([seed % 2**32, index])
        for col in lay.columns:
            if col.name == "label":
                continue
            if col.encoding == "jpeg":
                values[col.name].append(_picture(rng, col.stored_shape))
            elif col.encoding == "int":
                values[col.name].append(_zipf(rng, col.vocab or 2, col.shape))
            else:
                values[col.name].append(rng.standard_normal(col.shape, dtype=np.float32))
    out = {name: np.stack(vals) for name, vals in values.items()}
    # Label each example by what the model will see (pictures in [0, 1], normalised).
    mean, std = np.float32(IMAGE_MEAN), np.float32(IMAGE_STD)
    labels = []
    for i in range(0, stop - start, LABEL_CHUNK):
        seen = {k: v[i : i + LABEL_CHUNK] for k, v in out.items()}
        for col in lay.columns:
            if col.encoding == "jpeg":
                seen[col.name] = (seen[col.name] / np.float32(255) - mean) / std
        labels.append(teacher_labels(spec, seen))
    out["label"] = np.concatenate(labels) if labels else np.zeros((0,), np.int32)
    return out


# --- files on disk ----------------------------------------------------------------------------


@dataclass
class DataSet:
    """A verified data folder, ready to read."""

    dir: Path
    layout: Layout
    examples: int
    files: list[Path]
    manifest: dict[str, Any]
    made: bool = False  # made by this call (False: found in the cache)
    make_s: float = 0.0
    verify_s: float = 0.0

    def describe(self) -> dict[str, Any]:
        """Where the data is, for the cell record."""
        return {
            "dir": str(self.dir),
            "kind": self.layout.kind,
            "examples": self.examples,
            "files": len(self.files),
            "bytes": sum(f["bytes"] for f in self.manifest["files"]),
            "made": self.made,
            "make_s": round(self.make_s, 3),
            "verify_s": round(self.verify_s, 3),
        }


def ensure(spec: DataSpec, data: DataFiles, seed: int) -> DataSet:
    """The verified folder for these parameters, made first if the cache has none."""
    params = parameters(spec, data, seed)
    root = data_root(data)
    name = folder_name(params)
    folder = root / name
    made, make_s = False, 0.0
    if not (folder / MANIFEST).is_file():
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create data folder {root}: {exc.strerror}") from exc
        with _lock(root / f".{name}.lock"):
            if not (folder / MANIFEST).is_file():  # another process may have made it meanwhile
                start = time.perf_counter()
                _make(folder, spec, data, seed, params)
                made, make_s = True, time.perf_counter() - start
    start = time.perf_counter()
    manifest = verify(folder)
    dataset = DataSet(
        dir=folder,
        layout=layout(spec, data),
        examples=data.examples,
        files=[folder / f["name"] for f in manifest["files"]],
        manifest=manifest,
        made=made,
        make_s=make_s,
    )
    dataset.verify_s = time.perf_counter() - start
    return dataset


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    try:
        handle = open_for_writing(path, append=True)  # never truncates a link's target
    except OSError as exc:
        raise DataError(f"cannot open the data lock {path}: {exc.strerror}") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def verify(folder: Path) -> dict[str, Any]:
    """The manifest, once every file it lists is present with its size and SHA-256."""
    path = folder / MANIFEST
    remedy = f"delete {folder} to have it made again"
    try:
        manifest = json.loads(read_text_file(path, "a data manifest", MAX_MANIFEST_BYTES))
    except InputFileError as exc:
        missing = not path.exists() and not path.is_symlink()
        what = f"data manifest {path} is missing" if missing else f"data manifest {exc}"
        raise DataError(f"{what}; {remedy}") from None
    except (ValueError, RecursionError) as exc:
        raise DataError(f"data manifest {path} is unreadable ({exc}); {remedy}") from None
    _check_manifest(manifest, path, remedy)
    for entry in [*manifest["files"], *manifest.get("csv", [])]:
        file = folder / entry["name"]
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            raise DataError(f"data file {file} is missing (listed in {path}); {remedy}") from None
        if size != entry["bytes"]:
            raise DataError(
                f"data file {file} is corrupt: {size} bytes, the manifest says {entry['bytes']}; "
                f"{remedy}"
            )
        if _sha256(file) != entry["sha256"]:
            raise DataError(
                f"data file {file} is corrupt: its SHA-256 differs from the manifest's; {remedy}"
            )
    return manifest


def _check_manifest(manifest: Any, path: Path, remedy: str) -> None:
    """The manifest's shape: lists of entries, each a plain file name in the folder (never a
    path that leads out of it), a size and a digest; DataError naming the field otherwise."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise DataError(f"data manifest {path}: files: expected a list of entries; {remedy}")
    for field in ("files", "csv"):
        entries = manifest.get(field, [])
        if not isinstance(entries, list):
            raise DataError(f"data manifest {path}: {field}: expected a list; {remedy}")
        for i, entry in enumerate(entries):
            name = entry.get("name") if isinstance(entry, dict) else None
            ok = (
                isinstance(name, str)
                and name not in ("", ".", "..")
                and "/" not in name
                and "\\" not in name
                and isinstance(entry.get("bytes"), int)
                and isinstance(entry.get("sha256"), str)
            )
            if not ok:
                raise DataError(
                    f"data manifest {path}: {field}[{i}]: expected a file name in the folder, "
                    f"its bytes and sha256; {remedy}"
                )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _make(folder: Path, spec: DataSpec, data: DataFiles, seed: int, params: dict[str, Any]) -> None:
    tf = _tensorflow()
    lay = layout(spec, data)
    # A fresh private folder (nothing in it can have been planted), renamed into place when
    # whole, so a killed maker leaves no half folder under the real name.
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    start = time.perf_counter()
    files, csvs = [], []
    try:
        for name, span in zip(
            shard_names(data.shards), shard_ranges(data.examples, data.shards), strict=True
        ):
            values = generate(lay, spec, seed, span.start, span.stop)
            record_file = tmp / f"{name}.tfrecord"
            with tf.io.TFRecordWriter(str(record_file)) as writer:
                for i in range(len(span)):
                    writer.write(_example(tf, lay, values, i, data.jpeg_quality))
            files.append(_entry(record_file, len(span)))
            if lay.csv:
                csv_file = tmp / f"{name}.csv"
                _write_csv(csv_file, lay, values)
                csvs.append(_entry(csv_file, len(span)))
        manifest = {
            "format": FORMAT,
            "params": params,
            "files": files,
            "csv": csvs,
            "csv_columns": csv_header(lay) if lay.csv else [],
            "make_s": round(time.perf_counter() - start, 3),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        os.chmod(tmp, 0o755)  # readable as a cache folder made by mkdir would be
        try:
            os.rename(tmp, folder)  # onto a link or a file: ENOTDIR, never through it
        except OSError as exc:
            raise DataError(
                f"cannot put the data folder in place at {folder}: {exc.strerror}; expected "
                "nothing there but a folder bench made"
            ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _entry(path: Path, examples: int) -> dict[str, Any]:
    return {
        "name": path.name,
        "examples": examples,
        "bytes": path.stat().st_size,
        "sha256": _sha256(path),
    }


def _example(tf: Any, lay: Layout, values: dict[str, np.ndarray], i: int, quality: int) -> bytes:
    feature = {}
    for col in lay.columns:
        value = values[col.name][i]
        if col.encoding == "jpeg":
            jpeg = tf.io.encode_jpeg(value, quality=quality).numpy()
            feature[col.name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg]))
        elif col.encoding == "int":
            ints = np.asarray(value, np.int64).ravel()
            feature[col.name] = tf.train.Feature(int64_list=tf.train.Int64List(value=ints))
        else:
            floats = np.asarray(value, np.float32).ravel()
            feature[col.name] = tf.train.Feature(float_list=tf.train.FloatList(value=floats))
    proto = tf.train.Example(features=tf.train.Features(feature=feature))
    return proto.SerializeToString()


def csv_header(lay: Layout) -> list[str]:
    names = []
    for col in lay.columns:
        width = math.prod(col.shape)
        names += [col.name] if not col.shape else [f"{col.name}_{j}" for j in range(width)]
    return names


def _write_csv(path: Path, lay: Layout, values: dict[str, np.ndarray]) -> None:
    # str() of a numpy float32 is the shortest text that reads back to the same float32.
    count = len(values["label"])
    flat = [values[c.name].reshape(count, -1) for c in lay.columns]
    with open(path, "w") as handle:
        handle.write(",".join(csv_header(lay)) + "\n")
        for i in range(count):
            handle.write(",".join(str(v) for part in flat for v in part[i]) + "\n")


def _tensorflow() -> Any:
    from bench.inputs.tf_runtime import import_tensorflow

    return import_tensorflow()


# --- reading back (for tests and for users checking what was written) -------------------------


def read_examples(dataset: DataSet) -> Iterator[dict[str, np.ndarray]]:
    """Every example in file order, as stored: pictures decoded to uint8 at stored size."""
    tf = _tensorflow()
    description = {c.name: _parse_spec(tf, c) for c in dataset.layout.columns}
    for file in dataset.files:
        for record in tf.data.TFRecordDataset(str(file)):
            parsed = tf.io.parse_single_example(record, description)
            out = {}
            for col in dataset.layout.columns:
                value = parsed[col.name]
                if col.encoding == "jpeg":
                    value = tf.io.decode_jpeg(value, channels=3)
                out[col.name] = value.numpy()
            yield out


def _parse_spec(tf: Any, col: Column) -> Any:
    if col.encoding == "jpeg":
        return tf.io.FixedLenFeature([], tf.string)
    dtype = tf.int64 if col.encoding == "int" else tf.float32
    return tf.io.FixedLenFeature(list(col.shape), dtype)


def read_csv(dataset: DataSet) -> Iterator[dict[str, np.ndarray]]:
    """The CSV copy of tabular data, example by example, shaped like ``read_examples``."""
    for entry in dataset.manifest["csv"]:
        lines = (dataset.dir / entry["name"]).read_text().splitlines()
        for line in lines[1:]:
            cells = line.split(",")
            out, pos = {}, 0
            for col in dataset.layout.columns:
                width = math.prod(col.shape)
                raw = cells[pos : pos + width]
                pos += width
                dtype = np.int64 if col.encoding == "int" else np.float32
                out[col.name] = np.array([dtype(v) for v in raw], dtype).reshape(col.shape)
            yield out


def make_for_model(model: str, model_args: dict[str, Any], data: DataFiles, seed: int) -> DataSet:
    """``bench data make``: the files a ``tfdata`` cell of ``model`` reads, made or reused."""
    from bench.modeldef import load_model

    definition = load_model(model)
    spec = definition.data_spec(definition.Args.model_validate(model_args))
    return ensure(spec, data, seed)

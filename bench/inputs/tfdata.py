"""The ``tfdata`` input: a tf.data pipeline over the sharded TFRecord files of ``datafiles``.

Read -> parse -> decode -> preprocess -> batch -> prefetch, with each step's parallelism,
placement and caching set by ``PipelineSettings`` (``naive``, ``tuned`` or knobs in between).
Both frameworks use this same pipeline: TensorFlow iterates it as tensors, JAX as numpy arrays.

TensorFlow in a JAX worker. DESIGN keeps TensorFlow and JAX in separate processes; tf.data is
the exception, by choice. A JAX ``tfdata`` cell imports TensorFlow in its own worker with every
GPU and TPU hidden from TensorFlow (``tf.config.set_visible_devices([], ...)``), so TensorFlow
runs on the host CPU only, allocates no accelerator memory and leaves the device to JAX. This is
what JAX users deploy: the Flax examples and big_vision feed JAX from tf.data this way. The
alternative, a producer process writing batches into shared memory, would add a copy and a
process hop that no real JAX job has, and measure that instead. Only ``tfdata`` cells import
TensorFlow; a JAX worker that never runs one never does. Keras is never imported there.

Honest knobs. tf.data silently parallelises maps (``map_parallelization``) and injects a
prefetch (``inject_prefetch``) by default; when a knob says no, those optimisations are turned
off too, so ``naive`` really is sequential and each knob measures what it names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.inputs.datafiles import IMAGE_MEAN, IMAGE_STD, Column, DataSet
from bench.inputs.settings import PipelineSettings

MAX_CYCLE_LENGTH = 16  # files read at once by the parallel interleave


@dataclass
class Pipeline:
    dataset: Any  # tf.data.Dataset of {feature: [B, ...], "label": [B, ...]}
    settings: PipelineSettings
    applied: dict[str, Any]  # each knob as it took effect, with the reason where it did not
    cache_batches: int  # elements (calls) to pull before the cache is complete (0: no cache)


def build(
    tf: Any,
    data: DataSet,
    settings: PipelineSettings,
    batch_size: int,
    per_call: int = 1,
    shard: tuple[int, int] = (0, 1),
) -> Pipeline:
    """The pipeline for ``settings``; with ``per_call`` K > 1 it yields ``[K, batch, ...]``
    stacks, one per compiled call of K steps. ``shard`` (index, count): process ``index`` of
    ``count`` reads every count-th file, so processes of a multi-host job read different data."""
    if data.examples < batch_size:
        raise ValueError(
            f"data.examples={data.examples} is smaller than batch_size={batch_size}: "
            "every batch must be full"
        )
    lay = data.layout
    autotune = tf.data.AUTOTUNE
    applied: dict[str, Any] = {}
    index, count = shard
    if count > len(data.files):
        raise ValueError(
            f"{count} processes read {len(data.files)} data files: set data.shards to at least "
            f"{count} so each process has its own"
        )
    files = [str(f) for f in data.files][index::count]
    ds = _records(tf, files, settings, applied)

    calls = autotune if settings.parallel_map else None
    applied["parallel_map"] = "num_parallel_calls=AUTOTUNE" if settings.parallel_map else False
    description = {c.name: _feature(tf, c) for c in lay.columns}
    example_bytes = lay.example_bytes()
    total = example_bytes * data.examples
    budget = settings.cache_max_mb * 2**20
    cache = settings.cache and total <= budget
    if settings.cache and not cache:
        applied["cache"] = (
            f"not applied: decoded examples need {_size(total)} > "
            f"cache_max_mb={settings.cache_max_mb}"
        )
    else:
        applied["cache"] = f"in memory, {_size(total)}" if cache else False

    vectorised = settings.batch_before_map and lay.image is None
    if settings.batch_before_map and not vectorised:
        applied["batch_before_map"] = "not applicable: JPEG decode is per image"
    else:
        applied["batch_before_map"] = vectorised

    def parse_batch(records: Any) -> dict[str, Any]:
        return _cast(tf, lay.columns, tf.io.parse_example(records, description))

    def parse_one(record: Any) -> dict[str, Any]:
        parsed = tf.io.parse_single_example(record, description)
        for col in lay.columns:
            if col.encoding == "jpeg":
                parsed[col.name] = _image(tf, parsed[col.name], col)
        return _cast(tf, lay.columns, parsed)

    if vectorised:
        # Parse whole batches: one parse_example call per batch instead of one per record.
        if cache:
            ds = ds.batch(batch_size, drop_remainder=True).map(
                parse_batch, num_parallel_calls=calls
            )
            ds = ds.cache().repeat()
        else:
            ds = ds.repeat().batch(batch_size, drop_remainder=True)
            ds = ds.map(parse_batch, num_parallel_calls=calls)
    else:
        ds = ds.map(parse_one, num_parallel_calls=calls)
        if cache:
            ds = ds.cache()
        # Repeat before batching: batches stay full across epoch ends, shapes stay static.
        ds = ds.repeat().batch(batch_size, drop_remainder=True)

    if per_call > 1:
        ds = ds.batch(per_call, drop_remainder=True)
        applied["steps_per_call"] = f"{per_call} batches stacked per call (batch({per_call}))"
    if settings.prefetch:
        ds = ds.prefetch(autotune)
    applied["prefetch"] = "AUTOTUNE" if settings.prefetch else False

    ds = ds.with_options(_options(tf, settings))
    # The cache is complete once its first epoch has gone through (plus one element).
    cache_batches = (
        math.ceil((math.ceil(data.examples / batch_size) + 1) / per_call) if cache else 0
    )
    return Pipeline(ds, settings, applied, cache_batches)


def _records(tf: Any, files: list[str], settings: PipelineSettings, applied: dict) -> Any:
    """The serialized records of ``files``: interleaved reads, or one file after another."""
    if not settings.parallel_reads:
        applied["parallel_reads"] = False
        return tf.data.TFRecordDataset(files)
    cycle = min(len(files), MAX_CYCLE_LENGTH)
    applied["parallel_reads"] = f"interleave over {cycle} files, num_parallel_calls=AUTOTUNE"
    return tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset,
        cycle_length=cycle,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def _options(tf: Any, settings: PipelineSettings) -> Any:
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_optimization.map_parallelization = settings.parallel_map
    if hasattr(options.experimental_optimization, "inject_prefetch"):
        options.experimental_optimization.inject_prefetch = settings.prefetch
    return options


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.1f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:,.1f} KiB"


def _feature(tf: Any, col: Column) -> Any:
    if col.encoding == "jpeg":
        return tf.io.FixedLenFeature([], tf.string)
    dtype = tf.int64 if col.encoding == "int" else tf.float32
    return tf.io.FixedLenFeature(list(col.shape), dtype)


def _image(tf: Any, encoded: Any, col: Column) -> Any:
    """Decode, scale to [0, 1], resize to the model's size when stored larger, normalise."""
    image = tf.io.decode_jpeg(encoded, channels=3)
    image = tf.image.convert_image_dtype(image, tf.float32)
    if col.stored_shape != col.shape:
        image = tf.image.resize(image, col.shape[:2], method="bilinear")
    image = (image - tf.constant(IMAGE_MEAN)) / tf.constant(IMAGE_STD)
    return tf.ensure_shape(image, col.shape)


def _cast(tf: Any, columns: tuple[Column, ...], parsed: dict[str, Any]) -> dict[str, Any]:
    # Integer features are int64 in a tf.train.Example; models take int32 (as the DataSpec says).
    return {
        c.name: tf.cast(parsed[c.name], tf.int32) if c.encoding == "int" else parsed[c.name]
        for c in columns
    }

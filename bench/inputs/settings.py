"""Input-pipeline settings as the scenario writes them: presets, knobs, labels, data files.

Framework-free (``bench validate`` reads it). A pipeline is a preset plus any knobs set on their
own, so a sweep can isolate one knob:

    pipeline: tuned                              # a preset
    pipeline: {preset: tuned, cache: false}      # a preset with one knob changed
    matrix: {pipeline: [naive, tuned, "tuned+cache=false"]}

Every setting has one canonical *label*, ``preset`` followed by ``+knob=value`` for each knob
that differs from the preset (``tuned+cache=false``). The label is what a cell key holds and what
its id ends with; it parses back to the same settings, so a record's key alone says exactly which
pipeline ran.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, replace
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)

from bench.limits import MAX_CACHE_MB, MAX_EXAMPLES, MAX_IMAGE_SIZE, count

Preset = Literal["naive", "tuned"]


@dataclass(frozen=True)
class PipelineSettings:
    """Every knob of a ``tfdata`` pipeline, resolved (no "from the preset" left)."""

    # Read the shards with a parallel interleave instead of one file after another.
    parallel_reads: bool
    # map(num_parallel_calls=AUTOTUNE) instead of a sequential map.
    parallel_map: bool
    # Batch serialized records first and parse whole batches (vectorised parse_example); only
    # where every feature parses without a per-example decode (not JPEG images).
    batch_before_map: bool
    # Keep decoded examples in memory after the first epoch, when they fit in cache_max_mb.
    cache: bool
    cache_max_mb: int
    # prefetch(AUTOTUNE) at the end of the host pipeline: host work overlaps the step.
    prefetch: bool
    # Batches placed on the device ahead of the step (JAX: a background thread and a queue of
    # this depth; TF: prefetch_to_device on a GPU). 0 places each batch when the step asks.
    device_prefetch: int


PRESETS: dict[str, PipelineSettings] = {
    # What a first tf.data pipeline looks like: everything sequential, nothing overlapped.
    "naive": PipelineSettings(
        parallel_reads=False,
        parallel_map=False,
        batch_before_map=False,
        cache=False,
        cache_max_mb=1024,
        prefetch=False,
        device_prefetch=0,
    ),
    # The tf.data performance guide's recipe, plus double buffering onto the device.
    "tuned": PipelineSettings(
        parallel_reads=True,
        parallel_map=True,
        batch_before_map=True,
        cache=True,
        cache_max_mb=1024,
        prefetch=True,
        device_prefetch=2,
    ),
}
KNOBS: tuple[str, ...] = tuple(PipelineSettings.__dataclass_fields__)
DEFAULT_PIPELINE = "tuned"


class Pipeline(BaseModel):
    """A preset with any knobs overridden; knobs left out come from the preset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Preset = DEFAULT_PIPELINE
    parallel_reads: bool | None = None
    parallel_map: bool | None = None
    batch_before_map: bool | None = None
    cache: bool | None = None
    cache_max_mb: count(MAX_CACHE_MB) | None = None
    prefetch: bool | None = None
    device_prefetch: count(16, ge=0) | None = None

    def resolve(self) -> PipelineSettings:
        given = {k: v for k, v in self.model_dump(exclude={"preset"}).items() if v is not None}
        return replace(PRESETS[self.preset], **given)

    def label(self) -> str:
        base, resolved = PRESETS[self.preset], asdict(self.resolve())
        changed = [k for k in KNOBS if resolved[k] != getattr(base, k)]
        return "".join([self.preset, *(f"+{k}={_show(resolved[k])}" for k in changed)])


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_label(label: str) -> Pipeline:
    """``tuned+cache=false+device_prefetch=0`` -> Pipeline; ValueError says what is wrong."""
    preset, *parts = label.strip().split("+")
    if preset not in PRESETS:
        raise ValueError(f"a preset ({' or '.join(PRESETS)}), then any +knob=value")
    given: dict[str, Any] = {"preset": preset}
    for part in parts:
        knob, sep, raw = part.partition("=")
        if not sep or knob not in KNOBS:
            near = difflib.get_close_matches(knob, KNOBS, n=1)
            hint = f" ({knob!r}: did you mean {near[0]!r}?)" if near else ""
            raise ValueError(f"+knob=value with a knob among {', '.join(KNOBS)}{hint}")
        kind = type(getattr(PRESETS[preset], knob))
        if kind is bool:
            if raw.lower() not in ("true", "false"):
                raise ValueError(f"{knob}=true or {knob}=false")
            given[knob] = raw.lower() == "true"
        else:
            try:
                given[knob] = int(raw)
            except ValueError as exc:
                raise ValueError(f"{knob}=<integer>") from exc
    return _validated(given)


def _validated(given: dict[str, Any]) -> Pipeline:
    try:
        return Pipeline.model_validate(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{where}: {first['msg']}".replace("Input should be ", "")) from None


def to_label(value: Any) -> str:
    """The canonical label of a preset name, a label or a mapping (used as a validator)."""
    if isinstance(value, str):
        return parse_label(value).label()
    if isinstance(value, Pipeline):
        return value.label()
    if isinstance(value, dict):
        return _validated(value).label()
    raise ValueError(
        "a pipeline preset, a label like tuned+cache=false, or {preset: ..., knob: ...}"
    )


def resolve_label(label: str) -> PipelineSettings:
    return parse_label(label).resolve()


# What a scenario field accepts: a preset, a label, or a mapping; always stored as the label.
# One validator for all three forms, so a mistake gives one message, not one per union member.
PipelineChoice = Annotated[
    str,
    BeforeValidator(to_label),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "description": "naive | tuned, then any +knob=value"},
                Pipeline.model_json_schema(),
            ]
        }
    ),
]


class DataFiles(BaseModel):
    """The files a ``tfdata`` cell reads, made on first use from the scenario's seed.

    Files live in ``dir`` (default ``$BENCH_DATA_DIR``, else ``~/.cache/bench/data``), in a
    folder named by a hash of every parameter that shapes them (these fields, the seed and the
    model's data spec), so a second run, or the other framework, reuses them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    examples: count(MAX_EXAMPLES) = Field(2048, description="examples written (one epoch)")
    shards: count(1024) = Field(8, description="TFRecord files the examples are split into")
    stored_image_size: count(MAX_IMAGE_SIZE) | None = Field(
        None,
        description="images are stored as JPEGs of this height and width and resized to the "
        "model's image size after decoding (as real pipelines do); default: the model's size",
    )
    jpeg_quality: count(100) = 90
    dir: str | None = Field(
        None, description="cache root; default $BENCH_DATA_DIR or ~/.cache/bench/data"
    )

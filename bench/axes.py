"""The axes of a scenario matrix, each declared once, and the cell key built from them.

Everything that lists axes reads ``AXES``: the scenario models (``bench.run.scenario`` builds
``Axes``, ``Matrix`` and the Scenario's top-level axis fields from it), ``CellKey`` (what crosses
the process boundary to the worker and lands in ``cells.jsonl``), the cell id, the ``--where``
fields (``bench.read.runset``), the terminal table's key columns and the labels people read
(``batch 256``, ``xla on``, ``steps/call 8``). Adding an axis is one ``Axis`` here, plus the code
that acts on it.

Rank 0: only the workload registry (rank 0 too) is imported here. Three value types belong to
higher layers, so the scenario supplies them when it builds its models (``Axis.accepts is
None``): ``workload`` and ``framework``, whose choices are the workload and backend registries'
names, and ``pipeline``, whose accepted forms (a preset, a label, a mapping of knobs) live in
``bench.inputs.settings``. Which axes belong to one workload only, and which it fixes, is each
workload's own declaration (``bench.workloads.spec.WorkloadSpec.axes`` and ``fixed``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from bench.limits import (
    MAX_BATCH,
    MAX_BATCH_TIMEOUT_MS,
    MAX_QPS,
    MAX_REPLICAS,
    MAX_SEQ_LEN,
    MAX_STEPS_PER_CALL,
    MAX_THREADS,
    count,
)
from bench.workloads import registry as workloads

MODEL = "model"  # the key's first field: not an axis (one model per scenario), but in every key


@dataclass(frozen=True)
class Axis:
    """One axis of the matrix: its values, how ids, tables, labels and ``--where`` show it."""

    name: str
    # What the key holds (JSON types), for CellKey.
    type: Any
    # What a scenario accepts (a pydantic annotation); None: supplied by the scenario.
    accepts: Any
    # The top-level value when neither the scenario nor its matrix names the axis; ``...``:
    # supplied by the scenario with ``accepts``.
    default: Any
    help: str
    # For people: "{}" with the value; bools read "on"/"off".
    label: str = "{}"
    # Terminal table header (default: the name).
    column: str = ""
    # --where: "number" (compared numerically, in ``unit``), "text" (words; bools true/false).
    where: Literal["text", "number"] = "text"
    unit: str = ""
    # The cell id: a format for its part, and where the part goes (ids put framework first,
    # while keys put workload first; both orders are older than this registry).
    id: str = "{}"
    id_slot: int = 0
    # "always": every id has the part; "changed": only when the value is not the default, so
    # ids from before the axis existed stay valid.
    in_id: Literal["always", "changed"] = "always"
    # A conditional axis means something only where another axis takes one of some values
    # (``pipeline`` only for ``input: tfdata``); elsewhere it is left out of the key and id, so
    # cells that differ only in it collapse into one.
    applies: tuple[str, tuple[Any, ...]] | None = None
    # Where another axis takes one of some values, this axis has one value whatever is asked
    # (JAX compiles every step with XLA): the key records it, ids and tables say nothing.
    fixed: tuple[str, tuple[Any, ...], Any] | None = None
    # Means something only for the workloads that declare it (``WorkloadSpec.axes``).
    by_workload: bool = False

    @property
    def header(self) -> str:
        return self.column or self.name

    @property
    def conditional(self) -> bool:
        """Left out of keys where it does not apply (on another axis, or on the workload)."""
        return self.applies is not None or self.by_workload

    def applies_to(self, key: Mapping[str, Any]) -> bool:
        if self.by_workload and not workloads.declares_axis(key.get("workload"), self.name):
            return False
        return self.applies is None or key.get(self.applies[0]) in self.applies[1]

    def fixed_value(self, key: Mapping[str, Any]) -> tuple[bool, Any]:
        """Whether the value carries no information (fixed by the workload or another axis),
        and the value it is fixed at."""
        by_workload = workloads.fixed_axes(key.get("workload"))
        if self.name in by_workload:
            return True, by_workload[self.name]
        if self.fixed is not None and key.get(self.fixed[0]) in self.fixed[1]:
            return True, self.fixed[2]
        return False, None

    def is_fixed(self, key: Mapping[str, Any]) -> bool:
        return self.fixed_value(key)[0]


AXES: tuple[Axis, ...] = (
    Axis(
        "workload",
        str,
        None,
        "train",
        "train, predict (offline batches), serve (online requests under load), or a "
        "registered plug-in (bench.workloads.registry)",
        id_slot=2,
    ),
    Axis("framework", str, None, "jax", "the framework (a backend name)", id_slot=0),
    Axis("device", str, Literal["cpu", "gpu", "tpu"], "cpu", "cpu, gpu or tpu", id_slot=1),
    Axis(
        "batch_size",
        int,
        count(MAX_BATCH),
        32,
        "examples per step (the global batch, split over the replicas)",
        label="batch {}",
        column="batch",
        where="number",
        unit="examples",
        id="bs{}",
        id_slot=3,
    ),
    Axis(
        "precision",
        str,
        Literal["float32", "bfloat16", "float16", "dynamic_int8", "int8"],
        "float32",
        "float32, bfloat16 or float16 (GPUs without bfloat16 units: T4, V100); LiteRT also "
        "dynamic_int8 (int8 weights, dynamic-range activations) and int8 (full integer, "
        "calibrated); what each backend accepts: docs/edge.md",
        id_slot=4,
    ),
    Axis(
        "input",
        str,
        Literal["synthetic", "numpy", "tfdata"],
        "synthetic",
        "where batches come from: synthetic, numpy or tfdata",
        label="input {}",
        id_slot=5,
    ),
    Axis(
        "pipeline",
        str,
        None,
        ...,
        "tfdata pipeline: a preset, a label or {preset, knobs...} (tfdata cells only)",
        label="pipeline {}",
        id_slot=6,
        applies=("input", ("tfdata",)),
    ),
    Axis(
        "xla",
        bool,
        bool,
        False,
        "TensorFlow: compile the step with XLA (tf.function jit_compile). JAX always compiles "
        "with XLA: its cells record true whatever is asked",
        label="xla {}",
        id="xla",
        id_slot=7,
        in_id="changed",
        # JAX compiles every step with XLA. Stated here, not on the backend, because cell ids
        # and labels are made from stored keys on the reading side, which never loads a backend;
        # tests/test_backends.py checks that the names are registered backends.
        fixed=("framework", ("jax",), True),
        # LiteRT runs a converted flatbuffer: no XLA to turn on or off, so its keys have none.
        applies=("framework", ("jax", "tensorflow")),
    ),
    Axis(
        "steps_per_call",
        int,
        count(MAX_STEPS_PER_CALL),
        1,
        "K steps (or batch predictions) per compiled call; times are per step",
        label="steps/call {}",
        column="steps/call",
        where="number",
        unit="steps",
        id="k{}",
        id_slot=8,
        in_id="changed",
    ),
    Axis(
        "replicas",
        int | str,
        count(MAX_REPLICAS) | Literal["all"],
        1,
        'data-parallel replicas: a device count, or "all" for every device the worker sees '
        "(resolved at run time)",
        label="replicas {}",
        where="number",
        unit="devices",
        id="r{}",
        id_slot=9,
        in_id="changed",
    ),
    # Online serving (``workload: serve``): how requests arrive and how the server batches
    # them. Each applies where the axis before it allows (single-stream load has no rate and
    # no batching), so train and predict keys never carry them.
    Axis(
        "arrivals",
        str,
        Literal["poisson", "constant", "gamma", "single_stream", "offline"],
        "poisson",
        "serve, generate: request arrivals, poisson or constant at target_qps (open loop); "
        "serve: single_stream (one request at a time, the next when it is answered); generate: "
        "gamma (gaps with generate.burstiness as their coefficient of variation) or offline "
        "(every request at once: throughput with a full queue)",
        label="{} arrivals",
        id="{}",
        id_slot=11,
        in_id="changed",
        by_workload=True,
    ),
    Axis(
        "target_qps",
        float | str,
        Annotated[float, Field(gt=0, le=MAX_QPS)] | Literal["search"],
        "search",
        "serve, generate: offered requests/s, or search for the highest rate that meets the slo",
        label="{} QPS",
        column="target QPS",
        id="q{}",
        id_slot=12,
        applies=("arrivals", ("poisson", "constant", "gamma")),
    ),
    Axis(
        "max_batch_size",
        int,
        count(MAX_BATCH),
        8,
        "serve: the most requests in one batch; compiled buckets are the powers of two below "
        "it and itself",
        label="max batch {}",
        column="max batch",
        where="number",
        unit="requests",
        id="mb{}",
        id_slot=13,
        applies=("arrivals", ("poisson", "constant")),
        by_workload=True,
    ),
    Axis(
        "batch_timeout_ms",
        float,
        Annotated[float, Field(ge=0, le=MAX_BATCH_TIMEOUT_MS)],
        2.0,
        "serve: how long a batch formed behind a running one may wait to fill (a request "
        "reaching an idle server runs at once)",
        label="timeout {} ms",
        column="timeout ms",
        where="number",
        unit="ms",
        id="to{}",
        id_slot=14,
        applies=("arrivals", ("poisson", "constant")),
        by_workload=True,
    ),
    Axis(
        "endpoint",
        str,
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_]*$", max_length=40)],
        "in_process",
        "serve and generate: in_process (the worker's own server or engine), or the name of an "
        "entry of endpoints: (a model server driven over the network)",
        label="endpoint {}",
        id="{}",
        id_slot=15,
        in_id="changed",
        by_workload=True,
    ),
    # Text generation (``workload: generate``): the engine's scheduler and its compiled shapes.
    Axis(
        "scheduler",
        str,
        Literal["static", "continuous"],
        "continuous",
        "generate: static (a batch starts together, ends with its longest sequence) or "
        "continuous (a finished sequence's slot takes a waiting request at the next step)",
        label="{} batching",
        id="{}",
        id_slot=17,
        by_workload=True,
    ),
    Axis(
        "slots",
        int,
        count(MAX_BATCH),
        8,
        "generate: sequences decoded together (the KV cache's rows, the decode step's batch)",
        label="{} slots",
        where="number",
        unit="sequences",
        id="s{}",
        id_slot=18,
        by_workload=True,
    ),
    Axis(
        "cache_len",
        int,
        count(MAX_SEQ_LEN),
        256,
        "generate: positions per KV cache row; a request's prompt and output must fit",
        label="cache {}",
        column="cache",
        where="number",
        unit="tokens",
        id="c{}",
        id_slot=19,
        by_workload=True,
    ),
    Axis(
        "threads",
        int | str,
        count(MAX_THREADS) | Literal["all"],
        "all",
        'LiteRT: interpreter threads, a number or "all" (every CPU the worker may use, '
        "resolved at run time)",
        label="threads {}",
        id="t{}",
        id_slot=16,
        in_id="changed",
        applies=("framework", ("litert",)),
    ),
)
BY_NAME: dict[str, Axis] = {a.name: a for a in AXES}
NAMES: tuple[str, ...] = tuple(BY_NAME)
# Key fields in the order people read them (and keys are written): the model, then the axes.
KEY_FIELDS: tuple[str, ...] = (MODEL, *NAMES)


def normalize(values: Mapping[str, Any], axes: tuple[Axis, ...] = AXES) -> dict[str, Any]:
    """One value per axis -> the key's axes: fixed values set, conditional axes dropped where
    they do not apply (``xla: [false, true]`` then yields one JAX cell, not two identical)."""
    out = dict(values)
    for axis in axes:
        fixed, value = axis.fixed_value(out)
        if fixed:
            out[axis.name] = value
    kept: dict[str, Any] = {}
    for a in axes:
        # Against what is kept so far: a condition on a conditional axis (target_qps on
        # arrivals, itself serve-only) holds only where that axis itself applies.
        if a.name in out and a.applies_to(kept):
            kept[a.name] = out[a.name]
    return kept


def cell_id(key: Mapping[str, Any], axes: tuple[Axis, ...] = AXES) -> str:
    """Axes at their defaults add nothing where ``in_id`` is "changed", so ids from before an
    axis existed stay valid."""
    parts = []
    for axis in sorted(axes, key=lambda a: a.id_slot):
        if axis.name not in key or axis.is_fixed(key):
            continue
        value = key[axis.name]
        if axis.in_id == "changed" and value == axis.default:
            continue
        parts.append(axis.id.format(value))
    return "-".join(parts)


# -- text for people ---------------------------------------------------------------------------


def value_text(name: str, value: Any) -> str:
    """An axis value under its column header: bools "on"/"off", "-" where there is none.

    Also takes the string forms that matching keeps (``"True"``, ``"None"``)."""
    if value is None or value == "None":
        return "-"
    axis = BY_NAME.get(name)
    if isinstance(value, bool) or (axis is not None and axis.type is bool):
        if value in (True, "True", "true"):
            return "on"
        if value in (False, "False", "false"):
            return "off"
    return str(value)


def label(name: str, value: Any) -> str:
    """An axis value named for people: ``batch 256``, ``xla on``, ``jax``."""
    axis = BY_NAME.get(name)
    form = axis.label if axis is not None else f"{name} {{}}"
    return form.format(value_text(name, value))


def key_label(key: Mapping[str, Any], names: Iterable[str], sep: str = " ") -> str:
    """A cell named by the given axes (``jax batch 256 xla on``); axes the cell lacks or that
    carry no information for it (the pipeline of a synthetic cell, xla of a JAX cell) are left
    out. Lists of what cells share join with ``sep=", "``."""
    parts = []
    for name in names:
        axis = BY_NAME.get(name)
        if value_text(name, key.get(name)) == "-" or (axis is not None and axis.is_fixed(key)):
            continue
        parts.append(label(name, key[name]))
    return sep.join(parts)


def differing(keys: Iterable[Mapping[str, Any]], names: Iterable[str]) -> list[str]:
    """The names among ``names`` whose values differ between ``keys``."""
    keys = list(keys)
    return [n for n in names if len({str(k.get(n)) for k in keys}) > 1]


# -- the cell key ------------------------------------------------------------------------------


class _KeyView(Mapping[str, Any]):
    """A read-only mapping over the key's fields, exactly the JSON dict of ``cells.jsonl``:
    a conditional axis that does not apply is absent, not None."""

    __slots__ = ()

    def __getitem__(self, name: str) -> Any:
        value = getattr(self, name, None) if name in KEY_FIELDS else None
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (n for n in KEY_FIELDS if getattr(self, n) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __hash__(self) -> int:
        return hash(tuple(self.items()))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as written to ``cells.jsonl`` and sent to the worker."""
        return dict(self.items())

    @property
    def cell_id(self) -> str:
        return cell_id(self)


def _key_class() -> type:
    fields: list[Any] = [(MODEL, str)]
    for axis in AXES:
        if not axis.conditional:
            fields.append((axis.name, axis.type))
        else:
            fields.append((axis.name, axis.type | None, dataclasses.field(default=None)))
    # eq=False: the mapping's equality, so a key equals its JSON dict.
    return dataclasses.make_dataclass(
        "CellKey", fields, bases=(_KeyView,), frozen=True, eq=False, kw_only=True, slots=True
    )


CellKey: Any = _key_class()
CellKey.__module__ = __name__
CellKey.__doc__ = (
    "One cell's key, frozen: the model and every axis value, read by attribute "
    "(``key.batch_size``) or as a mapping (``key['batch_size']``). ``CellKey.from_dict`` "
    "reads the JSON form back."
)


def from_dict(data: Mapping[str, Any]) -> Any:
    """A ``CellKey`` from its JSON form; ValueError naming unknown or missing fields.

    An axis whose id part appears only when it is not at its default (``in_id="changed"``)
    takes that default when absent, as its id already says: keys written before it existed.
    """
    unknown = sorted(set(data) - set(KEY_FIELDS))
    if unknown:
        raise ValueError(f"cell key: unknown field(s) {', '.join(unknown)}")
    implied: dict[str, Any] = {}
    for a in AXES:  # in order: a conditional axis is implied only where its condition holds
        if a.in_id == "changed" and a.name not in data and a.applies_to({**data, **implied}):
            implied[a.name] = a.default
    try:
        return CellKey(**data, **implied)
    except TypeError as exc:
        raise ValueError(f"cell key: {exc}") from None


CellKey.from_dict = staticmethod(from_dict)

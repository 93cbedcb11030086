"""Scenario files: YAML -> validated, frozen ``Scenario`` -> the cells of its matrix.

Validation is strict and complete: every problem is collected (YAML syntax, unknown keys, wrong
types, unknown models, bad ``model_args``) and reported together, each naming the file, the
line, the field path, the value found and what was expected. Nothing here imports a framework.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import itertools
import math
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from bench.axes import AXES as REGISTRY
from bench.axes import BY_NAME as REGISTRY_BY_NAME
from bench.axes import MODEL, NAMES, Axis, CellKey, normalize
from bench.backends import registry
from bench.inputs.settings import DEFAULT_PIPELINE, DataFiles, PipelineChoice
from bench.limits import (
    ENV_MAX_CELLS,
    MAX_QPS,
    MAX_RESPONSE_MIB,
    MAX_SEED,
    MAX_STEPS,
    MAX_USD_PER_HOUR,
    WEEK_S,
    InputFileError,
    compose_and_load,
    count,
    load_yaml,
    max_cells,
    read_text_file,
)
from bench.modeldef import ModelError, load_model
from bench.optimizer import Optimizer
from bench.run import generate_block
from bench.run.generate_block import Generation
from bench.serve import protocols
from bench.serve.generation import openai
from bench.serve.generation.stream import GenEndpoint
from bench.serve.generation.stream import problems as gen_endpoint_problems
from bench.serve.url import UrlError, token_problem
from bench.serve.url import parse as parse_url
from bench.workloads import registry as workloads

# The framework axis offers the backends there are: the choices come from the backend registry,
# not from a second list.
FRAMEWORKS: tuple[str, ...] = tuple(registry.names())


def _known_workload(name: str) -> str:
    """Checked when a scenario is validated, not when this module is imported: a plug-in may
    register its workload after that (bench.workloads.registry)."""
    if workloads.find(name) is None:
        raise ValueError(f"one of: {', '.join(workloads.names())}")
    return name


WorkloadName = Annotated[str, AfterValidator(_known_workload)]


def _known_protocol(name: str) -> str:
    """Checked at validation, like workloads: a plug-in may register its protocol later. The
    serve protocols (``bench.serve.protocols``) and the generation ones (``openai``): which
    workload's cells may use which is checked against the cells (``_check_endpoint_kinds``)."""
    if protocols.find(name) is None and name not in openai.PROTOCOLS:
        raise ValueError(f"one of: {', '.join((*protocols.names(), *openai.PROTOCOLS))}")
    return name


ProtocolName = Annotated[str, AfterValidator(_known_protocol)]
# What a scenario accepts for the axes whose value types live above bench.axes (rank 0), with
# the default where the registry leaves it to the scenario.
SUPPLIED: dict[str, tuple[Any, Any]] = {
    "workload": (WorkloadName, ...),
    "framework": (Literal[FRAMEWORKS], ...),
    "pipeline": (PipelineChoice, DEFAULT_PIPELINE),
}


class _Strict(BaseModel):
    # YAML reads .nan and .inf as floats; no field of a scenario means anything with them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _accepts(axis: Axis) -> tuple[Any, Any]:
    """The annotation and top-level default of an axis as the scenario takes it."""
    annotation, default = SUPPLIED.get(axis.name, (axis.accepts, ...))
    assert annotation is not None, f"axis {axis.name}: the scenario must supply its type"
    return annotation, axis.default if default is ... else default


def _axis_fields(kind: Literal["one", "list", "top"]) -> dict[str, Any]:
    """Pydantic fields for every registry axis: one optional value (include/exclude entries),
    a non-empty optional list (the matrix), or the top-level value with its default."""
    fields: dict[str, Any] = {}
    for axis in REGISTRY:
        annotation, default = _accepts(axis)
        if kind == "one":
            fields[axis.name] = (annotation | None, None)
        elif kind == "list":
            fields[axis.name] = (list[annotation] | None, Field(None, min_length=1))
        else:
            fields[axis.name] = (annotation, Field(default, description=axis.help))
    return fields


Axes = create_model(
    "Axes",
    __base__=_Strict,
    __doc__="One value per axis: a partial cell, used by ``include:`` and ``exclude:``.",
    **_axis_fields("one"),
)
Matrix = create_model(
    "Matrix",
    __base__=_Strict,
    __doc__="Lists of values to sweep; every combination is a cell.",
    **_axis_fields("list"),
)


class Profile(_Strict):
    """Trace each cell's step under the framework's profiler after its timed phase
    (``bench.workloads.cell.profiling``; docs/profiling.md)."""

    steps: count(1000) = Field(
        5,
        description="compiled calls traced after the timed phase (steps_per_call steps each)",
    )


class ServeRules(_Strict):
    """How long each offered rate of a ``workload: serve`` cell runs (MLPerf-style validity: a
    rate counts only with at least ``min_queries`` requests AND ``min_seconds`` of them)."""

    min_queries: count(10_000_000) = 1000
    min_seconds: float = Field(5.0, ge=0, le=WEEK_S)
    warmup_queries: count(1_000_000, ge=0) = Field(
        100, description="requests sent first at each rate, not counted"
    )
    max_seconds: float = Field(
        60.0, gt=0, le=WEEK_S, description="a rate whose minimums need longer is invalid"
    )
    drain_s: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="how long unanswered requests are awaited at the end "
        "of a rate before they count as dropped",
    )
    low_qps: float | None = Field(
        None,
        gt=0,
        le=MAX_QPS,
        description="target_qps: search starts here (default: the offline "
        "throughput of the largest bucket / 16)",
    )
    tolerance: float = Field(
        0.05, gt=0, lt=1, description="target_qps: search stops when its bracket is this close"
    )
    retries: count(5, ge=0) = Field(
        1,
        description="target_qps: search measures a rate that missed the SLO up "
        "to this many more times; it counts as missed only if every attempt missed",
    )


class Measure(_Strict):
    """How long each cell runs; see ``bench.measure.timing`` for the run-length rule."""

    warmup_steps: count(MAX_STEPS, ge=0) = 5
    min_steps: count(MAX_STEPS, ge=2) = 20
    min_seconds: float = Field(2.0, ge=0, le=WEEK_S)
    max_seconds: float = Field(30.0, gt=0, le=WEEK_S)
    target_rel_ci: float = Field(0.02, gt=0, lt=1)
    timeout_s: float = Field(
        600.0, gt=0, le=WEEK_S, description="a cell still running after this is killed"
    )
    repeats: count(100) = Field(
        1, description="run each cell this many times, each in a fresh process"
    )
    profile: Profile | None = Field(
        None,
        description="trace N more steps per cell under the framework's profiler, after the "
        "timed phase: {steps: N}; the trace goes into the run folder",
    )
    serve: ServeRules = Field(default_factory=ServeRules)
    parity_examples: count(100_000, ge=0) = Field(
        256,
        description="examples of the fixed evaluation set every predict cell predicts after "
        "its timed phase, for prediction parity against the float32 CPU reference; 0: none",
    )


class Slo(_Strict):
    """A latency objective at ``percentile``: serve cells judge request latency by
    ``latency_ms``; generate cells judge time to first token (``ttft_ms``), time per output
    token (``tpot_ms``) and end-to-end latency (``latency_ms``), each where stated."""

    percentile: float = Field(99.0, gt=0, lt=100)
    latency_ms: float | None = Field(None, gt=0, le=WEEK_S * 1e3)
    ttft_ms: float | None = Field(
        None, gt=0, le=WEEK_S * 1e3, description="generate: time to first token"
    )
    tpot_ms: float | None = Field(
        None, gt=0, le=WEEK_S * 1e3, description="generate: time per output token"
    )

    @model_validator(mode="after")
    def _some_limit(self) -> Slo:
        if self.latency_ms is None and self.ttft_ms is None and self.tpot_ms is None:
            raise ValueError("a limit: latency_ms (serve), or ttft_ms and/or tpot_ms (generate)")
        return self


class Endpoint(_Strict):
    """A running model server that ``workload: serve`` cells (or ``workload: generate`` cells)
    with ``endpoint: NAME`` load over the network (``bench.workloads.serve.cell.endpoint``,
    ``bench.workloads.generate.cell.endpoint``; docs/endpoints.md). A field left out takes its
    workload's default (None here): a generation stream's whole request is longer than a
    prediction's."""

    url: str = Field(
        min_length=1,
        description="http://host:port (REST), host:port or grpc://host:port (gRPC), or a full "
        "https://...:predict URL (a Vertex AI endpoint, protocol tf-serving-rest); generate: "
        "http(s)://host:port[/prefix] or a full .../completions URL",
    )
    protocol: ProtocolName = Field(
        description="serve: v2-http / v2-grpc: the Open Inference Protocol (KServe, Triton); "
        "tf-serving-rest: TensorFlow Serving's REST API (KServe v1, Vertex AI); or a "
        "registered plug-in (bench.serve.protocols). generate: openai-completions or "
        "openai-chat (OpenAI-compatible, streamed: vLLM, SGLang, TGI, bench serve decoder)"
    )
    model_name: str = Field(
        description="the model's name on the server (serve: it goes into each request's path; "
        "generate: the request's model field)"
    )
    max_in_flight: count(1024) = Field(
        64,
        description="requests outstanding at once: the client's sender threads (HTTP: one "
        "keep-alive connection each, the connection pool); a request finding all busy waits",
    )
    connections: count(64) = Field(1, description="gRPC channels the senders share")
    timeout_s: StrictFloat | None = Field(
        None,
        gt=0,
        le=3600,
        description="a whole request (connect, send, the answer read to its end) that takes "
        "longer fails, however slowly the server sends; default 10 (serve), 300 (generate)",
    )
    startup_timeout_s: StrictFloat = Field(
        60.0,
        gt=0,
        le=3600,
        description="the whole wait for the server and model to say ready, every check in it",
    )
    max_response_mib: count(MAX_RESPONSE_MIB) | None = Field(
        None,
        description="an answer's body (generate: a whole stream) larger than this many MiB "
        "fails its request unread; default 4 (serve), 64 (generate)",
    )
    token_env: str = Field(
        "",
        description="an environment variable holding a bearer token sent with every request "
        "(a Vertex AI endpoint: the output of gcloud auth print-access-token); sent only over "
        "https or to a loopback host",
    )
    allow_insecure_token: StrictBool = Field(
        False,
        description="send the token over plain http or gRPC to another host (a network you "
        "trust): anyone on the path can read it",
    )
    # Generation endpoints only (openai-*): refused on a serve endpoint.
    hold_length: list[str] | None = Field(
        None,
        description="generate: the server's fields that hold the output length fixed, of "
        "min_tokens and ignore_eos (vLLM, SGLang and bench serve decoder take both)",
    )
    temperature: StrictFloat | StrictInt | None = Field(
        None,
        description="generate: sampling temperature sent with each request; default the "
        "generate block's (0: greedy)",
    )
    token_ids: StrictBool | None = Field(
        None,
        description="generate: ask for each chunk's token ids (return_token_ids: vLLM, SGLang, "
        "bench serve decoder); default false",
    )
    max_event_kib: count(65_536) | None = Field(
        None, description="generate: one server-sent event over this many KiB fails its request"
    )

    @field_validator("model_name")
    @classmethod
    def _model_name_fits(cls, name: str, info: ValidationInfo) -> str:
        # A generation request carries the name in its JSON body (meta-llama/Llama-3.1-8B...),
        # checked with the other generation fields (_check_endpoint_kinds); a serve request
        # carries it in its path.
        if info.data.get("protocol") in openai.PROTOCOLS:
            return name
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", name):
            raise ValueError(
                "a model name of letters, digits, '_', '.' and '-' (at most 128, starting with "
                "a letter or digit): it is part of each request's path"
            )
        return name

    @field_validator("token_env")
    @classmethod
    def _token_env_is_a_variable_name(cls, name: str) -> str:
        if name and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", name):
            raise ValueError(
                "the name of an environment variable (letters, digits and '_', not starting "
                "with a digit), e.g. VERTEX_TOKEN; the token itself never goes in the scenario"
            )
        return name

    def generation(self, temperature: float) -> GenEndpoint:
        """The generation client's endpoint: the fields set, the rest its defaults;
        ``temperature`` (the generate block's) where the endpoint states none."""
        return GenEndpoint.of(self.model_dump(), temperature)


GEN_ONLY = ("hold_length", "temperature", "token_ids", "max_event_kib")


class TpuNode(_Strict):
    """A legacy Cloud TPU node (TPU API v1), reached over the network from this VM.

    TPU VMs need none of this: their chips are local and found as ``device: tpu``.
    """

    name: str = Field(min_length=1, description="the TPU node's name (or grpc://IP:PORT)")
    zone: str | None = Field(None, description="e.g. us-central1-b; default: this VM's zone")
    project: str | None = Field(None, description="GCP project; default: this VM's project")
    wait_s: float = Field(
        300.0, ge=0, le=3600, description="how long to wait for the node to become HEALTHY"
    )
    poll_s: float = Field(
        10.0, gt=0, le=3600, description="how often to ask for its health meanwhile"
    )


class _ScenarioHead(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)
    description: str = ""
    model: str = Field(description="registered model name or 'package.module:factory'")
    model_args: dict[str, Any] = Field(default_factory=dict)
    optimizer: Optimizer = Field(default_factory=Optimizer)
    seed: count(MAX_SEED, ge=0) = 0


# The top-level value of every axis, from the registry, between the head and the rest.
_ScenarioAxes = create_model("_ScenarioAxes", __base__=_ScenarioHead, **_axis_fields("top"))


class Scenario(_ScenarioAxes):  # type: ignore[misc, valid-type]
    data: DataFiles = Field(default_factory=DataFiles)
    matrix: Matrix = Field(default_factory=Matrix)
    exclude: list[Axes] = Field(default_factory=list)
    include: list[Axes] = Field(default_factory=list)
    measure: Measure = Field(default_factory=Measure)
    pricing: dict[str, float | str] = Field(
        default_factory=dict,
        description="USD per device-hour (or a price-table entry name) by device name, device "
        "key (h100-sxm, tpu-v5e, cpu), kind (gpu, tpu, cpu) or '*'; overrides the shipped table",
    )
    tpu: TpuNode | None = Field(
        None, description="a legacy TPU node for the device: tpu cells (not needed on TPU VMs)"
    )
    endpoints: dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_]*$")], Endpoint
    ] = Field(
        default_factory=dict,
        description="workload: serve: model servers by name; a cell with endpoint: NAME loads "
        "that server over the network instead of its worker's in-process server",
    )
    slo: Slo | None = Field(
        None,
        description="workload: serve: the latency objective, e.g. {percentile: 99, "
        "latency_ms: 50}; generate: {percentile: 99, ttft_ms: 500, tpot_ms: 50}; required by "
        "their cells",
    )
    generate: Generation = Field(
        default_factory=Generation,
        description="workload: generate: request lengths, requests per load, sampling, a trace",
    )

    @field_validator("pricing", mode="before")
    @classmethod
    def _prices_finite_and_positive(cls, prices: Any) -> Any:
        """A negative or infinite price would make a cell the cheapest (or the dearest) for no
        reason, and a free one has no cost per example; checked before the float|str union, so
        the message names the entries rather than each branch of the union."""
        if not isinstance(prices, dict):
            return prices
        bad = [
            f"{k}: {v!r}"
            for k, v in prices.items()
            if isinstance(v, int | float)
            and not isinstance(v, bool)
            and not (math.isfinite(v) and 0 < v <= MAX_USD_PER_HOUR)
        ]
        if bad:
            raise ValueError(
                f"USD per device-hour greater than 0 and at most {MAX_USD_PER_HOUR:g}, or a "
                f"price-table entry name (found {', '.join(bad)})"
            )
        return prices

    @field_validator("pricing")
    @classmethod
    def _prices_exist(cls, prices: dict[str, float | str]) -> dict[str, float | str]:
        """Each key a device some cell could run on, each named entry in the table: found
        now, not as every cell's cost unavailable after the run."""
        from bench.measure.cost import pricing_problems

        problems = pricing_problems(prices)
        if problems:
            raise ValueError("devices and price entries bench knows: " + "; ".join(problems))
        return prices


@dataclass(frozen=True)
class Cell:
    """One point of the matrix. ``key`` holds every axis value plus the model."""

    key: CellKey

    @property
    def cell_id(self) -> str:
        return self.key.cell_id

    @property
    def group(self) -> tuple[str, str]:
        return self.key.framework, self.key.device


@dataclass(frozen=True)
class LoadedScenario:
    path: str
    text: str
    sha256: str
    scenario: Scenario
    overrides: tuple[str, ...] = ()
    model_args: Any = None  # the model's validated Args instance
    cells: list[Cell] = field(default_factory=list)
    # generate.trace's rows (arrival_s, prompt_tokens, output_tokens), read at load
    trace: list[tuple[float, int, int]] | None = None


class ScenarioError(Exception):
    """All problems found in one scenario file; ``str()`` lists one per line."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


def load_scenario(path: str | Path, overrides: Iterable[str] = ()) -> LoadedScenario:
    path = Path(path)
    where = str(path)
    try:
        text = read_text_file(path, "a scenario file")
    except InputFileError as exc:
        raise ScenarioError(where, [str(exc)]) from None
    return parse_scenario(text, where, tuple(overrides))


def parse_scenario(text: str, where: str, overrides: tuple[str, ...] = ()) -> LoadedScenario:
    problems: list[str] = []
    lines: dict[tuple, int] = {}
    try:
        node, data = compose_and_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(where, [f"{where}{line}: invalid YAML: {problem}"]) from exc
    if node is not None:
        _index_lines(node, (), lines, problems, where)
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ScenarioError(
            where, [f"{where}:1: expected a mapping of scenario fields, found {found}"]
        )

    for item in overrides:
        try:
            _apply_override(data, item)
        except ValueError as exc:
            shown = _CREDENTIALS.sub("***@", item)
            if len(shown) > 80:
                shown = f"{shown[:60]}... ({len(shown):,} characters)"
            problems.append(f"{where}: --set {shown}: {_CREDENTIALS.sub('***@', str(exc))}")
            lines[_override_path(item)] = 0

    scenario = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        for err in _merge_union_errors(exc.errors()):
            problems.append(_describe(err, where, lines, overrides))

    model_args = None
    # Checked even when other fields are wrong, so every problem shows in one pass.
    if isinstance(data.get("model"), str) and isinstance(data.get("model_args", {}), dict):
        model_args = _check_model(data["model"], data.get("model_args", {}), where, lines, problems)
    if scenario is not None:
        problems.extend(_check_endpoints(scenario, where, lines))
        for axis in NAMES:
            if axis in data and getattr(scenario.matrix, axis) is not None:
                problems.append(
                    f"{where}{_line(lines, (axis,))}: {axis}: set both at the top level and in "
                    f"matrix.{axis}; expected one of the two"
                )

    cells: list[Cell] = []
    if scenario is not None and not problems:
        problems.extend(_check_cell_count(scenario, where, lines))
    if scenario is not None and not problems:
        cells = expand(scenario)
        if not cells:
            problems.append(f"{where}: matrix: every cell is excluded; expected at least one cell")
        problems.extend(_check_batch_split(cells, where, lines))
        problems.extend(_check_online(scenario, cells, where, lines))
        trace, found = _check_generate(scenario, cells, where, lines, model_args)
        problems.extend(found)
        problems.extend(_check_needs(scenario.model, cells, where, lines))
        problems.extend(_check_backends(cells, where, lines))
        largest = max((c.key.batch_size for c in cells if c.key.input == "tfdata"), default=0)
        if largest > scenario.data.examples:
            problems.append(
                f"{where}{_line(lines, ('data',))}: data.examples: got {scenario.data.examples}; "
                f"expected at least the largest tfdata batch_size ({largest}): every batch is full"
            )
    if problems:
        raise ScenarioError(where, sorted(problems, key=lambda p: _line_number(p, where)))
    assert scenario is not None
    digest = hashlib.sha256(text.encode()).hexdigest()
    return LoadedScenario(where, text, digest, scenario, overrides, model_args, cells, trace)


def expand(scenario: Scenario) -> list[Cell]:
    """The matrix product, minus ``exclude`` matches, plus ``include`` cells, in a stable order.

    As in CI matrices: an ``exclude`` entry removes every cell that matches all its values; an
    ``include`` entry adds one cell, taking axes it does not name from the scenario's top-level
    values (not from the matrix), unless that cell is already present.
    """
    values = [_values(scenario, a) for a in NAMES]
    cells = []
    seen = set()
    for combo in itertools.product(*values):
        axes = normalize(dict(zip(NAMES, combo, strict=True)))
        if any(_matches(axes, ex) for ex in scenario.exclude):
            continue
        if tuple(axes.items()) not in seen:
            cells.append(axes)
            seen.add(tuple(axes.items()))
    for inc in scenario.include:
        axes = normalize(
            {
                a: getattr(inc, a) if getattr(inc, a) is not None else getattr(scenario, a)
                for a in NAMES
            }
        )
        combo = tuple(axes.items())
        if combo not in seen:
            cells.append(axes)
            seen.add(combo)
    return [Cell(CellKey(**{MODEL: scenario.model}, **axes)) for axes in cells]


def _check_cell_count(scenario: Scenario, where: str, lines: dict) -> list[str]:
    """The matrix's size from its value counts, before expanding it: a few lines of YAML can
    ask for millions of cells, and listing them would exhaust memory first."""
    try:
        limit = max_cells()
    except ValueError as exc:
        return [f"{where}: matrix: {exc}"]
    counts = {a: len(_values(scenario, a)) for a in NAMES}
    planned = math.prod(counts.values()) + len(scenario.include)
    if planned <= limit:
        return []
    sizes = " x ".join(f"{n} {a}" for a, n in counts.items() if n > 1)
    return [
        f"{where}{_line(lines, ('matrix',))}: matrix: {planned:,} cells ({sizes}"
        f"{f' + {len(scenario.include)} include' if scenario.include else ''}); expected at "
        f"most {limit:,} (set {ENV_MAX_CELLS} to change the limit)"
    ]


def _values(scenario: Scenario, axis: str) -> list[Any]:
    listed = getattr(scenario.matrix, axis)
    return listed if listed is not None else [getattr(scenario, axis)]


def _check_batch_split(cells: list[Cell], where: str, lines: dict) -> list[str]:
    """batch_size is the global batch: each replica must get the same whole number of examples.

    "all" is known only on the machine, so the worker checks those cells (and skips them with
    the reason) instead.
    """
    found = []
    for cell in cells:
        if REGISTRY_BY_NAME["batch_size"].is_fixed(cell.key):
            continue  # one request at a time: _check_online holds them to one replica
        batch, replicas = cell.key.batch_size, cell.key.replicas
        if isinstance(replicas, int) and batch % replicas:
            line = _line(lines, ("matrix", "replicas")) or _line(lines, ("replicas",))
            found.append(
                f"{where}{line}: replicas: cell {cell.cell_id}: batch_size {batch} (the global "
                f"batch) does not split evenly over {replicas} replicas; expected a batch_size "
                f"divisible by {replicas}, or exclude the cell"
            )
    return found


def _check_endpoints(scenario: Scenario, where: str, lines: dict) -> list[str]:
    """Each endpoint's URL (scheme, host, port, no control characters, whitespace or
    credentials) and where its token may go, by the rules the client itself keeps
    (``bench.serve.url``); a message never repeats a URL's credentials."""
    found = []
    for name, endpoint in scenario.endpoints.items():
        loc = ("endpoints", name)
        try:
            target = parse_url(endpoint.url, endpoint.protocol)
        except UrlError as exc:
            found.append(f"{where}{_line(lines, (*loc, 'url'))}: {_dotted((*loc, 'url'))}: {exc}")
            continue
        if endpoint.token_env and (why := token_problem(target, endpoint.allow_insecure_token)):
            field = (*loc, "token_env")
            found.append(f"{where}{_line(lines, field)}: {_dotted(field)}: {why}")
    return found


def _check_online(scenario: Scenario, cells: list[Cell], where: str, lines: dict) -> list[str]:
    """Cells of workloads measured as requests under load (``WorkloadSpec.offline`` false):
    an slo to judge them by, one repeat, no profile, and the axis values they run with."""
    online = [c for c in cells if not workloads.is_offline(c.key.workload)]
    if not online:
        return []
    name = online[0].key.workload
    found = []
    if scenario.slo is None:
        found.append(
            f"{where}{_line(lines, ('workload',)) or _line(lines, ('matrix', 'workload'))}: slo: "
            f"required by workload: {name} cells; expected a block like "
            "{percentile: 99, latency_ms: 50}"
        )
    if scenario.measure.repeats > 1:
        found.append(
            f"{where}{_line(lines, ('measure', 'repeats'))}: measure.repeats: got "
            f"{scenario.measure.repeats}; expected 1 with workload: {name} cells (every probed "
            "rate is already a full measurement; repeat by running the scenario again)"
        )
    if scenario.measure.profile is not None:
        traced = " and ".join(n for n in workloads.names() if workloads.is_offline(n))
        found.append(
            f"{where}{_line(lines, ('measure', 'profile'))}: measure.profile: profiling traces "
            f"{traced} steps; expected no measure.profile (or --profile) with workload: {name} "
            "cells (profile the model's predict cells instead)"
        )
    found.extend(_check_endpoint_names(scenario, online, where, lines))
    found.extend(_check_endpoint_kinds(scenario, online, where, lines))
    for cell_workload in dict.fromkeys(c.key.workload for c in online):
        mine = [c for c in online if c.key.workload == cell_workload]
        found.extend(_check_slo_limits(scenario, cell_workload, where, lines))
        for axis, allowed in workloads.spec(cell_workload).accepts.items():
            wrong = [c for c in mine if axis in c.key and c.key[axis] not in allowed]
            if wrong:
                line = _line(lines, ("matrix", axis) if ("matrix", axis) in lines else (axis,))
                shown = ", ".join(map(str, allowed))
                found.append(
                    f"{where}{line}: {axis}: cell {wrong[0].cell_id}: workload: {cell_workload} "
                    f"runs {axis} {shown} only (got {wrong[0].key[axis]!r}); expected one of "
                    f"{shown} for {cell_workload} cells, or exclude the cell"
                )
        for axis, wanted in workloads.spec(cell_workload).requires.items():
            wrong = [c for c in mine if c.key[axis] != wanted]
            if wrong:
                line = _line(lines, ("matrix", axis) if ("matrix", axis) in lines else (axis,))
                found.append(
                    f"{where}{line}: {axis}: cell {wrong[0].cell_id}: workload: {cell_workload} "
                    f"runs with {axis} {wanted!r} (got {wrong[0].key[axis]!r}); expected "
                    f"{wanted!r} for {cell_workload} cells, or exclude the cell"
                )
    return found


def _check_slo_limits(scenario: Scenario, name: str, where: str, lines: dict) -> list[str]:
    """Serve cells judge request latency; generate cells need a limit they can judge."""
    slo = scenario.slo
    if slo is None:
        return []
    if name == "serve" and slo.latency_ms is None:
        return [
            f"{where}{_line(lines, ('slo',))}: slo.latency_ms: required by workload: serve cells "
            "(ttft_ms and tpot_ms judge generate cells); expected e.g. latency_ms: 50"
        ]
    return []


def _check_generate(
    scenario: Scenario, cells: list[Cell], where: str, lines: dict, model_args: Any
) -> tuple[list[tuple[float, int, int]] | None, list[str]]:
    """The generate block against the cells: the trace file readable, every request fits its
    cell's KV cache and a compiled prompt bucket, the cache the model's positions."""
    mine = [c for c in cells if c.key.workload == "generate"]
    block = scenario.generate
    if not mine:
        return None, []
    positions = getattr(model_args, "max_positions", None)
    longer = [c for c in mine if positions is not None and c.key["cache_len"] > positions]
    if longer:
        line = _line(lines, ("matrix", "cache_len")) or _line(lines, ("cache_len",))
        return None, [
            f"{where}{line}: cache_len: cell {longer[0].cell_id}: cache_len "
            f"{longer[0].key['cache_len']} is longer than the model's max_positions "
            f"({positions}); expected at most {positions}, or a larger model_args.max_positions"
        ]
    trace = None
    if block.trace is not None:
        path = Path(block.trace)
        if not path.is_absolute():
            path = Path(where).resolve().parent / path
        try:
            trace = generate_block.read_trace(path)
        except ValueError as exc:
            return None, [f"{where}{_line(lines, ('generate', 'trace'))}: generate.trace: {exc}"]
    return trace, [
        f"{where}{_line(lines, ('generate', name)) or _line(lines, ('generate',))}: "
        f"generate.{name}: {problem}"
        for name, problem in generate_block.check(block, trace, mine)
    ]


def _check_needs(model_name: str, cells: list[Cell], where: str, lines: dict) -> list[str]:
    """The model provides what each workload of the matrix needs (``WorkloadSpec.needs``)."""
    try:
        model = load_model(model_name)
    except ModelError:
        return []  # reported by _check_model
    found = []
    for name in dict.fromkeys(c.key.workload for c in cells):
        missing = [n for n in workloads.spec(name).needs if not hasattr(model, n)]
        if missing:
            line = _line(lines, ("workload",)) or _line(lines, ("matrix", "workload"))
            found.append(
                f"{where}{line}: workload: {name} needs the model to provide "
                f"{', '.join(missing)}; model {model_name!r} does not"
            )
    return found


def _check_endpoint_names(
    scenario: Scenario, cells: list[Cell], where: str, lines: dict
) -> list[str]:
    for cell in cells:
        name = cell.key.get("endpoint")
        if name not in (None, "in_process") and name not in scenario.endpoints:
            line = _line(
                lines, ("matrix", "endpoint") if ("matrix", "endpoint") in lines else ("endpoint",)
            )
            known = ", ".join(scenario.endpoints) or "none declared"
            return [
                f"{where}{line}: endpoint: cell {cell.cell_id}: no endpoint named {name!r} "
                f"under endpoints: ({known}); expected in_process or a declared name"
            ]
    return []


def _check_endpoint_kinds(
    scenario: Scenario, cells: list[Cell], where: str, lines: dict
) -> list[str]:
    """Each endpoint a cell loads speaks its workload's protocols: generate cells stream from
    an OpenAI-compatible server (``openai-*``, its generation fields within the client's
    bounds: ``bench.serve.generation.stream.problems``); serve cells send predictions (the
    serve protocols, no generation field)."""
    found = []
    temperature = float(scenario.generate.temperature)
    for name in dict.fromkeys(
        (c.key.workload, c.key.get("endpoint")) for c in cells if c.key.get("endpoint")
    ):
        workload, endpoint_name = name
        endpoint = scenario.endpoints.get(str(endpoint_name))
        if endpoint is None:
            continue  # in_process, or reported by _check_endpoint_names
        loc = ("endpoints", str(endpoint_name))
        generation = endpoint.protocol in openai.PROTOCOLS
        if workload == "generate" and not generation:
            field = (*loc, "protocol")
            found.append(
                f"{where}{_line(lines, field)}: {_dotted(field)}: {endpoint.protocol!r} is a "
                f"serve protocol; expected one of {', '.join(openai.PROTOCOLS)} for the "
                "workload: generate cells that load it"
            )
        elif workload != "generate" and generation:
            field = (*loc, "protocol")
            found.append(
                f"{where}{_line(lines, field)}: {_dotted(field)}: {endpoint.protocol!r} streams "
                f"generated text; expected one of {', '.join(protocols.names())} for the "
                f"workload: {workload} cells that load it"
            )
        elif not generation:
            for key in GEN_ONLY:
                if getattr(endpoint, key) is not None:
                    field = (*loc, key)
                    found.append(
                        f"{where}{_line(lines, field)}: {_dotted(field)}: a generation field; "
                        f"expected none on a {endpoint.protocol} endpoint (openai-* only)"
                    )
        else:
            for problem in gen_endpoint_problems(endpoint.generation(temperature)):
                key = problem.partition(":")[0]
                field = (*loc, key)
                line = _line(lines, field) or _line(lines, loc)
                found.append(f"{where}{line}: {_dotted(loc)}.{problem}")
    return found


def _check_backends(cells: list[Cell], where: str, lines: dict) -> list[str]:
    """Each cell within what its backend runs (``BackendSpec.accepts``: LiteRT predicts on
    the CPU only; only LiteRT quantizes to int8), and the modules the backends need."""
    found = []
    for framework in dict.fromkeys(c.key.framework for c in cells):
        spec = registry.spec(framework)
        mine = [c for c in cells if c.key.framework == framework]
        for name, allowed in spec.accepts.items():
            wrong = [c for c in mine if name in c.key and c.key[name] not in allowed]
            if wrong:
                line = _line(lines, ("matrix", name) if ("matrix", name) in lines else (name,))
                shown = ", ".join(map(str, allowed))
                found.append(
                    f"{where}{line}: {name}: cell {wrong[0].cell_id}"
                    f"{f' (and {len(wrong) - 1} more)' if len(wrong) > 1 else ''}: framework "
                    f"{framework} runs {name} {shown} only (got {wrong[0].key[name]!r}); expected "
                    f"one of {shown} for {framework} cells, or exclude the cell"
                )
        missing = [m for m in spec.needs_modules if importlib.util.find_spec(m) is None]
        if missing:
            line = _line(lines, ("matrix", "framework")) or _line(lines, ("framework",))
            found.append(
                f"{where}{line}: framework: {framework} cells need the Python module "
                f"{', '.join(missing)}, which is not installed; expected it installed: "
                f"{spec.install_hint}"
            )
    return found


def _matches(axes: dict[str, Any], pattern: Axes) -> bool:
    given = pattern.model_dump(exclude_none=True)
    return all(axes.get(k) == v for k, v in given.items())


def _check_model(name: str, args: dict, where: str, lines: dict, problems: list[str]) -> Any:
    try:
        model = load_model(name)
    except ModelError as exc:
        problems.append(f"{where}{_line(lines, ('model',))}: model: {exc}")
        return None
    try:
        return model.Args.model_validate(args)
    except ValidationError as exc:
        errors = exc.errors()
        # A list whose items were refused is then also "too short": the items say it all.
        inner = {e["loc"][:-1] for e in errors if len(e["loc"]) > 1}
        for err in errors:
            if err["type"] == "too_short" and err["loc"] in inner:
                continue
            err = {**err, "loc": ("model_args", *err["loc"])}
            problems.append(_describe(err, where, lines, (), args_model=model.Args))
        return None


def _apply_override(data: dict, item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ValueError("expected key=value, e.g. --set measure.min_steps=5")
    try:
        value = load_yaml(raw)
    except yaml.YAMLError as exc:
        raise ValueError(f"value is not valid YAML: {exc}") from exc
    parts = key.split(".")
    target = data
    for part in parts[:-1]:
        nxt = target.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ValueError(f"{part!r} is not a mapping")
        target = nxt
    target[parts[-1]] = value


def _override_path(item: str) -> tuple:
    return tuple(item.partition("=")[0].split("."))


def _index_lines(
    node: yaml.Node, path: tuple, lines: dict, problems: list[str], where: str
) -> None:
    """Record the 1-based line of every key and item; flag duplicate keys (YAML keeps the last)."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                problems.append(
                    f"{where}:{key_node.start_mark.line + 1}: {_dotted((*path, key))}: duplicate key; "
                    "expected each key once"
                )
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*path, key), lines, problems, where)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, i), lines, problems, where)


def _line_number(problem: str, where: str) -> int:
    """The line a problem names (0 when none), so problems are reported in file order."""
    rest = problem[len(where) + 1 :].split(":", 1)[0]
    return int(rest) if rest.isdigit() else 0


def _line(lines: dict, loc: tuple) -> str:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return f":{lines[loc]}" if lines[loc] else ""
        loc = loc[:-1]
    return ""


def _dotted(loc: Iterable) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(
    err: dict, where: str, lines: dict, overrides: tuple[str, ...], args_model: type | None = None
) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], args_model)
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        expected = f"one of: {', '.join(allowed)}" if allowed else "no extra keys"
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        what = f"unknown key {loc[-1]!r}{suggestion}; expected {expected}"
    elif kind == "missing":
        what = "required field is missing"
    else:
        what = f"got {_show(err.get('input'))}; expected {_expected(err)}"
    return f"{where}{_line(lines, loc)}: {_dotted(loc)}: {what}"


def _union_tag(part: Any) -> bool:
    """Pydantic names each failed branch of a union in the error's loc: "constrained-int",
    "literal['all']"; field names never contain these characters."""
    return isinstance(part, str) and (part.startswith("constrained-") or "[" in part)


def _merge_union_errors(errors: list[Any]) -> list[Any]:
    """One error per field for a value no branch of a union accepts ("got 0; expected a number
    greater than 0, or one of 'all'"), instead of one per branch with pydantic's branch names."""
    merged: dict[tuple, Any] = {}
    for err in errors:
        loc = tuple(p for p in err["loc"] if not _union_tag(p))
        if loc in merged and len(loc) < len(err["loc"]):
            first = merged[loc]
            first["expected"] = f"{first.get('expected') or _expected(first)}, or {_expected(err)}"
        else:
            merged[loc] = {**err, "loc": loc}
    return list(merged.values())


# What precedes an '@' in a URL (user:password@): never shown, wherever a value holding a URL
# is quoted in an error (an endpoints: block of the wrong shape quotes the whole block).
_CREDENTIALS = re.compile(r"[^\s'\"/@\\]+@")


def _show(value: Any) -> str:
    text = _CREDENTIALS.sub("***@", repr(value))  # before cutting: a cut could keep half
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(err: dict) -> str:
    if "expected" in err:
        return err["expected"]
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "literal_error":
        return f"one of {ctx.get('expected')}"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return err["msg"].replace("Input should be ", "a number ")
    if kind == "too_short":
        return "a non-empty list"
    if kind == "string_pattern_mismatch":
        return f"a value matching {ctx.get('pattern')}"
    if kind == "value_error":
        return err["msg"].removeprefix("Value error, ")
    return err["msg"].replace("Input should be ", "").replace("input should be ", "")


def _allowed_keys(loc: tuple, args_model: type | None) -> list[str]:
    """The field names of the model that sits at ``loc`` (for 'did you mean' hints)."""
    model: Any = Scenario
    if args_model is not None and loc[:1] == ("model_args",):
        model, loc = args_model, loc[1:]
    for part in loc:
        if isinstance(part, int):
            continue
        if (
            not (isinstance(model, type) and issubclass(model, BaseModel))
            or part not in model.model_fields
        ):
            return []
        model = _unwrap(model.model_fields[part].annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """list[Axes] | None -> Axes: the model class inside optional and list annotations."""
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if args else annotation
        elif origin in (list, tuple):
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation


def json_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "bench scenario"
    return schema

"""Bounds on the work any input can cause: input files, YAML documents, the number of cells in a
matrix, and every number a scenario, a flag or a file may hold.

A few hundred bytes of YAML can name a billion values through aliases ("billion laughs"), or
itself through a recursive alias; PyYAML builds such a graph quickly, and whatever walks it
afterwards (line indexing, validation) then runs for minutes or recurses forever. The loader
here counts, while composing, how many values the document holds once every alias is expanded,
how deep it nests, and refuses a recursive alias; a scenario or a policy file is a few hundred
values, so the limits only stop documents made to hurt. ``LimitError`` is a ``YAMLError``:
callers that report invalid YAML report these the same way, with the line.

The number of cells a scenario's matrix may expand to is ``MAX_CELLS`` unless the environment
variable ``BENCH_MAX_CELLS`` says otherwise; the scenario checks the product of the axes' value
counts before expanding anything.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, Strict

MAX_YAML_CHARS = 1 << 20  # 1 Mi characters: scenarios and policies are a few KB
MAX_INPUT_BYTES = 4 * MAX_YAML_CHARS  # UTF-8 takes at most 4 bytes a character
MAX_YAML_VALUES = 100_000  # values in the document with every alias expanded
MAX_YAML_DEPTH = 64  # nested mappings and lists
MAX_CELLS = 100_000
# What BENCH_MAX_CELLS may raise it to: listing ten million cells already takes gigabytes.
MAX_CELLS_LIMIT = 10_000_000
ENV_MAX_CELLS = "BENCH_MAX_CELLS"

# -- the numbers an input may hold ------------------------------------------------------------
# Every count, size, rate, thread number and duration that a scenario, a command flag or a file
# gives is checked against one of these at validation (integers strictly: ``true`` and ``'8'``
# are not counts), so a typo or a 10**400 is an error naming the field, not an allocation, a
# loop or an overflow at run time. Each bound sits far above any real use and says why.

# Durations: a cell, a rate, a wait longer than a week is a typo (or an attempt to overflow a
# timer), not a plan.
WEEK_S = 7 * 24 * 3600.0
# Examples per step (batch_size, a server's max_batch_size): the largest published global
# batches (LARS/LAMB on TPU pods: 64k; recommendation models: about a million) fit.
MAX_BATCH = 1 << 20
# Steps fused into one compiled call: a scan of thousands is used to hide dispatch; past this
# the program takes longer to compile than any cell runs.
MAX_STEPS_PER_CALL = 10_000
# Data-parallel replicas in one cell: the largest TPU pod slices hold about 9,000 chips.
MAX_REPLICAS = 65_536
# Interpreter threads (LiteRT): no single machine has more CPU cores than this.
MAX_THREADS = 1024
# Steps of a timed phase (warmup_steps, min_steps): ten million 1 ms steps are three hours.
MAX_STEPS = 10_000_000
# Requests per second offered to a server: ten million is more than any one host answers.
MAX_QPS = 1e7
# How long a request may wait for its batch (ms): a minute is already no longer "online".
MAX_BATCH_TIMEOUT_MS = 60_000.0
# Examples written to data files: 100 million (80 ImageNets) would fill any cache disk first.
MAX_EXAMPLES = 100_000_000
# An optimizer's learning rate or weight decay: past 1,000 any model diverges on its first step.
MAX_RATE = 1000.0
# Megabytes a tfdata pipeline may cache in memory: a terabyte is beyond any host's memory.
MAX_CACHE_MB = 1 << 20
# Pixels on a side of a stored or modelled image: 4096 is beyond any vision benchmark input.
MAX_IMAGE_SIZE = 4096
# A seed: 32 bits is what every framework's seeding takes whole (numpy, JAX, TensorFlow).
MAX_SEED = 2**32 - 1
# USD per device-hour: the dearest accelerator machines cost hundreds; a million is a typo.
MAX_USD_PER_HOUR = 1e6
# Model sizes (model_args): widths and embedding sizes, vocabularies and classes, depths and
# sequence lengths. Each is orders of magnitude above the zoo's largest use; what a machine
# cannot hold still fails at run time as an OOM, with the reason.
MAX_WIDTH = 1 << 16
MAX_VOCAB = 1 << 27
MAX_LAYERS = 1024
MAX_SEQ_LEN = 1 << 20
# MiB of one answer from a model server: a request carries one example, whose answer is a few
# KB; a GiB is a segmentation map of a large image in JSON, and 1,024 senders holding one each
# would already need a TiB.
MAX_RESPONSE_MIB = 1024
# Processes of a multi-host run: the largest pods have a few thousand hosts.
MAX_PROCESSES = 4096
# Samples the gate keeps per cell and run (--max-samples): past a few hundred more samples of
# one run no longer narrow what a rerun would change; a million is already 12 MB a cell.
MAX_GATE_SAMPLES = 1_000_000
# The gate's threshold, a relative slowdown: 100 (a 101x slower run passing) is already no gate.
MAX_THRESHOLD = 100.0
# Runs pooled on one side of the gate (or in one baseline file): a few per CI job.
MAX_RUNS_PER_SIDE = 1000
# A baseline file: MAX_SAMPLES-thinned samples of thousands of cells are a few MB.
MAX_BASELINE_BYTES = 64 * 2**20
# The largest magnitude a measured number may have: no quantity bench measures comes near it
# (an exaFLOP/s is 1e18, a petabyte 1e15), and its square still fits a float, so no sum,
# variance or ratio a reader computes overflows. Beyond it a value is damage: the cell is
# invalid (bench.finite).
MAX_MEASURED = 1e30
# Lists in a cell record, capped when read at what bench itself writes, so a damaged or
# hostile record is refused rather than printed: the profile's top ops (bench keeps ten),
# flags (a handful), worker processes of measure.repeats (at most 100), and a serve cell's
# probes (a search measures a few dozen rates).
MAX_PROFILE_OPS = 100
MAX_FLAGS = 100
MAX_REPEATS = 100
MAX_SERVE_PROBES = 1000
# Steps of a `bench selfcheck`: a million steps of the smallest loop take minutes already.
MAX_SELFCHECK_STEPS = 1_000_000
MAX_SELFCHECK_TRIALS = 1000
MAX_SELFCHECK_SIZE = 1 << 14  # a 16k x 16k float32 matrix is 1 GiB
# Retries of a pipeline task: each waits a doubling backoff from 60 s; 20 is more than a day.
MAX_RETRIES = 20


def count(le: int, ge: int = 1) -> Any:
    """The annotation of a counted field: a strict integer (not ``true``, ``8.0`` or ``'8'``,
    which pydantic's lax mode would take) from ``ge`` to ``le``."""
    return Annotated[int, Strict(), Field(ge=ge, le=le)]


class InputFileError(ValueError):
    """An input file that cannot be read as text: missing, not a file, too large, not UTF-8.
    ``str()`` is one line naming the file and what was expected."""


def read_text_file(path: str | Path, what: str, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The text of the input file ``path`` (a scenario, a machines file, a policy), read
    within ``max_bytes``; InputFileError naming the file otherwise.

    Opened without blocking, so a FIFO nobody writes to reads as empty instead of hanging; a
    directory or device is refused by what it is, a file of another encoding by its first bad
    byte, never with a Python exception.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise InputFileError(f"{path}: is {kind}; expected {what}")
    with os.fdopen(fd, "rb") as f:
        os.set_blocking(fd, True)
        try:
            raw = f.read(max_bytes + 1)
        except OSError as exc:
            raise InputFileError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise InputFileError(
            f"{path}: larger than {max_bytes // 2**10:,} KiB; expected {what} (a few KB)"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{path}: not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x}): a binary "
            f"file or another encoding; expected {what} as UTF-8 text"
        ) from None


class LimitError(yaml.MarkedYAMLError):
    """A YAML document beyond the limits; ``problem`` says which, ``problem_mark`` where."""

    def __init__(self, problem: str, mark: Any = None):
        super().__init__(problem=problem, problem_mark=mark)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses recursive aliases, deep nesting and documents that expand to
    more than ``MAX_YAML_VALUES`` values. Sizes are counted per node once (aliases reuse the
    node), so counting costs no more than composing."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._open: set[str] = set()  # anchors of the nodes being composed right now
        self._sizes: dict[int, int] = {}  # id(node) -> values it holds, aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise LimitError(
                    f"alias *{event.anchor} refers to a value that contains it (a recursive "
                    "alias); expected aliases of finished values only",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise LimitError(
                f"nested more than {MAX_YAML_DEPTH} levels deep; expected a flatter document",
                event.start_mark,
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(anchor)
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        size = 1 + sum(self._sizes.get(id(child), 1) for child in children)
        if size > MAX_YAML_VALUES:
            raise LimitError(
                f"the document expands to more than {MAX_YAML_VALUES:,} values (aliases "
                "counted each time they are used); expected a smaller document",
                node.start_mark,
            )
        self._sizes[id(node)] = size
        return node


def compose_and_load(text: str) -> tuple[yaml.Node | None, Any]:
    """The node graph (for line numbers) and the data of one YAML document, within the limits.

    Raises ``yaml.YAMLError`` (``LimitError`` for the limits) like ``yaml.safe_load``.
    """
    if len(text) > MAX_YAML_CHARS:
        raise LimitError(
            f"{len(text):,} characters; expected at most {MAX_YAML_CHARS:,} in a YAML file"
        )
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except (ValueError, OverflowError) as exc:
        # PyYAML converts scalars with Python's own int() and datetime(): an integer of more
        # than 4,300 digits or a date like 2024-13-45 raises from there, not as a YAMLError.
        why = "an integer of thousands of digits" if "digits" in str(exc) else str(exc)
        raise LimitError(f"a value YAML cannot read ({why}); expected a number or text") from None
    finally:
        loader.dispose()
    return node, data


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` within the limits: for every YAML that a user or a run folder gives."""
    return compose_and_load(text)[1]


def max_cells() -> int:
    """The most cells a scenario may expand to; ValueError when ``BENCH_MAX_CELLS`` is bad."""
    raw = os.environ.get(ENV_MAX_CELLS, "").strip()
    if not raw:
        return MAX_CELLS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_CELLS_LIMIT:
        raise ValueError(
            f"{ENV_MAX_CELLS}={raw[:40]!r}: expected a whole number of cells from 1 to "
            f"{MAX_CELLS_LIMIT:,}"
        )
    return value

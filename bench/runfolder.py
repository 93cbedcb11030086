"""Run folders on disk: ``run.json`` (what ran, where, when) and ``cells.jsonl`` (one record per
cell, appended and flushed as each cell finishes, so a killed run keeps its finished cells).

One writer at a time: ``RunWriter`` holds an exclusive ``flock`` on ``run.lock`` inside the folder
from creation (or resume) to ``finish``; a second writer is refused with ``ResultsError``. A
resumed writer first sets aside a cut-off last record (a run killed mid-write) into
``cells.jsonl.damaged``, so every append starts on a fresh line. ``run.json`` is replaced
atomically (write to a temporary file, then rename).

Nothing in a run folder is opened through a symbolic link (``O_NOFOLLOW``; folders and whole
files through ``bench.safefiles``): a link there could make a resumed run write, or a reader
read, a file outside the folder. A writer also looks, before it starts and before each worker
and cell, for a link anywhere bench writes (``check_own_paths``) and refuses the folder naming
it, so the run stops as it was instead of writing through it.

Readers stream ``cells.jsonl`` line by line (memory bounded by the largest record) and check the
shape of everything that later code reads, so a damaged file is a ``ResultsError`` naming the
file, line and field instead of a traceback somewhere downstream. They refuse a
``schema_version`` they do not know, saying which version wrote the run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import json
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from bench.finite import finite_record, is_finite_number
from bench.limits import (
    MAX_BATCH,
    MAX_FLAGS,
    MAX_MEASURED,
    MAX_PROFILE_OPS,
    MAX_REPEATS,
    MAX_SERVE_PROBES,
)
from bench.safefiles import links_below, write_atomic

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
CELLS_FILE = "cells.jsonl"
LOCK_FILE = "run.lock"
DAMAGED_SUFFIX = ".damaged"  # cells.jsonl.damaged: cut-off records set aside by a resume
WORKER_LOG = "worker-{framework}-{device}.log"  # each worker's stderr, appended across starts
# Folders bench writes inside a run folder, with everything in them: profiler traces (one folder
# per profiled cell), the parity set (weights, evaluation set, reference), LiteRT model files.
PROFILES_DIR, PARITY_DIR, MODELS_DIR = "profiles", "parity", "litert"
OWN_FILES = (RUN_FILE, CELLS_FILE, LOCK_FILE, CELLS_FILE + DAMAGED_SUFFIX)
OWN_FOLDERS = (PROFILES_DIR, PARITY_DIR, MODELS_DIR)
# Statuses a cell record can hold; "ok" is the only one with trustworthy numbers.
STATUSES = ("ok", "skipped", "failed", "oom", "timeout", "invalid")
FAILED = ("failed", "oom", "timeout", "invalid")
# run.json holds the scenario text and the environment: kilobytes. A record holds its raw step
# times: 100,000 samples are about 2 MB. Far larger is not a file bench wrote.
MAX_RUN_FILE_BYTES = 16 * 2**20
MAX_RECORD_BYTES = 64 * 2**20


class ResultsError(Exception):
    """A folder that is not a readable run (missing files, bad JSON, unknown schema), or one that
    another process is writing."""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id(scenario_name: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{scenario_name}-{secrets.token_hex(2)}"


# -- files inside a run folder: never through a link --------------------------------------


def os_problem(exc: OSError, doing: str) -> str:
    if exc.errno == errno.ELOOP:
        return (
            "is a symbolic link; bench does not follow links inside a run folder "
            "(put the file itself there)"
        )
    if exc.errno == errno.EISDIR:
        return "is a directory, expected a file"
    if exc.errno == errno.ENOENT:
        return "does not exist"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot {doing} (permission denied)"
    return f"cannot {doing} ({exc.strerror or exc})"


def open_in_run(path: Path, mode: str = "rb") -> IO[bytes]:
    """``path`` opened in binary ``mode`` ("rb", "ab" or "r+b") without following a link.

    OSError when it cannot be opened (ELOOP for a link); ResultsError for something that is not
    a regular file, which a FIFO or a device there could otherwise hang or flood a reader with.
    """
    flags = {"rb": os.O_RDONLY, "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT, "r+b": os.O_RDWR}
    fd = os.open(path, flags[mode] | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise ResultsError(f"{path}: is {what}, expected a file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, mode, buffering=0 if mode != "rb" else -1)
    except BaseException:
        os.close(fd)
        raise


def _open_for_reading(path: Path) -> IO[bytes]:
    try:
        return open_in_run(path, "rb")
    except OSError as exc:
        raise ResultsError(f"{path}: {os_problem(exc, 'read')}") from None


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """``path`` replaced whole by ``data`` as strict JSON; ResultsError when ``path`` is a link
    (left untouched) or cannot be written."""
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"  # strict JSON
    try:
        write_atomic(path, text.encode())
    except OSError as exc:
        raise ResultsError(f"{path}: {os_problem(exc, 'write')}") from None


def check_own_paths(path: Path) -> None:
    """ResultsError naming the first symbolic link where bench writes in run folder ``path``:
    its files, worker logs, and anything in its own folders (``OWN_FOLDERS``). Called before a
    writer starts and before each worker and cell, so a planted link stops the run before
    anything is written through it (the writes themselves never follow one either)."""
    try:
        names = [
            *OWN_FILES,
            *OWN_FOLDERS,
            *(
                n
                for n in os.listdir(path)
                if fnmatch.fnmatch(n, WORKER_LOG.format(framework="*", device="*"))
            ),
        ]
        link = links_below(path, tuple(names))
    except OSError as exc:
        where = exc.filename or path
        raise ResultsError(f"{where}: {os_problem(exc, 'read')}") from None
    if link is not None:
        raise ResultsError(
            f"{link}: is a symbolic link where bench writes its own file or folder; bench does "
            "not follow links inside a run folder (remove the link, then bench run --resume)"
        )


# -- reading ------------------------------------------------------------------------------


def _parse_json(raw: bytes, where: str, lines: bool = True) -> Any:
    """One JSON document from bytes; ResultsError saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsError(
            f"{where}: not UTF-8 text (byte {exc.start}): a binary or damaged file"
        ) from None
    if not text.strip():
        raise ResultsError(f"{where}: empty, expected a JSON object")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f":{exc.lineno}" if lines else ""
        raise ResultsError(f"{where}{at}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise ResultsError(f"{where}: nested too deeply to be a file bench wrote") from None
    except ValueError:  # an integer of more than 4,300 digits (int_max_str_digits)
        raise ResultsError(f"{where}: a number too long to be one bench wrote") from None


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "?")


_EXPECTED = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def _check_type(value: Any, kind: Any, where: str) -> None:
    """``kind``: a type, or ``(list, element type)``; bool is never a number here."""
    element = None
    if isinstance(kind, tuple):
        kind, element = kind
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ResultsError(f"{where}: expected {_EXPECTED[kind]}, found {_type_name(value)}")
    if element is not None:
        for i, item in enumerate(value):
            _check_type(item, element, f"{where}[{i}]")


# What readers of run.json rely on: (dotted field, type, required). Optional fields may be null.
META_FIELDS: tuple[tuple[str, Any, bool], ...] = (
    ("run_id", str, True),
    ("scenario", dict, True),
    ("scenario.name", str, True),
    ("scenario.path", str, False),
    ("scenario.sha256", str, False),
    ("scenario.text", str, False),
    ("scenario.overrides", (list, str), False),
    ("scenario.only", (list, str), False),
    ("command", (list, str), False),
    ("cells_planned", (list, str), False),
    ("status", str, False),
    ("started_at", str, False),
    ("finished_at", str, False),
    ("resumed_at", (list, str), False),
    ("environment", dict, False),
    ("environment.host", dict, False),
    ("environment.os", dict, False),
    ("environment.python", dict, False),
    ("environment.packages", dict, False),
    ("environment.accelerators", (list, dict), False),
    ("environment.git", dict, False),
    ("environment.frameworks", dict, False),
    ("reference_kernel", dict, False),
    ("reference_kernel.start", dict, False),
    ("reference_kernel.end", dict, False),
    ("multihost", dict, False),
)


def check_meta(meta: Any, where: str) -> dict[str, Any]:
    """``meta`` (parsed run.json) if it has the shape readers rely on; else ResultsError."""
    if not isinstance(meta, dict):
        raise ResultsError(f"{where}: expected a JSON object, found {_type_name(meta)}")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ResultsError(
            f"{where}: written with results schema_version {version!r} (bench "
            f"{meta.get('bench_version', 'unknown')}); this bench reads version {SCHEMA_VERSION}"
        )
    for name, kind, required in META_FIELDS:
        *parents, last = name.split(".")
        holder: Any = meta
        for part in parents:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if not isinstance(holder, dict):
            continue  # an optional parent that is absent
        if last not in holder or holder[last] is None:
            if required:
                raise ResultsError(f"{where}: {name}: missing")
            continue
        _check_type(holder[last], kind, f"{where}: {name}")
    if not meta["run_id"]:
        raise ResultsError(f"{where}: run_id: empty")
    return meta


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_record(record: Any, where: str) -> dict[str, Any]:
    """``record`` (one parsed line of cells.jsonl) if it has the shape readers rely on."""
    if not isinstance(record, dict):
        raise ResultsError(
            f"{where}: expected a cell record (an object), found {_type_name(record)}"
        )
    cell_id = record.get("cell_id")
    if not isinstance(cell_id, str) or not cell_id:
        raise ResultsError(f"{where}: cell_id: expected a string, found {_type_name(cell_id)}")
    where = f"{where}: cell {cell_id!r}"
    key = record.get("key")
    if not isinstance(key, dict) or not key:
        raise ResultsError(
            f"{where}: no cell key (key: expected an object of axis values, found {_type_name(key)})"
        )
    for axis, value in key.items():
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ResultsError(
                f"{where}: key.{axis}: expected a text or number, found {_type_name(value)}"
            )
        # NaN, inf or 10**400 in a key: damage, not a cell (bools and texts are no numbers).
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and not is_finite_number(value):
            raise ResultsError(
                f"{where}: key.{axis}: expected a finite number within "
                f"{MAX_MEASURED:g}, found {_shown(value)}"
            )
    batch = key.get("batch_size")  # every cell has one; readers compute with it
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= MAX_BATCH:
        raise ResultsError(
            f"{where}: key.batch_size: expected a positive integer up to {MAX_BATCH:,}, "
            f"found {_shown(batch)}"
        )
    status = record.get("status")
    if status not in STATUSES:
        raise ResultsError(f"{where}: status: {status!r} is not one of {', '.join(STATUSES)}")
    for name, kind in (
        ("reason", str),
        ("flags", (list, str)),
        ("metrics", dict),
        ("samples", dict),
    ):
        if record.get(name) is not None:
            _check_type(record[name], kind, f"{where}: {name}")
    if record.get("profile") is not None:
        _check_profile(record["profile"], where)
    if record.get("serve") is not None:
        _check_serve(record["serve"], where)
    for name, most in (("flags", MAX_FLAGS), ("repeats", MAX_REPEATS)):
        if isinstance(record.get(name), list) and len(record[name]) > most:
            raise ResultsError(
                f"{where}: {name}: {len(record[name]):,} entries; bench writes at most {most}"
            )
    for name, entry in (record.get("metrics") or {}).items():
        if entry is not None and not isinstance(entry, dict):
            raise ResultsError(
                f"{where}: metrics.{name}: expected an object, found {_type_name(entry)}"
            )
    for name, values in (record.get("samples") or {}).items():
        if values is None:
            continue
        if not isinstance(values, list):
            raise ResultsError(
                f"{where}: samples.{name}: expected a list of numbers, found {_type_name(values)}"
            )
        # Numbers (null: one bench could not keep, bench.finite); ``*_by_repeat`` holds one
        # list of numbers per worker process.
        for i, item in enumerate(values):
            inner = item if isinstance(item, list) and name.endswith("_by_repeat") else [item]
            if not all(v is None or _is_number(v) for v in inner):
                raise ResultsError(f"{where}: samples.{name}[{i}]: expected a number")
    # NaN, infinite, overflowing or impossible numbers: the cell is invalid, as bench run
    # would have made it, on every reading path.
    return finite_record(record)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


# What readers of a serve cell's ``serve`` block rely on (report, recommend, server overhead):
# (dotted field, type, required); each probe is checked with SERVE_PROBE_FIELDS.
SERVE_FIELDS: tuple[tuple[str, Any, bool], ...] = (
    ("slo", dict, True),
    ("slo.percentile", float, True),
    ("slo.latency_ms", float, True),
    ("probes", (list, dict), True),
)
SERVE_PROBE_FIELDS: tuple[tuple[str, Any, bool], ...] = (
    ("offered_qps", float, False),
    ("slo_latency_s", float, False),
    ("meets_slo", bool, False),
    ("valid", bool, False),
    ("batch_size", dict, False),
    ("batch_size.mean", float, False),
)


def _field(holder: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        holder = holder.get(part) if isinstance(holder, dict) else None
    return holder


def _check_value(value: Any, kind: Any, where: str) -> None:
    """``kind`` float: any number; bool: true/false; else as ``_check_type``."""
    if kind is float:
        if not _is_number(value):
            raise ResultsError(f"{where}: expected a number, found {_type_name(value)}")
    elif kind is bool:
        if not isinstance(value, bool):
            raise ResultsError(f"{where}: expected true/false, found {_type_name(value)}")
    else:
        _check_type(value, kind, where)


def _check_serve(serve: Any, where: str) -> None:
    where = f"{where}: serve"
    _check_type(serve, dict, where)
    _check_fields(serve, SERVE_FIELDS, where)
    if len(serve["probes"]) > MAX_SERVE_PROBES:
        raise ResultsError(
            f"{where}.probes: {len(serve['probes']):,} probes; bench writes at most "
            f"{MAX_SERVE_PROBES}"
        )
    for i, probe in enumerate(serve["probes"]):
        _check_fields(probe, SERVE_PROBE_FIELDS, f"{where}.probes[{i}]")


# What readers of a profiled cell's ``profile`` block rely on (bench results --cell, report):
# (dotted field, type, required); a breakdown's fields are required when it is there.
PROFILE_FIELDS: tuple[tuple[str, Any, bool], ...] = (
    ("trace_dir", str, True),
    ("breakdown", dict, False),
)
BREAKDOWN_FIELDS: tuple[tuple[str, Any, bool], ...] = (
    ("scope", str, True),
    ("traced_steps", int, True),
    ("traced_wall_s", float, True),
    ("lines", int, True),
    ("ops", int, True),
    ("busy_share", float, False),
    ("top_ops", (list, dict), False),
)
TOP_OP_FIELDS = (("op", str), ("self_s", float), ("share", float))


def _check_fields(holder: dict[str, Any], fields: Any, where: str) -> None:
    for dotted, kind, required in fields:
        value = _field(holder, dotted)
        if value is None:
            if required:
                raise ResultsError(f"{where}.{dotted}: missing")
            continue
        _check_value(value, kind, f"{where}.{dotted}")


def _check_profile(profile: Any, where: str) -> None:
    where = f"{where}: profile"
    _check_type(profile, dict, where)
    _check_fields(profile, PROFILE_FIELDS, where)
    found = profile.get("breakdown")
    if found is None:
        return
    _check_fields(found, BREAKDOWN_FIELDS, f"{where}.breakdown")
    ops = found.get("top_ops") or []
    if len(ops) > MAX_PROFILE_OPS:  # bench keeps the top ten; the trace folder holds the rest
        raise ResultsError(
            f"{where}.breakdown.top_ops: {len(ops):,} entries; bench writes at most "
            f"{MAX_PROFILE_OPS}"
        )
    for i, op in enumerate(ops):
        _check_fields(
            op, [(n, k, True) for n, k in TOP_OP_FIELDS], f"{where}.breakdown.top_ops[{i}]"
        )


def iter_records(cells_file: Path, warnings: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each record of ``cells_file``, read one line at a time.

    A last line without its newline that does not parse is a record cut off by a killed writer:
    every earlier record is intact, so it is skipped with a note in ``warnings``.
    """
    with _open_for_reading(cells_file) as f:
        number = 0
        while True:
            try:
                line = f.readline(MAX_RECORD_BYTES + 1)
            except OSError as exc:
                raise ResultsError(f"{cells_file}: {os_problem(exc, 'read')}") from None
            if not line:
                return
            number += 1
            if len(line) > MAX_RECORD_BYTES:
                raise ResultsError(
                    f"{cells_file}:{number}: a line longer than {MAX_RECORD_BYTES // 2**20} MiB "
                    "is not a record bench wrote"
                )
            if not line.strip():
                continue
            where = f"{cells_file}:{number}"
            try:
                parsed = _parse_json(line, where, lines=False)
            except ResultsError:
                # A killed writer leaves the start of a record; anything else is damage.
                if not line.endswith(b"\n") and line.lstrip().startswith(b"{"):
                    warnings.append(
                        f"{where}: truncated last record ignored (a run killed mid-write; "
                        f"bench run --resume sets it aside into {CELLS_FILE}{DAMAGED_SUFFIX})"
                    )
                    return
                raise
            yield number, check_record(parsed, where)


@dataclass
class Run:
    path: Path
    meta: dict[str, Any]
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell_id -> latest record
    warnings: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.meta["run_id"]


def read_meta(path: Path) -> dict[str, Any]:
    """The checked ``run.json`` of run folder ``path``."""
    run_file = path / RUN_FILE
    with _open_for_reading(run_file) as f:
        try:
            raw = f.read(MAX_RUN_FILE_BYTES + 1)
        except OSError as exc:
            raise ResultsError(f"{run_file}: {os_problem(exc, 'read')}") from None
    if len(raw) > MAX_RUN_FILE_BYTES:
        raise ResultsError(
            f"{run_file}: larger than {MAX_RUN_FILE_BYTES // 2**20} MiB; not a file bench wrote"
        )
    return check_meta(_parse_json(raw, str(run_file)), str(run_file))


def load_run(path: str | Path) -> Run:
    path = Path(path)
    try:
        present = (path / RUN_FILE).exists() or (path / RUN_FILE).is_symlink()
    except OSError as exc:
        raise ResultsError(f"{path}: {os_problem(exc, 'read')}") from None
    if not present:
        raise ResultsError(f"{path}: not a bench run folder (no {RUN_FILE})")
    run = Run(path, read_meta(path))
    cells_file = path / CELLS_FILE
    if cells_file.exists() or cells_file.is_symlink():
        for _, record in iter_records(cells_file, run.warnings):
            run.cells[record["cell_id"]] = record
    return run


def list_runs(results_dir: str | Path) -> list[Run | ResultsError]:
    """Every run folder under ``results_dir``, oldest first; unreadable ones as errors."""
    found: list[Run | ResultsError] = []
    root = Path(results_dir)
    if not root.is_dir():
        return found
    for child in sorted(root.iterdir()):
        try:
            if not child.is_dir() or not (child / RUN_FILE).exists():
                continue
        except OSError as exc:
            found.append(ResultsError(f"{child}: {os_problem(exc, 'read')}"))
            continue
        try:
            found.append(load_run(child))
        except ResultsError as exc:
            found.append(exc)
    return found


# -- writing ------------------------------------------------------------------------------


def _lock(path: Path) -> int:
    """An exclusive lock on ``path/run.lock``, held while the returned descriptor is open."""
    lock_file = path / LOCK_FILE
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ResultsError(f"{lock_file}: {os_problem(exc, 'open')}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode("ascii", "replace").strip()
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise ResultsError(
            f"{path}: another bench process{who} is writing this run folder; "
            "wait for it to finish or stop it, then resume"
        ) from None
    # Who holds it, for the message above; the lock itself is the flock, not this content.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


# A run id is a second's timestamp and 16 random bits: two runs of one scenario started in the
# same second draw the same id about once in 65,536. A few fresh draws settle any such clash;
# ids that clash every time are folders someone made in advance, refused.
RUN_ID_TRIES = 5


def _new_run_folder(results_dir: Path, scenario_name: str) -> Path:
    """A new, empty run folder under ``results_dir`` (made if needed); ResultsError when the
    results folder cannot be one or no fresh id can be had."""
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ResultsError(
            f"{results_dir}: the results folder is a file; expected a folder (--results-dir)"
        ) from None
    except OSError as exc:
        what = "a file, expected a folder" if exc.errno == errno.ENOTDIR else None
        problem = f"has {what} on its path" if what else os_problem(exc, "make the folder")
        raise ResultsError(f"{results_dir}: the results folder {problem} (--results-dir)") from None
    for _ in range(RUN_ID_TRIES):
        path = results_dir / new_run_id(scenario_name)
        try:
            os.mkdir(path)  # never through a link: a name already taken (by anything) is EEXIST
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise ResultsError(
                f"{path}: cannot make the run folder: {os_problem(exc, 'write')}"
            ) from None
    raise ResultsError(
        f"{path}: a run folder of this id already exists, {RUN_ID_TRIES} fresh ids in a row; "
        f"expected new ids to be free in {results_dir} (is something making folders there?)"
    )


def _set_aside_tail(path: Path) -> str | None:
    """Make ``cells.jsonl`` end on a newline. A cut-off last record moves to
    ``cells.jsonl.damaged`` (kept for a look); a whole one that only lacks its newline gets it.
    Returns what was done, for the user, or None when the file was fine."""
    cells_file = path / CELLS_FILE
    try:
        f = open_in_run(cells_file, "r+b")
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise ResultsError(f"{cells_file}: {os_problem(exc, 'open')}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size == 0 or os.pread(f.fileno(), 1, size - 1) == b"\n":
            return None
        cut = size
        while cut > 0:  # back to the last newline, a block at a time
            start = max(0, cut - 65536)
            block = os.pread(f.fileno(), cut - start, start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                cut = start + newline + 1
                break
            cut = start
        tail = os.pread(f.fileno(), size - cut, cut)
        try:
            whole = isinstance(json.loads(tail), dict)
        except (ValueError, RecursionError):
            whole = False
        if whole:
            os.pwrite(f.fileno(), b"\n", size)
            os.fsync(f.fileno())
            return None
        damaged = path / (CELLS_FILE + DAMAGED_SUFFIX)
        try:
            with open_in_run(damaged, "ab") as side:
                side.write(tail + b"\n")
                os.fsync(side.fileno())
        except OSError as exc:
            raise ResultsError(f"{damaged}: {os_problem(exc, 'write')}") from None
        os.ftruncate(f.fileno(), cut)
        os.fsync(f.fileno())
    line = 1 + (0 if cut == 0 else _count_lines(cells_file))
    return (
        f"{cells_file}:{line}: cut-off last record ({len(tail)} bytes, from a run killed "
        f"mid-write) moved to {damaged}"
    )


def _count_lines(path: Path) -> int:
    with open_in_run(path, "rb") as f:
        return sum(1 for _ in f)


class RunWriter:
    """Owns one run folder while ``bench run`` writes it, under an exclusive lock."""

    def __init__(self, path: Path, meta: dict[str, Any], lock_fd: int):
        self.path = path
        self.meta = meta
        self._lock_fd: int | None = lock_fd
        self.notes: list[str] = []  # what the writer repaired, for the user

    @classmethod
    def create(cls, results_dir: Path, meta: dict[str, Any]) -> RunWriter:
        path = _new_run_folder(Path(results_dir), meta["scenario"]["name"])
        writer = cls(
            path, {"schema_version": SCHEMA_VERSION, "run_id": path.name, **meta}, _lock(path)
        )
        writer.update(status="running", started_at=utc_now())
        try:
            open_in_run(path / CELLS_FILE, "ab").close()
        except OSError as exc:
            writer.close()
            raise ResultsError(f"{path / CELLS_FILE}: {os_problem(exc, 'open')}") from None
        return writer

    @classmethod
    def reopen(cls, path: Path) -> tuple[RunWriter, Run]:
        """Lock ``path``, set aside a cut-off last record, and read the run as it now is.

        Nothing else is written: the caller decides whether anything is left to run
        (``resume``) before run.json changes.
        """
        fd = _lock(path)
        try:
            check_own_paths(path)  # before anything is written, so the run keeps its status
            note = _set_aside_tail(path)
            run = load_run(path)
        except BaseException:
            os.close(fd)
            raise
        writer = cls(path, run.meta, fd)
        if note:
            writer.notes.append(note)
        return writer, run

    def check(self) -> None:
        """ResultsError when a link has appeared where this run writes (``check_own_paths``)."""
        check_own_paths(self.path)

    def resume(self) -> None:
        resumes = [*(self.meta.get("resumed_at") or []), utc_now()]
        self.update(status="running", resumed_at=resumes, finished_at=None)

    def update(self, **fields: Any) -> None:
        self.meta.update(fields)
        write_json_atomic(self.path / RUN_FILE, self.meta)

    def append_cell(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, allow_nan=False)  # NaN is not JSON: see bench.finite
        cells_file = self.path / CELLS_FILE
        try:
            with open_in_run(cells_file, "ab") as f:
                f.write((line + "\n").encode())
                os.fsync(f.fileno())
        except OSError as exc:
            raise ResultsError(f"{cells_file}: {os_problem(exc, 'write')}") from None

    def finish(self, status: str) -> None:
        self.update(status=status, finished_at=utc_now())
        self.close()

    def close(self) -> None:
        """Release the lock (the last thing a writer does)."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

"""The parity set of a run: one float32 weight set, one evaluation set and one reference per model.

Every predict cell of a run starts from the same weights and predicts the same examples, so
that how far its outputs are from the float32 CPU reference (``bench.measure.parity``) says what
its framework, precision or converter changed, and nothing else. Framework-free: backends call
in here from their worker, and read and write plain numpy files.

**Files** (``<run>/parity/<model>-<hash>/``, one folder per model, ``model_args`` and seed; the
hash is of those three, so two models of a run never share one)::

    meta.json       model, model_args (validated, defaults filled), seed, the evaluation set's
                    size and seed, the canonical weight names and shapes, who wrote each file
    weights.npz     canonical name -> float32 array (see "Names" below)
    eval.npz        feature name -> the N evaluation examples (``EVAL_EXAMPLES``)
    reference.npz   ``outputs``: float32 ``[N, num_outputs]``, the model's float32 prediction
                    on the CPU with these weights, in inference mode (logits or regression values)

**Who writes them**: the first worker to run a predict cell of the model, under an exclusive
``flock`` on ``<run>/parity/<model>-<hash>.lock`` (two workers racing for the same model: the
second waits, then reads). That worker initialises the model with its own framework from the
scenario's seed (``Backend.init_weights``), draws the evaluation set from the model's data spec
(``eval_set``), predicts it in float32 on its CPU (``Backend.reference_outputs``) and writes
the files, ``meta.json`` last: a folder without ``meta.json`` is an interrupted write, redone.
Which framework wrote the reference is in ``meta.json`` and in each parity metric's method;
JAX and TensorFlow float32 agree within 1e-5 (tests/test_parity.py), so it does not matter.

**Names**: a weight's canonical name is its Flax path with the collection first
(``params/layer_0/attention/query/kernel``, ``batch_stats/stem_bn/mean``). A Keras variable's
path (``transformer/layer_0/attention/query/kernel``) maps onto it by ``keras_name``: drop the
model's own name, rename the few leaves Keras names differently (``KERAS_LEAVES``) and the
attention output scope (``KERAS_SCOPES``). The zoo's twins name their layers alike so that
this general rule is all it takes; a model whose twins do not gets a clear error listing the
unmatched names on each side (``match_names``).

**What a backend provides** (all optional; without them its predict cells record parity as
unavailable, with the reason):

- module-level ``init_weights(req) -> dict[str, np.ndarray]``: the model's float32 weights,
  initialised from ``req.seed``, under canonical names;
- module-level ``reference_outputs(req, weights, features) -> np.ndarray``: float32 CPU
  inference on ``features`` with ``weights``;
- ``build(req)`` loads ``req.weights`` (canonical names) into its model when they are given;
- ``Workload.predict_eval(features) -> np.ndarray``: the cell's compiled prediction (its
  precision, device, converter) on the evaluation set, ``[N, num_outputs]``. ``eval_calls``
  cuts the set into the cell's batch shape (padded, and stacked for ``steps_per_call``);
  ``join_outputs`` undoes it.

The cell (``bench.workloads.cell.offline``) prepares the set before building (outside the timed phase and
outside time-to-first-result), and calls ``predict_eval`` after the timed phase.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs.synthetic import make_batch
from bench.measure.parity import EVAL_EXAMPLES, EVAL_SEED_OFFSET
from bench.modeldef import DataSpec
from bench.runfolder import PARITY_DIR, ResultsError, open_in_run
from bench.safefiles import make_dir, make_dirs, write_atomic

FOLDER = PARITY_DIR
META, WEIGHTS, EVAL, REFERENCE = "meta.json", "weights.npz", "eval.npz", "reference.npz"
MAX_META_BYTES = 1 << 20  # meta.json lists weight names and shapes: kilobytes
FORMAT = 1  # meta.json's "format": a reader refuses another

# Keras leaf name -> (Flax collection, Flax leaf name).
KERAS_LEAVES = {
    "gamma": ("params", "scale"),
    "beta": ("params", "bias"),
    "moving_mean": ("batch_stats", "mean"),
    "moving_variance": ("batch_stats", "var"),
    "embeddings": ("params", "embedding"),
}
KERAS_SCOPES = {"attention_output": "out"}  # MultiHeadAttention's output projection


class ParitySetError(RuntimeError):
    """A parity file that is missing, damaged or does not fit the model (names the file)."""


# -- names ----------------------------------------------------------------------------------


def keras_name(path: str) -> str:
    """A Keras variable path -> its canonical name:
    ``resnet/stem_bn/moving_mean`` -> ``batch_stats/stem_bn/mean``."""
    *scopes, leaf = path.split("/")[1:]  # the first scope is the model's own name
    collection, leaf = KERAS_LEAVES.get(leaf, ("params", leaf))
    return "/".join([collection, *(KERAS_SCOPES.get(s, s) for s in scopes), leaf])


def flatten(tree: Mapping[str, Any], prefix: str = "", arrays: bool = True) -> dict[str, Any]:
    """Flax variables (nested mappings, collection first) -> canonical name -> array (or the
    leaf as it is, with ``arrays=False``: shapes from ``jax.eval_shape``)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}/", arrays))
        else:
            flat[name] = np.asarray(value) if arrays else value
    return flat


def unflatten(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Canonical name -> array, back to nested dicts (Flax's variables)."""
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        *scopes, leaf = name.split("/")
        node = tree
        for scope in scopes:
            node = node.setdefault(scope, {})
        node[leaf] = value
    return tree


def match_names(
    given: Mapping[str, np.ndarray], wanted: Mapping[str, tuple[int, ...]], where: str
) -> None:
    """Raise ``ParitySetError`` unless ``given`` has exactly the names and shapes ``wanted``."""
    missing, extra = sorted(set(wanted) - set(given)), sorted(set(given) - set(wanted))
    if missing or extra:
        raise ParitySetError(
            f"{where}: the shared weight set does not match the model by name: model only "
            f"{missing[:5]}, weight set only {extra[:5]} (see bench/backends/parity.py, Names)"
        )
    for name, shape in wanted.items():
        if tuple(given[name].shape) != tuple(shape):
            raise ParitySetError(
                f"{where}: weight {name!r} has shape {tuple(given[name].shape)} in the shared "
                f"set, the model expects {tuple(shape)}"
            )


# -- the evaluation set ------------------------------------------------------------------------


def eval_set(spec: DataSpec, seed: int, n: int = EVAL_EXAMPLES) -> dict[str, np.ndarray]:
    """The fixed evaluation examples: ``n`` of them from the model's data spec, seeded apart
    from the cells' own batches (labels dropped: parity compares predictions, not accuracy)."""
    batch = make_batch(spec, n, seed + EVAL_SEED_OFFSET)
    return {k: v for k, v in batch.items() if k != "label"}


def eval_calls(
    features: Mapping[str, np.ndarray], batch_size: int, steps_per_call: int = 1
) -> list[dict[str, np.ndarray]]:
    """The evaluation set as the compiled step's inputs: ``[batch, ...]`` per call, or
    ``[K, batch, ...]`` stacks when K steps run per call. The last call is padded by repeating
    the set from its start (the rows are dropped again by ``join_outputs``)."""
    n = len(next(iter(features.values())))
    per_call = batch_size * steps_per_call
    calls = -(-n // per_call)
    take = np.arange(calls * per_call) % n
    out = []
    for c in range(calls):
        rows = take[c * per_call : (c + 1) * per_call]
        call = {k: v[rows] for k, v in features.items()}
        if steps_per_call > 1:
            call = {k: v.reshape(steps_per_call, batch_size, *v.shape[1:]) for k, v in call.items()}
        out.append(call)
    return out


def join_outputs(outputs: list[np.ndarray], n: int) -> np.ndarray:
    """Per-call predictions (``[batch, o]`` or ``[K, batch, o]``) -> the first ``n`` rows, float32."""
    rows = [np.asarray(o, dtype=np.float32).reshape(-1, np.shape(o)[-1]) for o in outputs]
    return np.concatenate(rows)[:n]


# -- the files -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParitySet:
    folder: Path
    meta: dict[str, Any]
    weights: dict[str, np.ndarray]
    features: dict[str, np.ndarray]
    reference: np.ndarray

    def describe(self) -> str:
        """For the metrics' method: which files, and who computed the reference."""
        return f"reference by {self.meta['reference_by']}, {self.folder.parent.name}/{self.folder.name}"


def set_name(model: str, model_args: Mapping[str, Any], seed: int) -> str:
    """The folder name of a model's parity set: readable prefix + hash of what fixes it."""
    text = json.dumps({"model": model, "model_args": model_args, "seed": seed}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9_]+", "_", model).strip("_")[:40] or "model"
    return f"{readable}-{digest}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the fd closes, even on a crash
        yield
    finally:
        os.close(fd)


def _save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getvalue())  # whole or absent, never through a link


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with open_in_run(path) as f, np.load(f, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, ResultsError, zipfile.BadZipFile, EOFError) as exc:
        raise ParitySetError(f"{path}: not a readable parity file ({exc})") from None


def read_set(folder: Path) -> ParitySet:
    """A complete parity set from its folder; ``ParitySetError`` naming the bad file."""
    meta_path = folder / META
    try:
        with open_in_run(meta_path) as f:
            meta = json.loads(f.read(MAX_META_BYTES))
    except (OSError, ValueError, ResultsError) as exc:
        raise ParitySetError(f"{meta_path}: not a readable parity meta file ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ParitySetError(f"{meta_path}: field 'format': expected {FORMAT}")
    reference = _load_npz(folder / REFERENCE).get("outputs")
    if reference is None:
        raise ParitySetError(f"{folder / REFERENCE}: field 'outputs' is missing")
    return ParitySet(folder, meta, _load_npz(folder / WEIGHTS), _load_npz(folder / EVAL), reference)


def shared_set(
    run_dir: Path | str, req: Any, backend: Any, framework: str, n: int = EVAL_EXAMPLES
) -> ParitySet:
    """The run's parity set for ``req``'s model (a ``BuildRequest``): read, or made by this
    worker under the lock when it is the first. ``backend`` is the worker's backend module."""
    args = req.args.model_dump(mode="json")
    name = set_name(req.key["model"], args, req.seed)
    root = make_dirs(Path(run_dir), FOLDER)  # never through a link (bench.safefiles)
    folder = root / name
    with _locked(root / f"{name}.lock"):
        if (folder / META).is_file() and not (folder / META).is_symlink():
            found = read_set(folder)
        else:
            found = _make_set(folder, req, backend, framework, args, n)
    check_set(found, req, args)
    return found


def _make_set(
    folder: Path, req: Any, backend: Any, framework: str, args: dict[str, Any], n: int
) -> ParitySet:
    make_dir(folder)
    weights = {k: np.asarray(v, dtype=np.float32) for k, v in backend.init_weights(req).items()}
    features = eval_set(req.spec, req.seed, n)
    reference = np.asarray(backend.reference_outputs(req, weights, features), dtype=np.float32)
    by = f"{framework} {backend.version()} float32 on the CPU"
    meta = {
        "format": FORMAT,
        "model": req.key["model"],
        "model_args": args,
        "seed": req.seed,
        "eval_examples": n,
        "eval_seed": req.seed + EVAL_SEED_OFFSET,
        "weights": {k: list(v.shape) for k, v in sorted(weights.items())},
        "weights_by": f"{framework} {backend.version()} initialisation from seed {req.seed}",
        "reference_by": by,
    }
    _save_npz(folder / WEIGHTS, weights)
    _save_npz(folder / EVAL, features)
    _save_npz(folder / REFERENCE, {"outputs": reference})
    # Last: its presence says the set is complete.
    write_atomic(folder / META, (json.dumps(meta, indent=2) + "\n").encode())
    return ParitySet(folder, meta, weights, features, reference)


def check_set(found: ParitySet, req: Any, args: dict[str, Any]) -> None:
    """The set is the one of this model, args and seed, and its arrays fit the data spec."""
    meta_path = found.folder / META
    for field, want in (("model", req.key["model"]), ("model_args", args), ("seed", req.seed)):
        if found.meta.get(field) != want:
            raise ParitySetError(
                f"{meta_path}: field {field!r} is {found.meta.get(field)!r}, expected {want!r}"
            )
    n = found.meta.get("eval_examples")
    for name in req.spec.features:
        if name not in found.features or len(found.features[name]) != n:
            raise ParitySetError(f"{found.folder / EVAL}: feature {name!r}: expected {n} examples")
    want_shape = (n, req.spec.num_outputs)
    if tuple(found.reference.shape) != want_shape:
        raise ParitySetError(
            f"{found.folder / REFERENCE}: field 'outputs' has shape "
            f"{tuple(found.reference.shape)}, expected {want_shape}"
        )

"""A served request's body as the model's features, or the client's mistake with its reason.

``bench serve`` answers a request it cannot run with 400 (gRPC: INVALID_ARGUMENT) and this
module's one-line reason; a request that passes every check here runs, and the server's own
faults are the only 500s. Checked, per feature of the model's data spec: the tensor is there
once and no other is; its datatype is of the feature's kind (a float feature takes FP16/32/64, an
integer one INT or UINT of any width, never silently truncated floats); its shape is ``[rows,
*feature shape]`` with as many values as the shape says; every feature has the same rows, from
1 to the server's largest batch; floats are finite; an integer feature with a ``vocab`` holds
indices in ``[0, vocab)`` (out of range, an embedding lookup reads nothing and answers NaN,
which JSON writes as ``null``). Framework-free: numpy and the data spec only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.modeldef import DataSpec, FeatureSpec

V2_FLOATS = ("FP16", "FP32", "FP64")
V2_INTS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
INT32_MAX = 2**31 - 1


class RequestError(ValueError):
    """A request the model cannot run as sent; ``str()`` is the reason given to the client."""


@dataclass(frozen=True)
class Tensor:
    """One v2 input as received: ``values`` are the JSON data (a list, nested or flat) or the
    binary tensor already read in its declared datatype."""

    name: str
    datatype: str
    shape: Sequence[Any]
    values: Any


def features_from_v2(
    tensors: Sequence[Tensor], spec: DataSpec, max_rows: int
) -> dict[str, np.ndarray]:
    """The model's features from a v2 request's input tensors."""
    names = [t.name for t in tensors]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise RequestError(f"inputs {repeated} are given more than once")
    unknown = sorted(set(names) - set(spec.features))
    missing = sorted(set(spec.features) - set(names))
    if unknown or missing:
        raise RequestError(
            f"inputs {sorted(names)}; expected tensors named {sorted(spec.features)}"
            + (f" (missing {missing})" if missing else "")
            + (f" (unknown {unknown})" if unknown else "")
        )
    by_name = {t.name: t for t in tensors}
    out = {k: _v2_tensor(by_name[k], f, max_rows) for k, f in spec.features.items()}
    _same_rows(out)
    return out


def features_from_instances(payload: Any, spec: DataSpec, max_rows: int) -> dict[str, np.ndarray]:
    """TF Serving's row format: ``{"instances": [{feature: value}, ...]}``; a model with one
    feature also takes bare values per row."""
    rows = payload.get("instances") if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not rows:
        raise RequestError("expected a body {'instances': [...]} with at least one row")
    _check_rows(len(rows), max_rows)
    names = list(spec.features)
    if not all(isinstance(r, dict) for r in rows):
        if len(names) != 1 or any(isinstance(r, dict) for r in rows):
            raise RequestError(f"every row must be an object naming the features {names}")
        rows = [{names[0]: r} for r in rows]
    for i, row in enumerate(rows):
        if set(row) != set(names):
            raise RequestError(
                f"instance {i} has the features {sorted(row)}; expected {sorted(names)}"
            )
    out = {}
    for name, feature in spec.features.items():
        try:
            values = np.asarray([r[name] for r in rows])
        except ValueError:  # ragged rows
            raise RequestError(
                f"input {name!r}: rows of different shapes; expected each {list(feature.shape)}"
            ) from None
        out[name] = _checked(name, values, _kind_of(values), feature)
    return out


def _v2_tensor(t: Tensor, feature: FeatureSpec, max_rows: int) -> np.ndarray:
    kind = "f" if feature.dtype.startswith("float") else "i"
    allowed = V2_FLOATS if kind == "f" else V2_INTS
    if t.datatype not in allowed:
        raise RequestError(
            f"input {t.name!r} has datatype {str(t.datatype)[:20]!r}; expected one of "
            f"{', '.join(allowed)} ({feature.dtype} values)"
        )
    want = feature.shape or ()
    shape = list(t.shape)
    if (
        not shape
        or not all(isinstance(d, int) and d >= 0 for d in shape)
        or tuple(shape[1:]) != tuple(want)
    ):
        raise RequestError(
            f"input {t.name!r} has shape {shape[:8]}; expected [rows, {', '.join(map(str, want))}]"
        )
    _check_rows(shape[0], max_rows)
    try:
        values = np.asarray(t.values)
    except ValueError:
        raise RequestError(f"input {t.name!r}: its data is not a tensor (ragged lists)") from None
    if values.size != math.prod(shape):
        raise RequestError(
            f"input {t.name!r} has {values.size:,} values; its shape {shape} holds "
            f"{math.prod(shape):,}"
        )
    return _checked(t.name, values.reshape(shape), _kind_of(values), feature)


def _kind_of(values: np.ndarray) -> str:
    """'f' float, 'i' integer, '' neither (text, booleans, objects, numbers out of range)."""
    return {"f": "f", "i": "i", "u": "i"}.get(values.dtype.kind, "")


def _checked(name: str, values: np.ndarray, kind: str, feature: FeatureSpec) -> np.ndarray:
    want = tuple(feature.shape)
    if values.ndim != 1 + len(want) or values.shape[1:] != want:
        raise RequestError(
            f"input {name!r} has shape {list(values.shape)}; expected [rows, {list(want)}]"
        )
    if feature.dtype.startswith("float"):
        if kind not in ("f", "i"):
            raise RequestError(f"input {name!r}: expected numbers ({feature.dtype})")
        values = values.astype(np.float64, copy=False)
        if not np.isfinite(values).all():
            raise RequestError(f"input {name!r} holds NaN or infinity; expected finite numbers")
        if np.abs(values).max(initial=0.0) > np.finfo(feature.dtype).max:
            raise RequestError(f"input {name!r} holds a number beyond {feature.dtype}'s range")
        return values.astype(feature.dtype)
    if kind != "i":
        raise RequestError(f"input {name!r}: expected whole numbers ({feature.dtype} indices)")
    high = feature.vocab if feature.vocab is not None else INT32_MAX + 1
    if values.size and (values.min() < 0 or values.max() >= high):
        bad = int(values.min()) if values.min() < 0 else int(values.max())
        raise RequestError(
            f"input {name!r} holds {bad}; expected indices from 0 to {high - 1:,}"
            + (" (the model's vocabulary)" if feature.vocab is not None else "")
        )
    return values.astype(feature.dtype)


def _check_rows(rows: int, max_rows: int) -> None:
    if not 1 <= rows <= max_rows:
        raise RequestError(
            f"a request of {rows:,} rows; expected 1 to {max_rows:,} (the server's "
            "--max-batch-size)"
        )


def _same_rows(features: dict[str, np.ndarray]) -> None:
    rows = {k: len(v) for k, v in features.items()}
    if len(set(rows.values())) > 1:
        raise RequestError(f"inputs have different numbers of rows: {rows}")

"""Request and response bodies of the built-in model-server protocols (``bench.serve.protocols``
holds the table of protocols; each one's module takes its codec from here).

- ``v2-http``: the Open Inference Protocol (KServe v2, Triton) over REST: ``POST
  /v2/models/NAME/infer`` with ``{"inputs": [{"name", "shape", "datatype", "data"}]}``.
- ``v2-grpc``: the same protocol over gRPC (``inference.GRPCInferenceService/ModelInfer``).
- ``tf-serving-rest``: TensorFlow Serving's REST API (also KServe v1 and a Vertex AI
  endpoint's ``:predict``): ``{"instances": [{feature: value}]}`` -> ``{"predictions": [...]}``.

Framework-free: numpy, the standard library, and for gRPC the ``protobuf`` runtime. The gRPC
messages are declared here from the protocol's field numbers into a private descriptor pool,
so neither generated code nor the ``kserve`` package is needed to drive a server (and a process
that also imports kserve's generated module does not see the names twice).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import numpy as np

GRPC_SERVICE = "/inference.GRPCInferenceService/"

V2_TYPES = {"float32": "FP32", "int32": "INT32", "float64": "FP64", "int64": "INT64"}
# What an answer's tensor may be: the numeric types of the protocol (BYTES is no prediction).
NUMPY_TYPES = {
    **{v: np.dtype(k) for k, v in V2_TYPES.items()},
    "FP16": np.dtype("float16"), "BOOL": np.dtype("bool"),
    "INT8": np.dtype("int8"), "INT16": np.dtype("int16"),
    "UINT8": np.dtype("uint8"), "UINT16": np.dtype("uint16"),
    "UINT32": np.dtype("uint32"), "UINT64": np.dtype("uint64"),
}  # fmt: skip
# The contents field of a gRPC tensor sent without raw bytes, by datatype.
_GRPC_FIELDS = {
    "FP32": "fp32_contents", "FP64": "fp64_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "BOOL": "bool_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
}  # fmt: skip


class MalformedResponse(ValueError):
    """A body that is not the protocol's answer to one request (the reason says what)."""


def v2_json_request(features: dict[str, np.ndarray], request_id: str) -> bytes:
    """One request of the given rows (each feature ``[rows, ...]``) as a v2 REST body."""
    inputs = [
        {
            "name": name,
            "shape": list(value.shape),
            "datatype": V2_TYPES[str(value.dtype)],
            "data": value.ravel().tolist(),
        }
        for name, value in features.items()
    ]
    return json.dumps({"id": request_id, "inputs": inputs}).encode()


def v2_json_response(body: bytes) -> np.ndarray:
    """The first output tensor of a v2 REST answer, shaped."""
    doc = _json(body)
    outputs = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(outputs, list) or not outputs or not isinstance(outputs[0], dict):
        raise MalformedResponse(f"no 'outputs' list in the v2 answer: {_clip(body)}")
    out = outputs[0]
    dtype = _dtype(out.get("datatype", "FP32"))
    if "data" not in out or "shape" not in out:
        raise MalformedResponse(f"v2 output tensor without 'data' and 'shape': {_clip(body)}")
    return _numbers(out["data"], dtype, out["shape"], f": {_clip(body)}")


def tf_serving_request(features: dict[str, np.ndarray]) -> bytes:
    """TF Serving's row format: one instance per row, a mapping of feature -> value."""
    rows = len(next(iter(features.values())))
    instances = [{n: v[r].tolist() for n, v in features.items()} for r in range(rows)]
    return json.dumps({"instances": instances}).encode()


def tf_serving_response(body: bytes) -> np.ndarray:
    doc = _json(body)
    preds = doc.get("predictions") if isinstance(doc, dict) else None
    if not isinstance(preds, list) or not preds:
        raise MalformedResponse(f"no 'predictions' list in the answer: {_clip(body)}")
    return _numbers(preds, np.dtype("float32"), None, f": {_clip(body)}")


def grpc_request(features: dict[str, np.ndarray], model_name: str, request_id: str) -> bytes:
    msgs = grpc_messages()
    req = msgs["ModelInferRequest"](model_name=model_name, id=request_id)
    for name, value in features.items():
        tensor = req.inputs.add(name=name, datatype=V2_TYPES[str(value.dtype)])
        tensor.shape.extend(value.shape)
        # raw_input_contents: the packed little-endian bytes, as Triton and KServe accept.
        req.raw_input_contents.append(
            np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes()
        )
    return req.SerializeToString()


def grpc_response(body: bytes) -> np.ndarray:
    msgs = grpc_messages()
    resp = msgs["ModelInferResponse"]()
    try:
        resp.ParseFromString(body)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise MalformedResponse(f"not a ModelInferResponse ({exc})") from exc
    if not resp.outputs:
        raise MalformedResponse("ModelInferResponse has no outputs")
    out = resp.outputs[0]
    datatype = out.datatype or "FP32"
    dtype = _dtype(datatype)
    try:
        if resp.raw_output_contents:
            flat = np.frombuffer(resp.raw_output_contents[0], dtype=dtype.newbyteorder("<"))
        elif datatype in _GRPC_FIELDS:
            flat = np.asarray(getattr(out.contents, _GRPC_FIELDS[datatype]), dtype=dtype)
        else:
            raise ValueError(f"no raw contents for datatype {datatype}")
    except ValueError as exc:
        raise MalformedResponse(f"output tensor {out.name!r} unreadable ({exc})") from exc
    return _numbers(flat, dtype, list(out.shape), f" (output tensor {out.name[:40]!r})")


def _dtype(datatype: Any) -> np.dtype:
    if not isinstance(datatype, str) or datatype not in NUMPY_TYPES:
        shown = repr(datatype)[:40]
        raise MalformedResponse(
            f"output datatype {shown}; expected one of {', '.join(NUMPY_TYPES)}"
        )
    return NUMPY_TYPES[datatype]


def _numbers(data: Any, dtype: np.dtype, shape: Any, context: str) -> np.ndarray:
    """``data`` as an array of ``dtype`` (reshaped to ``shape`` unless None), every number
    finite: a NaN or an infinity (or a number beyond the type's range, which becomes one) is
    no prediction, whatever the server meant by it."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.asarray(data, dtype=dtype)
        if shape is not None:
            values = values.reshape(shape)
    except (TypeError, ValueError, OverflowError) as exc:
        why = f"{type(exc).__name__}: {str(exc)[:80]}"
        raise MalformedResponse(f"output tensor unreadable ({why}){context}") from exc
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        bad = values[~np.isfinite(values)].ravel()[0]
        raise MalformedResponse(
            f"non-finite number in the predictions ({bad}; NaN, Infinity or beyond "
            f"{dtype.name}'s range){context}"
        )
    return values


def _refuse_constant(name: str) -> Any:
    raise MalformedResponse(f"non-finite number {name} in the answer: no prediction")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except MalformedResponse:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, ...
        # ... and a 5,000-digit integer (ValueError) or [[[[...]]]] nested past the stack.
        why = type(exc).__name__
        raise MalformedResponse(f"not JSON the client can read ({why}): {_clip(body)}") from exc


def _clip(body: bytes, n: int = 120) -> str:
    text = body[:n].decode("utf-8", "replace")
    return repr(text + ("..." if len(body) > n else ""))


# -- the gRPC messages, from the protocol's field numbers ----------------------------------------

# (message, [(field, number, type, repeated, message type)]); types as in descriptor.proto.
_STRING, _BOOL, _INT64, _BYTES, _MSG = 9, 8, 3, 12, 11
_FIELDS: dict[str, list[tuple[str, int, int, bool, str]]] = {
    "InferTensorContents": [
        ("bool_contents", 1, _BOOL, True, ""),
        ("int_contents", 2, 5, True, ""),
        ("int64_contents", 3, _INT64, True, ""),
        ("uint_contents", 4, 13, True, ""),
        ("uint64_contents", 5, 4, True, ""),
        ("fp32_contents", 6, 2, True, ""),
        ("fp64_contents", 7, 1, True, ""),
        ("bytes_contents", 8, _BYTES, True, ""),
    ],
    "InferInputTensor": [
        ("name", 1, _STRING, False, ""),
        ("datatype", 2, _STRING, False, ""),
        ("shape", 3, _INT64, True, ""),
        ("contents", 5, _MSG, False, "InferTensorContents"),
    ],
    "ModelInferRequest": [
        ("model_name", 1, _STRING, False, ""),
        ("model_version", 2, _STRING, False, ""),
        ("id", 3, _STRING, False, ""),
        ("inputs", 5, _MSG, True, "InferInputTensor"),
        ("raw_input_contents", 7, _BYTES, True, ""),
    ],
    "ModelInferResponse": [
        ("model_name", 1, _STRING, False, ""),
        ("model_version", 2, _STRING, False, ""),
        ("id", 3, _STRING, False, ""),
        ("outputs", 5, _MSG, True, "InferInputTensor"),  # InferOutputTensor: the same fields
        ("raw_output_contents", 6, _BYTES, True, ""),
    ],
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", 1, _BOOL, False, "")],
    "ModelReadyRequest": [("name", 1, _STRING, False, ""), ("version", 2, _STRING, False, "")],
    "ModelReadyResponse": [("ready", 1, _BOOL, False, "")],
}


@cache
def grpc_messages() -> dict[str, Any]:
    """Message classes of the subset of ``grpc_predict_v2.proto`` a client needs (fields it
    does not declare, such as ``parameters``, are skipped on parsing, as protobuf does)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FileDescriptorProto(
        name="bench_inference.proto", package="inference", syntax="proto3"
    )
    for name, fields in _FIELDS.items():
        msg = proto.message_type.add(name=name)
        for fname, number, ftype, repeated, type_name in fields:
            f = msg.field.add(name=fname, number=number, type=ftype)
            f.label = 3 if repeated else 1
            if type_name:
                f.type_name = f".inference.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"inference.{name}"))
        for name in _FIELDS
    }

"""The protocols an endpoint cell speaks: one table, read by scenario validation, the URL
rules and the client alike.

Each protocol is a module holding a ``PROTOCOL`` (``WireProtocol``): how a request body is
encoded, how an answer is decoded, and, for the HTTP transport, the path of an inference and
of the readiness questions. Adding one is a module and a line in ``BUILTIN``; a protocol kept
outside bench (a test, a user's package) calls ``register(PROTOCOL)`` in its module instead,
and a worker imports that module from the cell's message (``CellMessage.plugins``).
docs/extending.md has a worked example.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Features = dict[str, np.ndarray]

BUILTIN: dict[str, str] = {
    "v2-http": "bench.serve.protocols.v2_http",
    "v2-grpc": "bench.serve.protocols.v2_grpc",
    "tf-serving-rest": "bench.serve.protocols.tf_serving_rest",
}


@dataclass(frozen=True)
class WireProtocol:
    name: str
    help: str
    # "http": POST a body to ``infer_path`` over a keep-alive connection (http:// or https://
    # URLs); "grpc": a unary call of ``grpc_method`` on a channel (host:port or grpc:// URLs).
    transport: Literal["http", "grpc"]
    # A request of the given rows (each feature ``[rows, ...]``): (features, model, request id).
    encode: Callable[[Features, str, str], bytes]
    # The answer's predictions, ``[rows, ...]``; ``bench.serve.wire.MalformedResponse`` when
    # the body is not the protocol's answer.
    decode: Callable[[bytes], np.ndarray]
    # http: (the URL's path, the model's name) -> the path to POST to, and the paths to GET
    # for readiness (every one must answer 200; none: the load itself tells).
    infer_path: Callable[[str, str], str] | None = None
    ready_paths: Callable[[str, str], tuple[str, ...]] | None = None
    content_type: str = "application/json"
    # grpc: the method's full name, and what says ready: (channel, model, timeout, metadata).
    grpc_method: str = ""
    grpc_ready: Callable[..., bool] | None = None
    # The module that declares it, imported by a worker that does not know the name yet.
    module: str = ""


_registered: dict[str, WireProtocol] = {}


class UnknownProtocol(ValueError):
    def __init__(self, name: object):
        super().__init__(f"unknown protocol {name!r}; expected one of: {', '.join(names())}")


def register(protocol: WireProtocol) -> WireProtocol:
    if protocol.name in BUILTIN:
        raise ValueError(f"protocol {protocol.name!r} is built in; choose another name")
    if not protocol.module:
        raise ValueError(f"protocol {protocol.name!r}: module must name the module declaring it")
    _registered[protocol.name] = protocol
    return protocol


def unregister(name: str) -> None:
    _registered.pop(name, None)


def names() -> tuple[str, ...]:
    return (*BUILTIN, *(n for n in _registered if n not in BUILTIN))


def get(name: object) -> WireProtocol:
    if isinstance(name, str):
        if name in _registered:
            return _registered[name]
        if name in BUILTIN:
            found = importlib.import_module(BUILTIN[name]).PROTOCOL
            assert isinstance(found, WireProtocol)
            return found
    raise UnknownProtocol(name)


def find(name: object) -> WireProtocol | None:
    try:
        return get(name)
    except UnknownProtocol:
        return None

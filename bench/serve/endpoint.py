"""A client of a running model server: connections, readiness, one request at a time.

``Endpoint`` says where the server is and how to talk to it; ``connect`` gives a ``Client``
whose ``sender()`` is one connection (an HTTP keep-alive connection, or a share of the gRPC
channels) that sends one pre-encoded request and returns its predictions. The load generator
(``bench.serve.remote``) holds one sender per request in flight: that is the connection pool.

Framework-free: the standard library's ``http.client``, numpy, and ``grpcio`` for gRPC.
Errors a request can meet are ``EndpointError``s whose text is the reason recorded on the
cell (``HTTP 503: ...``, ``connection refused``, ``timed out after 10 s``, ``malformed
response: ...``).
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np

from bench.serve import wire
from bench.serve.target import RequestError
from bench.serve.wire import MalformedResponse


class EndpointError(RequestError):
    """One request failed; ``str()`` is the reason, short enough to count by."""


@dataclass(frozen=True)
class Endpoint:
    url: str  # http(s)://host:port for REST; host:port or grpc://host:port for gRPC
    protocol: str  # one of wire.PROTOCOLS
    model_name: str
    max_in_flight: int = 64
    connections: int = 1  # gRPC channels (HTTP: one connection per request in flight)
    timeout_s: float = 10.0
    startup_timeout_s: float = 60.0
    token_env: str = ""  # an environment variable holding a bearer token (Vertex AI)

    def describe(self) -> str:
        return f"{self.protocol} {self.url} model {self.model_name!r}"


class Sender(Protocol):
    """One connection: sends a body, returns the answer's predictions; ``close`` ends it."""

    def __call__(self, body: bytes) -> np.ndarray: ...

    def open(self) -> None: ...

    def close(self) -> None: ...


class _Sender:
    def __init__(
        self,
        send: Callable[[bytes], np.ndarray],
        close: Callable[[], None],
        open_: Callable[[], None] = lambda: None,
    ) -> None:
        self.send, self.close, self.open = send, close, open_

    def __call__(self, body: bytes) -> np.ndarray:
        return self.send(body)


class Client:
    """Encodes requests for the endpoint's protocol and opens senders to it."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self._channels: list[Any] = []
        self._next = 0
        self._lock = threading.Lock()
        token = os.environ.get(endpoint.token_env, "") if endpoint.token_env else ""
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if endpoint.protocol == "v2-grpc":
            import grpc  # lazily: only gRPC endpoints need grpcio

            target = endpoint.url.removeprefix("grpc://")
            self._grpc = grpc
            self._channels = [grpc.insecure_channel(target) for _ in range(endpoint.connections)]
        else:
            parts = urlsplit(endpoint.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise EndpointError(
                    f"endpoint url {endpoint.url!r}: expected http://host:port or https://..."
                )
            self._parts = parts

    # -- bodies ----------------------------------------------------------------------------

    def encode(self, features: dict[str, np.ndarray], request_id: str) -> bytes:
        proto = self.endpoint.protocol
        if proto == "v2-http":
            return wire.v2_json_request(features, request_id)
        if proto == "v2-grpc":
            return wire.grpc_request(features, self.endpoint.model_name, request_id)
        return wire.tf_serving_request(features)

    def _path(self) -> str:
        base = self._parts.path.rstrip("/")
        name = self.endpoint.model_name
        if self.endpoint.protocol == "v2-http":
            return f"{base}/v2/models/{name}/infer"
        # A full ':predict' URL (a Vertex AI endpoint) is used as it is.
        return base if base.endswith(":predict") else f"{base}/v1/models/{name}:predict"

    # -- senders ---------------------------------------------------------------------------

    def sender(self) -> Sender:
        """One connection's worth of sending: not shared between threads."""
        if self.endpoint.protocol == "v2-grpc":
            return self._grpc_sender()
        return self._http_sender()

    def _http_sender(self) -> Sender:
        parts, timeout = self._parts, self.endpoint.timeout_s
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        path, headers = self._path(), self.headers
        decode = (
            wire.v2_json_response
            if self.endpoint.protocol == "v2-http"
            else wire.tf_serving_response
        )
        conn: list[http.client.HTTPConnection | None] = [None]

        def close() -> None:
            if conn[0] is not None:
                conn[0].close()
                conn[0] = None

        def connect() -> None:
            if conn[0] is None:
                conn[0] = cls(parts.hostname, parts.port, timeout=timeout)
                conn[0].connect()
                # Small requests: without it, Nagle's algorithm can hold a segment back
                # for the server's delayed acknowledgement (tens of ms).
                conn[0].sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def open_() -> None:
            try:
                connect()
            except OSError:
                close()  # the first request will try again, and say why it fails

        def send(body: bytes) -> np.ndarray:
            try:
                connect()
                conn[0].request("POST", path, body, headers)
                resp = conn[0].getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                if conn[0] is not None:
                    conn[0].close()
                conn[0] = None  # a fresh connection for the next request
                raise EndpointError(_network_reason(exc, timeout)) from exc
            if resp.status != 200:
                raise EndpointError(f"HTTP {resp.status}: {_first_line(data)}")
            try:
                return decode(data)
            except MalformedResponse as exc:
                raise EndpointError(f"malformed response: {exc}") from exc

        return _Sender(send, close, open_)

    def _grpc_sender(self) -> Sender:
        with self._lock:
            channel = self._channels[self._next % len(self._channels)]
            self._next += 1
        grpc, timeout = self._grpc, self.endpoint.timeout_s
        call = channel.unary_unary(
            wire.GRPC_SERVICE + "ModelInfer",
            request_serializer=lambda b: b,  # bodies are encoded ahead of the load
            response_deserializer=lambda b: b,
        )

        def send(body: bytes) -> np.ndarray:
            try:
                data = call(body, timeout=timeout, metadata=self._metadata())
            except grpc.RpcError as exc:
                code = exc.code().name if hasattr(exc, "code") else "ERROR"
                details = exc.details() if hasattr(exc, "details") else str(exc)
                raise EndpointError(f"gRPC {code}: {_first_line(str(details).encode())}") from exc
            try:
                return wire.grpc_response(data)
            except MalformedResponse as exc:
                raise EndpointError(f"malformed response: {exc}") from exc

        return _Sender(send, lambda: None)  # the channels are the client's, closed with it

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        auth = self.headers.get("Authorization")
        return (("authorization", auth),) if auth else ()

    # -- readiness -------------------------------------------------------------------------

    def wait_ready(self, clock: Callable[[], float] = time.monotonic) -> float:
        """Seconds until the server and the model said ready; EndpointError with the last
        answer after ``startup_timeout_s`` (a server down, or slow to load its model)."""
        start = clock()
        last = "no answer"
        while True:
            try:
                if self._ready():
                    return clock() - start
                last = "answered not ready"
            except EndpointError as exc:
                last = str(exc)
            if clock() - start >= self.endpoint.startup_timeout_s:
                raise EndpointError(
                    f"endpoint {self.endpoint.describe()} not ready after "
                    f"{self.endpoint.startup_timeout_s:g} s (last: {last})"
                )
            time.sleep(0.2)

    def _ready(self) -> bool:
        name = self.endpoint.model_name
        if self.endpoint.protocol == "v2-grpc":
            msgs = wire.grpc_messages()
            for method, req, resp in (
                ("ServerReady", msgs["ServerReadyRequest"](), "ServerReadyResponse"),
                ("ModelReady", msgs["ModelReadyRequest"](name=name), "ModelReadyResponse"),
            ):
                call = self._channels[0].unary_unary(
                    wire.GRPC_SERVICE + method,
                    request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=msgs[resp].FromString,
                )
                try:
                    if not call(req, timeout=2.0, metadata=self._metadata()).ready:
                        return False
                except self._grpc.RpcError as exc:
                    raise EndpointError(f"gRPC {exc.code().name} on {method}") from exc
            return True
        base = self._parts.path.rstrip("/")
        if base.endswith(":predict"):
            return True  # a bare predict URL (Vertex AI) has no health route: the load tells
        paths = (
            (f"{base}/v2/health/ready", f"{base}/v2/models/{name}/ready")
            if self.endpoint.protocol == "v2-http"
            else (f"{base}/v1/models/{name}",)
        )
        cls = (
            http.client.HTTPSConnection
            if self._parts.scheme == "https"
            else http.client.HTTPConnection
        )
        for path in paths:
            conn = cls(self._parts.hostname, self._parts.port, timeout=2.0)
            try:
                conn.request("GET", path, headers=self.headers)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException) as exc:
                raise EndpointError(_network_reason(exc, 2.0)) from exc
            finally:
                conn.close()
            if resp.status != 200:
                return False
        return True

    def close(self) -> None:
        for channel in self._channels:
            channel.close()


def _network_reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | http.client.RemoteDisconnected):
        return "connection closed by the server"
    return f"{type(exc).__name__}: {exc}"[:160]


def _first_line(data: bytes, n: int = 120) -> str:
    text = data.decode("utf-8", "replace").strip().splitlines()
    return (text[0] if text else "(empty body)")[:n]

"""A client of a running model server: connections, readiness, one request at a time.

``Endpoint`` says where the server is and how to talk to it; ``connect`` gives a ``Client``
whose ``sender()`` is one connection (an HTTP keep-alive connection, or a share of the gRPC
channels) that sends one pre-encoded request and returns its predictions. The load generator
(``bench.serve.remote``) holds one sender per request in flight: that is the connection pool.

Framework-free: the standard library's ``http.client``, numpy, and ``grpcio`` for gRPC.
Errors a request can meet are ``EndpointError``s whose text is the reason recorded on the
cell (``HTTP 503: ...``, ``connection refused``, ``timed out after 10 s``, ``malformed
response: ...``).

What a server sends is bounded and judged: ``timeout_s`` ends a whole request however slowly
the answer comes (``bench.serve.bounded_http``; gRPC deadlines are whole-call already), an
answer over ``max_response_mib`` fails unread, and one that is not the protocol's answer with
finite numbers fails its request. A bearer token goes only over TLS or to this machine unless
the endpoint allows otherwise (``bench.serve.url``).
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

import numpy as np

from bench.serve import bounded_http, protocols
from bench.serve.target import RequestError
from bench.serve.url import Target, UrlError, parse, redacted, token_problem
from bench.serve.wire import MalformedResponse

READY_CHECK_S = 2.0  # one readiness question, at most (within startup_timeout_s)
READY_BODY_BYTES = 1 << 16  # a health route's answer is a few bytes
MAX_TOKEN_CHARS = 16_384  # access tokens are a few KB (a Google one is ~2 KB)
MIB = 1 << 20


class EndpointError(RequestError):
    """One request failed; ``str()`` is the reason, short enough to count by, with anything a
    terminal would act on (a server's control characters) escaped."""

    def __init__(self, reason: str) -> None:
        super().__init__(printable(reason))


def printable(text: str, n: int = 300) -> str:
    """``text`` with control and other unprintable characters escaped, cut to ``n``."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= n else text[: n - 3] + "..."


@dataclass(frozen=True)
class Endpoint:
    url: str  # http(s)://host:port for REST; host:port or grpc://host:port for gRPC
    protocol: str  # a name in bench.serve.protocols
    model_name: str
    max_in_flight: int = 64
    connections: int = 1  # gRPC channels (HTTP: one connection per request in flight)
    timeout_s: float = 10.0
    startup_timeout_s: float = 60.0
    max_response_mib: int = 4  # an answer's body over this fails its request unread
    token_env: str = ""  # an environment variable holding a bearer token (Vertex AI)
    allow_insecure_token: bool = False  # the token may go in clear text to another host

    @property
    def max_response_bytes(self) -> int:
        return self.max_response_mib * MIB

    def describe(self) -> str:
        return f"{self.protocol} {redacted(self.url)} model {self.model_name!r}"

    def to_record(self) -> dict[str, Any]:
        """The settings as a record keeps them: never a URL's credentials."""
        return {**vars(self), "url": redacted(self.url)}


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
        try:
            self.protocol = protocols.get(endpoint.protocol)
        except protocols.UnknownProtocol as exc:
            raise EndpointError(f"endpoint protocol: {exc}") from None
        self._channels: list[Any] = []
        self._next = 0
        self._lock = threading.Lock()
        # The scenario's validation checked the same; a message that skipped it is held to it.
        try:
            self.target: Target = parse(endpoint.url, endpoint.protocol)
        except UrlError as exc:
            raise EndpointError(f"endpoint url: {exc}") from None
        token = self._token()
        self.headers = {"Content-Type": self.protocol.content_type}
        if token:
            if why := token_problem(self.target, endpoint.allow_insecure_token):
                raise EndpointError(f"token_env {endpoint.token_env}: {why}")
            self.headers["Authorization"] = f"Bearer {token}"
        if self.protocol.transport == "grpc":
            try:
                import grpc  # lazily: only gRPC endpoints need grpcio
            except ImportError:
                raise EndpointError(
                    f"protocol {endpoint.protocol} needs grpcio: pip install 'bench[serving]'"
                ) from None
            self._grpc = grpc
            # An answer over the limit is refused by gRPC itself (RESOURCE_EXHAUSTED).
            options = [("grpc.max_receive_message_length", endpoint.max_response_bytes)]
            self._channels = [
                grpc.insecure_channel(self.target.grpc_target, options=options)
                for _ in range(endpoint.connections)
            ]

    def _token(self) -> str:
        return bearer_token(self.endpoint.token_env)

    # -- bodies ----------------------------------------------------------------------------

    def encode(self, features: dict[str, np.ndarray], request_id: str) -> bytes:
        return self.protocol.encode(features, self.endpoint.model_name, request_id)

    def _path(self) -> str:
        assert self.protocol.infer_path is not None, "an http protocol names its path"
        return self.protocol.infer_path(self.target.path.rstrip("/"), self.endpoint.model_name)

    # -- senders ---------------------------------------------------------------------------

    def sender(self) -> Sender:
        """One connection's worth of sending: not shared between threads."""
        if self.protocol.transport == "grpc":
            return self._grpc_sender()
        return self._http_sender()

    def _http_sender(self) -> Sender:
        target, timeout = self.target, self.endpoint.timeout_s
        path, headers, limit = self._path(), self.headers, self.endpoint.max_response_bytes
        decode = self.protocol.decode
        conn: list[http.client.HTTPConnection | None] = [None]

        def close() -> None:
            if conn[0] is not None:
                conn[0].close()
                conn[0] = None

        def connect() -> http.client.HTTPConnection:
            if conn[0] is None:
                conn[0] = bounded_http.connection(target.scheme, target.host, target.port)
                conn[0].connect()
                # Small requests: without it, Nagle's algorithm can hold a segment back
                # for the server's delayed acknowledgement (tens of ms).
                conn[0].sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return conn[0]

        def open_() -> None:
            try:
                with bounded_http.deadline(timeout):
                    connect()
            except Exception:
                close()  # the first request will try again, and say why it fails

        def send(body: bytes) -> np.ndarray:
            try:
                with bounded_http.deadline(timeout):  # connect, send, the whole answer
                    c = connect()
                    c.request("POST", path, body, headers)
                    resp = c.getresponse()
                    data = bounded_http.read_body(resp, limit)
                if not resp.isclosed():
                    close()  # an answer not read to its end: the connection is unusable
            except (OSError, http.client.HTTPException, bounded_http.TooLarge) as exc:
                close()  # a fresh connection for the next request
                raise EndpointError(network_reason(exc, timeout)) from exc
            if resp.status != 200:
                raise EndpointError(f"HTTP {resp.status}: {first_line(data)}")
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
        decode = self.protocol.decode
        call = channel.unary_unary(
            self.protocol.grpc_method,
            request_serializer=lambda b: b,  # bodies are encoded ahead of the load
            response_deserializer=lambda b: b,
        )

        def send(body: bytes) -> np.ndarray:
            try:  # a gRPC timeout is the whole call's deadline
                data = call(body, timeout=timeout, metadata=self._metadata())
            except grpc.RpcError as exc:
                raise EndpointError(_grpc_reason(exc)) from exc
            try:
                return decode(data)
            except MalformedResponse as exc:
                raise EndpointError(f"malformed response: {exc}") from exc

        return _Sender(send, lambda: None)  # the channels are the client's, closed with it

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        auth = self.headers.get("Authorization")
        return (("authorization", auth),) if auth else ()

    # -- readiness -------------------------------------------------------------------------

    def wait_ready(self) -> float:
        """Seconds until the server and the model said ready; EndpointError with the last
        answer once ``startup_timeout_s`` has passed (a server down, or slow to load its
        model). Every check ends within what is left of it, so the whole wait does."""
        start = time.monotonic()
        end = start + self.endpoint.startup_timeout_s
        last = "no answer"
        while (left := end - time.monotonic()) > 0:
            try:
                if self._ready(min(READY_CHECK_S, left)):
                    return time.monotonic() - start
                last = "answered not ready"
            except EndpointError as exc:
                last = str(exc)
            time.sleep(max(0.0, min(0.2, end - time.monotonic())))
        raise EndpointError(
            f"endpoint {self.endpoint.describe()} not ready after "
            f"{self.endpoint.startup_timeout_s:g} s (last: {last})"
        )

    def _ready(self, within: float) -> bool:
        name, proto = self.endpoint.model_name, self.protocol
        if proto.transport == "grpc":
            if proto.grpc_ready is None:
                return True
            try:
                return proto.grpc_ready(self._channels[0], name, within, self._metadata())
            except self._grpc.RpcError as exc:
                raise EndpointError(f"{_grpc_reason(exc)} on the readiness check") from exc
        assert proto.ready_paths is not None, "an http protocol names its readiness paths"
        paths = proto.ready_paths(self.target.path.rstrip("/"), name)
        with bounded_http.deadline(within):  # both questions together
            for path in paths:
                conn = bounded_http.connection(
                    self.target.scheme, self.target.host, self.target.port
                )
                try:
                    conn.request("GET", path, headers=self.headers)
                    resp = conn.getresponse()
                    bounded_http.read_body(resp, READY_BODY_BYTES)
                except (OSError, http.client.HTTPException, bounded_http.TooLarge) as exc:
                    raise EndpointError(network_reason(exc, within)) from exc
                finally:
                    conn.close()
                if resp.status != 200:
                    return False
        return True

    def close(self) -> None:
        for channel in self._channels:
            channel.close()


def bearer_token(name: str) -> str:
    """The bearer token in the environment variable ``name`` ('' where no name is given): set,
    and one header's worth of plain text (a newline in it would start a header of its own);
    never repeated in a message. EndpointError otherwise."""
    if not name:
        return ""
    token = os.environ.get(name, "")
    if not token:
        raise EndpointError(
            f"token_env {name}: the environment variable is not set or empty; expected "
            f"the bearer token in it (export {name}=...) where bench run runs"
        )
    if len(token) > MAX_TOKEN_CHARS or not all(33 <= ord(c) < 127 for c in token):
        raise EndpointError(
            f"token_env {name}: the token is not one header's worth of text; expected at "
            f"most {MAX_TOKEN_CHARS:,} printable ASCII characters without spaces"
        )
    return token


def _grpc_reason(exc: Any) -> str:
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    return f"gRPC {getattr(code, 'name', 'ERROR')}: {first_line(str(details).encode())}"


def network_reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, bounded_http.TooLarge):
        return f"response too large: {exc}"
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | http.client.RemoteDisconnected):
        return "connection closed by the server"
    return f"{type(exc).__name__}: {exc}"[:160]


def first_line(data: bytes, n: int = 120) -> str:
    text = data.decode("utf-8", "replace").strip().splitlines()
    return (text[0] if text else "(empty body)")[:n]

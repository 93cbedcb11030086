"""HTTP requests bounded as a whole: one deadline for connecting, sending and reading the
answer to its end, and a limit on the answer's size.

``http.client``'s own timeout applies to each socket operation, so a server that sends a byte
every few seconds keeps a request alive forever. Here every operation of a connection's socket
(TLS handshake and records included) first sets its timeout to what is left of the deadline of
the request this thread is making, so the whole request ends by it. A deadline belongs to the
calling thread: a connection is used by one thread at a time (one sender each).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_request = threading.local()  # .at: this thread's deadline (time.monotonic), or absent


class TooLarge(Exception):
    """An answer over the size limit (``str()`` says by how much, without its content)."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every socket operation of a bounded connection within it ends ``seconds`` from now."""
    _request.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _request.at = None


def _arm(sock: socket.socket) -> None:
    at = getattr(_request, "at", None)
    if at is None:
        return
    left = at - time.monotonic()
    if left <= 0:
        raise TimeoutError("the request's deadline passed")
    sock.settimeout(left)


class _Bounded:
    """Operations that block, each armed with what is left of the deadline first."""

    def recv(self, *args: Any) -> Any:
        _arm(self)  # type: ignore[arg-type]
        return super().recv(*args)  # type: ignore[misc]

    def recv_into(self, *args: Any) -> Any:
        _arm(self)  # type: ignore[arg-type]
        return super().recv_into(*args)  # type: ignore[misc]

    def send(self, *args: Any) -> Any:
        _arm(self)  # type: ignore[arg-type]
        return super().send(*args)  # type: ignore[misc]

    def sendall(self, *args: Any) -> Any:
        _arm(self)  # type: ignore[arg-type]
        return super().sendall(*args)  # type: ignore[misc]


class _Socket(_Bounded, socket.socket):
    pass


class _TlsSocket(_Bounded, ssl.SSLSocket):
    def do_handshake(self, *args: Any) -> Any:
        _arm(self)
        return super().do_handshake(*args)


def _open(address: tuple[str, int], timeout: Any, source: Any = None) -> socket.socket:
    # Connecting is bounded by what is left, too (per address tried: the system resolves the
    # name, and a name lookup has no timeout of its own).
    at = getattr(_request, "at", None)
    if at is not None:
        timeout = max(at - time.monotonic(), 1e-3)
    plain = socket.create_connection(address, timeout, source)
    return _Socket(fileno=plain.detach())


def connection(scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
    """An unopened connection whose socket operations keep this thread's deadline."""
    conn: http.client.HTTPConnection
    if scheme == "https":
        context = ssl.create_default_context()  # certificates and host names checked
        context.sslsocket_class = _TlsSocket
        conn = http.client.HTTPSConnection(host, port, context=context)
    else:
        conn = http.client.HTTPConnection(host, port)
    conn._create_connection = _open  # type: ignore[attr-defined]
    return conn


def read_body(resp: http.client.HTTPResponse, limit: int) -> bytes:
    """The whole body, or TooLarge before reading more than ``limit`` bytes of it (a stated
    Content-Length over the limit is refused unread)."""
    if resp.length is not None and resp.length > limit:
        raise TooLarge(f"answer of {resp.length:,} bytes, over the limit of {limit:,}")
    data = resp.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"answer over the limit of {limit:,} bytes")
    return data

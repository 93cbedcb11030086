"""Where ``bench serve`` listens, settled before the model is built.

A server started on a shared host listens on the loopback address unless told otherwise, and a
port that is taken is found in milliseconds, not after minutes of building and compiling. So the
REST socket is bound here, first, and held (bound, not yet listening: a client is refused until
the server is ready, never left waiting on a half-started one); the server later listens on that
very socket, so no other process can take the port in between. The gRPC server binds its own
socket (grpcio takes no ready-made one): its port is checked here the same way and bound again
when the server starts, and a port lost in between is the same one-line error.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
MAX_PORT = 65535


class ListenError(ValueError):
    """A host or port the server cannot listen on; ``str()`` is one line naming the flag."""


def parse_host(text: str) -> str:
    """``--host``: an IP address of this host (``127.0.0.1``, ``0.0.0.0`` for every IPv4
    address, ``::1``, ``::``) or ``localhost``. A name other than localhost is refused rather
    than resolved: which address it resolves to decides who can reach the server."""
    if text == "localhost":
        return LOOPBACK
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise ListenError(
            f"--host {shown!r}: expected an IP address of this host (127.0.0.1, the default, "
            "serves this machine only; 0.0.0.0 every IPv4 address) or localhost"
        ) from None


def address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def reach(host: str) -> str:
    """Who can reach a server listening on ``host``, for its banner."""
    ip = ipaddress.ip_address(host)
    if ip.is_loopback:
        return "this machine only (--host to serve others)"
    if ip.is_unspecified:
        return "every network interface of this host: anyone who can reach it"
    return f"the interface {host}"


@dataclass
class Listening:
    host: str
    http: socket.socket  # bound, not listening: the REST server listens on it
    grpc_port: int

    @property
    def http_port(self) -> int:
        return int(self.http.getsockname()[1])

    def close(self) -> None:
        self.http.close()


def bind(host: str, http_port: int, grpc_port: int) -> Listening:
    """Bind the REST port and check the gRPC port on ``host``; ListenError if either is taken,
    not an address of this host, or privileged."""
    if http_port == grpc_port:
        raise ListenError(f"--port and --grpc-port are both {http_port}: expected two ports")
    http = _bound(host, http_port, "--port")
    try:
        _bound(host, grpc_port, "--grpc-port").close()
    except ListenError:
        http.close()
        raise
    return Listening(host, http, grpc_port)


def bind_http(host: str, port: int) -> socket.socket:
    """Bind ``--port`` alone (a server with no gRPC port: ``bench serve decoder``)."""
    return _bound(host, port, "--port")


def _bound(host: str, port: int, flag: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The protocol named, not left 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # connections of a socket that says it is TCP; without it an answer written in two parts
    # waits for the client's delayed ACK, 40 ms (measured: a lone request took 44 ms on
    # asyncio's loop, 1.5 ms on uvloop's, which sets it anyway).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # As every server sets it: a port whose last connections linger in TIME_WAIT is free, while
    # one another process listens on is still refused. SO_REUSEPORT stays off, so no second
    # server can share (and split the traffic of) a port this one holds.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ListenError(why_not(host, port, flag, exc)) from None
    return sock


def why_not(host: str, port: int, flag: str, exc: OSError) -> str:
    where = address(host, port)
    if exc.errno == errno.EADDRINUSE:
        return f"{flag} {port}: {where} is in use by another process; stop it or choose a port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"--host {host}: not an address of this host"
    if exc.errno == errno.EACCES:
        return f"{flag} {port}: ports below 1024 need privileges; choose a port from 1024"
    return f"{flag} {port}: cannot listen on {where}: {exc.strerror or exc}"

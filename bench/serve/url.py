"""Endpoint URLs, parsed and judged once: where a client connects, and whether a token may go.

Scenario validation reports every problem here with the file and the field, before anything
runs; the client parses the same way, so a worker message that skipped validation still cannot
connect somewhere odd or send a token in clear text. No message ever repeats what sits between
``//`` and ``@`` (a password in a URL is the one secret a scenario file could leak).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from bench.serve import protocols

MAX_URL_CHARS = 2048  # what common servers and proxies accept on a request line
# A DNS name, or the names compose and Kubernetes give services (underscores included).
_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?")
_GRPC_SCHEME = "grpc://"
TOKEN_ADVICE = (
    "put the token in an environment variable (export MY_TOKEN=...) and name it with "
    "token_env: MY_TOKEN"
)


class UrlError(ValueError):
    """``str()`` says what is wrong and what was expected, without the URL's credentials."""


@dataclass(frozen=True)
class Target:
    """Where a client connects: ``secure`` when the transport is TLS (https)."""

    scheme: str  # http, https or grpc
    host: str  # without the brackets of an IPv6 literal
    port: int | None  # None: the scheme's default (REST only)
    path: str  # REST: the base path ('' or '/prefix' or a full ...:predict path)

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def grpc_target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1), judged by name only: a name is
    never resolved here, so what it resolves to later cannot change the verdict."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse(url: object, protocol: str) -> Target:
    """The URL of an endpoint of ``protocol`` (a gRPC one, such as ``v2-grpc``: ``host:port`` or
    ``grpc://host:port``; otherwise ``http(s)://host[:port][/path]``); UrlError otherwise."""
    if not isinstance(url, str) or not url:
        raise UrlError("expected a non-empty URL")
    if len(url) > MAX_URL_CHARS:
        raise UrlError(f"{len(url):,} characters; expected at most {MAX_URL_CHARS:,}")
    for i, char in enumerate(url):
        if ord(char) < 32 or ord(char) == 127 or 0x80 <= ord(char) < 0xA0:
            raise UrlError(f"control character {char!r} at position {i}; expected none")
        if char.isspace():
            raise UrlError(f"whitespace {char!r} at position {i}; expected none")
        if ord(char) > 127:
            raise UrlError(
                f"non-ASCII character {char!r} at position {i}; expected ASCII (punycode for "
                "a host name, %-escapes in a path)"
            )
    found = protocols.find(protocol)
    grpc = found is not None and found.transport == "grpc"
    if grpc:
        bare = "://" not in url
        if not (bare or url.startswith(_GRPC_SCHEME)):
            raise UrlError(
                f"{_scheme(url)}; expected host:port or grpc://host:port for protocol "
                f"{protocol} (plaintext gRPC)"
            )
        parts = _split(url if not bare else _GRPC_SCHEME + url)
    else:
        parts = _split(url)
        if parts.scheme not in ("http", "https") or not url.lower().startswith(
            parts.scheme + "://"
        ):
            raise UrlError(
                f"{_scheme(url)}; expected http://host:port or https://host[:port]/... "
                f"for protocol {protocol}"
            )
    if "@" in parts.netloc:
        raise UrlError(f"a user name or password before '@'; expected none: {TOKEN_ADVICE}")
    shown = _show(url)
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise UrlError(
            f"{shown}: a query (?...) or fragment (#...); expected none (bench builds each "
            "request's path itself, and a key in a query string would be written to records)"
        )
    if grpc and parts.path:
        raise UrlError(f"{shown}: a path ({parts.path!r}); expected host:port for {protocol}")
    host = _host(parts.netloc, shown)
    port = _port(parts.netloc, host, shown)
    if grpc and port is None:
        raise UrlError(f"{shown}: no port; expected host:port for {protocol} (KServe's is 8081)")
    return Target(parts.scheme.lower() or "grpc", host, port, parts.path)


def redacted(url: str) -> str:
    """``url`` without what sits before an ``@`` in its authority (``http://***@host``): what a
    record or a message may say of a URL that validation did not see."""
    scheme, sep, rest = url.partition("://") if "://" in url else ("", "", url)
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    return f"{scheme}{sep}***@{authority.rpartition('@')[2]}{slash}{path}"


def token_problem(target: Target, allow_insecure: bool) -> str:
    """Why a bearer token must not go to ``target`` ('' where it may): only over TLS or to
    this machine, unless the endpoint says ``allow_insecure_token: true``."""
    if target.secure or target.loopback or allow_insecure:
        return ""
    grpc = target.scheme == "grpc"
    how = "gRPC, which bench speaks in plaintext" if grpc else "http://"
    return (
        f"a bearer token would travel in clear text ({how}) to {target.host}, which is not "
        f"this machine; expected {'' if grpc else 'an https:// URL, '}a loopback host "
        "(localhost, 127.0.0.1, ::1: a port-forward), or allow_insecure_token: true on a "
        "network you trust"
    )


def _split(url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError:  # brackets that hold no IPv6 address, or are not closed
        authority = url.partition("://")[2].partition("/")[0]
        if "@" in authority:
            why = f"a user name or password before '@'; expected none: {TOKEN_ADVICE}"
            raise UrlError(why) from None
        literal = authority.partition("[")[2].partition("]")[0]
        raise UrlError(
            f"{_show(url)}: host [{literal}] is not an IPv6 address; expected one"
        ) from None


def _scheme(url: str) -> str:
    """The scheme as found (it precedes any credentials, so it may be shown)."""
    return f"scheme {url.split('://', 1)[0][:20]!r}" if "://" in url else "no scheme"


def _show(url: str) -> str:
    return repr(url if len(url) <= 80 else url[:77] + "...")


def _host(netloc: str, shown: str) -> str:
    if netloc.startswith("["):
        literal, _, _ = netloc[1:].partition("]")
        try:
            if ipaddress.ip_address(literal).version == 6:
                return literal
        except ValueError:
            pass
        raise UrlError(f"{shown}: host [{literal}] is not an IPv6 address; expected one")
    host = netloc.rpartition(":")[0] if ":" in netloc else netloc
    if not host:
        raise UrlError(f"{shown}: no host; expected a host name or an address")
    if not _HOST.fullmatch(host) or ".." in host:
        raise UrlError(
            f"{shown}: host {host!r} is not a host name; expected letters, digits, '-', '_' "
            "and '.', or an address ([...] for IPv6)"
        )
    return host


def _port(netloc: str, host: str, shown: str) -> int | None:
    rest = netloc.removeprefix(f"[{host}]") if netloc.startswith("[") else netloc[len(host) :]
    if not rest:
        return None
    if not rest.startswith(":"):
        raise UrlError(f"{shown}: {rest!r} after the host; expected :PORT, from 1 to 65535")
    if not rest[1:].isdigit():
        raise UrlError(f"{shown}: port {rest[1:]!r}; expected a number from 1 to 65535")
    if not 1 <= int(rest[1:]) <= 65535:
        raise UrlError(f"{shown}: port {int(rest[1:])}; expected a number from 1 to 65535")
    return int(rest[1:])

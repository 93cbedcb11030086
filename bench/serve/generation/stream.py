"""A client of an OpenAI-compatible generation server: where it is, and one streamed request read
chunk by chunk with the time each chunk reached this host.

``GenEndpoint`` says where the server is and how to talk to it; ``StreamClient`` checks it (the
URL rules and the token rules of ``bench.serve.url``, as for every endpoint) and opens
``StreamSender``s, each one keep-alive connection used by one thread, whose ``stream`` sends a
request and reads its answer to ``[DONE]``.

Every bound of the serve endpoints holds here too: ``timeout_s`` ends the whole request
(connecting, sending, every read of the stream) however slowly or endlessly the server sends
(``bench.serve.bounded_http``); one event over ``max_event_kib`` and a stream over
``max_response_mib`` fail their request without holding more than that. Whatever goes wrong
fails that request only, with the reason (``Streamed.error``): never an exception out of
``stream``. A bearer token goes only over TLS or to this machine unless the endpoint allows
otherwise, and no reason ever repeats it, even where a server echoes it back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import math
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.serve import bounded_http
from bench.serve.endpoint import (
    MIB,
    READY_BODY_BYTES,
    READY_CHECK_S,
    EndpointError,
    bearer_token,
    first_line,
    network_reason,
    printable,
)
from bench.serve.generation import openai
from bench.serve.generation.sse import DONE, SseError, SseParser
from bench.serve.url import Target, UrlError, parse, redacted, token_problem

READ_BYTES = 1 << 16  # one read of the stream, at most
ERROR_BODY_BYTES = 1 << 16  # what is read of an answer that is no stream, for its reason
DRAIN_S = 0.5  # after [DONE], the wait for the stream's own end (else a fresh connection)
MAX_MODEL_CHARS = 256  # a served model's name ("meta-llama/Llama-3.1-8B-Instruct") is a JSON field
SCRUBBED = "***"
MAX_IN_FLIGHT = 1024  # sender threads, as for serve endpoints


@dataclass(frozen=True)
class GenEndpoint:
    """An OpenAI-compatible server as a scenario's ``endpoints:`` entry declares it."""

    url: str  # http(s)://host:port[/prefix]; a full .../completions URL is used as it is
    protocol: str  # openai-completions | openai-chat
    model_name: str  # the request's "model"
    timeout_s: float = 300.0  # one whole request: connect, send, the stream to [DONE]
    startup_timeout_s: float = 60.0
    max_event_kib: int = 1024  # one server-sent event (a chunk is ~200 bytes)
    max_response_mib: int = 64  # one whole stream
    hold_length: tuple[str, ...] = ()  # of openai.HOLD_LENGTH: fields that stop early ends
    temperature: float = 0.0  # 0: greedy
    max_in_flight: int = 64  # sender slots: requests outstanding at once (the load's default)
    token_ids: bool = False  # ask for each chunk's ids (vLLM, SGLang: return_token_ids)
    token_env: str = ""  # an environment variable holding a bearer token
    allow_insecure_token: bool = False

    def __post_init__(self) -> None:
        # A scenario's YAML gives a list; the endpoint is frozen, and hashable, with a tuple.
        if isinstance(self.hold_length, list):
            object.__setattr__(self, "hold_length", tuple(self.hold_length))

    @classmethod
    def of(cls, fields: Mapping[str, Any], temperature: float) -> GenEndpoint:
        """From a scenario's ``endpoints:`` entry as a cell message carries it: a field None
        or absent takes this client's default, ``temperature`` (the generate block's) where
        the entry states none; the serve endpoints' own fields (``connections``) are left."""
        known = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in fields.items() if v is not None and k in known}
        given.setdefault("temperature", temperature)
        return cls(**given)

    def describe(self) -> str:
        return f"{self.protocol} {redacted(self.url)} model {self.model_name!r}"

    def to_record(self) -> dict[str, Any]:
        """The settings as a record keeps them: never a URL's credentials, never the token."""
        return {**vars(self), "url": redacted(self.url), "hold_length": list(self.hold_length)}


def problems(endpoint: GenEndpoint) -> list[str]:
    """Each field out of bounds, as ``field: what is wrong; expected ...`` (scenario
    validation reports them with the file and line; the client refuses the same)."""
    found = []
    if why := openai.check_protocol(endpoint.protocol):
        found.append(f"protocol: {why}")
    else:
        try:
            parse(endpoint.url, endpoint.protocol)
        except UrlError as exc:
            found.append(f"url: {exc}")
    name = endpoint.model_name
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_MODEL_CHARS or not name.isprintable():
        found.append(f"model_name: expected 1 to {MAX_MODEL_CHARS} printable characters")
    for key, low, high in (("timeout_s", 0, 86_400), ("startup_timeout_s", 0, 3_600)):
        value = getattr(endpoint, key)
        if not _number(value) or not low < value <= high:
            found.append(f"{key}: {value!r}; expected a number over {low}, at most {high:,}")
    for key, high in (("max_event_kib", 65_536), ("max_response_mib", 4_096)):
        value = getattr(endpoint, key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            found.append(f"{key}: {value!r}; expected a whole number from 1 to {high:,}")
    slots = endpoint.max_in_flight
    if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= MAX_IN_FLIGHT:
        found.append(
            f"max_in_flight: {slots!r}; expected a whole number from 1 to {MAX_IN_FLIGHT:,}"
        )
    unknown = [f for f in endpoint.hold_length if f not in openai.HOLD_LENGTH]
    if unknown:
        found.append(
            f"hold_length: {unknown[0]!r}; expected any of {', '.join(openai.HOLD_LENGTH)}"
        )
    for key in ("token_ids", "allow_insecure_token"):
        if not isinstance(getattr(endpoint, key), bool):
            found.append(f"{key}: {getattr(endpoint, key)!r}; expected true or false")
    if not _number(endpoint.temperature) or not 0 <= endpoint.temperature <= 2:
        found.append(f"temperature: {endpoint.temperature!r}; expected a number from 0 to 2")
    return found


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class Streamed:
    """One request's answer as read: times are the caller's clock (``now``)."""

    chunk_times: list[float] = field(default_factory=list)  # chunks carrying output text only
    chunk_tokens: list[int] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)  # what carried text: content, reasoning_content
    token_ids: list[int] = field(default_factory=list)  # where the server returns them
    held_ids: int = 0  # ids received in chunks without text, not yet counted
    prompt_tokens: int | None = None  # the server's usage
    completion_tokens: int | None = None
    finish_reason: str | None = None
    error: str = ""


class StreamClient:
    """Checks an endpoint once and opens its senders; ``EndpointError`` for a bad endpoint."""

    def __init__(self, endpoint: GenEndpoint):
        self.endpoint = endpoint
        if found := problems(endpoint):
            raise EndpointError(f"endpoint {endpoint.describe()}: {found[0]}")
        self.target: Target = parse(endpoint.url, endpoint.protocol)
        self.path = openai.path(endpoint.protocol, self.target.path)
        self._secret = bearer_token(endpoint.token_env)
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._secret:
            if why := token_problem(self.target, endpoint.allow_insecure_token):
                raise EndpointError(f"token_env {endpoint.token_env}: {why}")
            self.headers["Authorization"] = f"Bearer {self._secret}"

    def body(self, prompt: str | list[int], max_tokens: int, seed: int | None = None) -> bytes:
        e = self.endpoint
        return openai.request_body(
            e.protocol, e.model_name, prompt, max_tokens, e.hold_length, e.temperature, seed,
            e.token_ids,
        )  # fmt: skip

    def reason(self, text: str) -> str:
        """A reason fit to record: the token never in it (a server may echo the request's
        headers back), control characters escaped, cut to 300 characters."""
        if self._secret:
            # As sent, and as a JSON string would quote it back (a quote or backslash in it).
            for form in (self._secret, json.dumps(self._secret)[1:-1]):
                text = text.replace(form, SCRUBBED)
        return printable(text)

    def sender(self) -> StreamSender:
        return StreamSender(self)

    # -- readiness -------------------------------------------------------------------------

    def ready_path(self) -> str | None:
        """``GET .../v1/models`` (vLLM, SGLang, TGI, KServe's Hugging Face runtime); None for a
        full ``.../completions`` URL (Vertex AI), which has no such route: the load tells."""
        base = self.target.path.rstrip("/")
        if base.endswith("/completions"):
            return None
        return f"{base}/models" if base.endswith("/v1") else f"{base}/v1/models"

    def wait_ready(self, clock: Callable[[], float] = time.monotonic) -> float:
        """Seconds until the server answered its model list with 200; EndpointError with the
        last answer once ``startup_timeout_s`` has passed."""
        where = self.ready_path()
        start = clock()
        if where is None:
            return 0.0
        end = start + self.endpoint.startup_timeout_s
        last = "no answer"
        while (left := end - clock()) > 0:
            last = self._ready(where, min(READY_CHECK_S, left))
            if not last:
                return clock() - start
            time.sleep(max(0.0, min(0.2, end - clock())))
        raise EndpointError(
            self.reason(
                f"endpoint {self.endpoint.describe()} not ready after "
                f"{self.endpoint.startup_timeout_s:g} s (last: {last})"
            )
        )

    def model_card(self) -> dict[str, Any] | None:
        """The server's entry for ``model_name`` in its model list (``GET .../v1/models``: the
        OpenAI shape, ``{"data": [{"id": ..., "owned_by": ...}]}``), or None where it has no
        list, or none that parses, or the name is not in it. bench serve decoder's says
        ``owned_by: bench`` and what it serves (``bench``: model, model_args, seed ...)."""
        where = self.ready_path()
        if where is None:
            return None
        t = self.target
        conn = bounded_http.connection(t.scheme, t.host, t.port)
        try:
            with bounded_http.deadline(READY_CHECK_S):
                conn.request("GET", where, headers=self.headers)
                resp = conn.getresponse()
                data = bounded_http.read_body(resp, READY_BODY_BYTES)
            listed = json.loads(data).get("data") if resp.status == 200 else None
        except (OSError, http.client.HTTPException, bounded_http.TooLarge, ValueError):
            return None
        except AttributeError:  # a JSON answer that is no object
            return None
        finally:
            conn.close()
        for entry in listed if isinstance(listed, list) else ():
            if isinstance(entry, dict) and entry.get("id") == self.endpoint.model_name:
                return entry
        return None

    def _ready(self, where: str, within: float) -> str:
        """'' when ready, else why not."""
        t = self.target
        conn = bounded_http.connection(t.scheme, t.host, t.port)
        try:
            with bounded_http.deadline(within):
                conn.request("GET", where, headers=self.headers)
                resp = conn.getresponse()
                data = bounded_http.read_body(resp, READY_BODY_BYTES)
        except (OSError, http.client.HTTPException, bounded_http.TooLarge) as exc:
            return network_reason(exc, within)
        finally:
            conn.close()
        return "" if resp.status == 200 else f"HTTP {resp.status}: {first_line(data)}"


class _Failed(Exception):
    """This request failed; ``str()`` is the reason."""


class StreamSender:
    """One keep-alive connection, used by one thread; ``stream`` never raises."""

    def __init__(self, client: StreamClient):
        self.client = client
        self._conn: http.client.HTTPConnection | None = None

    def open(self) -> None:
        """Connects ahead of the load (a warm pool); a failure is left to the first request."""
        try:
            with bounded_http.deadline(self.client.endpoint.timeout_s):
                self._connect()
        except Exception:
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def abort(self) -> None:
        """From another thread: ends the stream this sender is reading (its next read fails at
        once, and its request with it)."""
        conn = self._conn
        sock = getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):  # closed already
                sock.shutdown(socket.SHUT_RDWR)

    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is None:
            t = self.client.target
            self._conn = bounded_http.connection(t.scheme, t.host, t.port)
            self._conn.connect()
            # Small writes both ways: Nagle's algorithm would hold one back for an ACK.
            self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._conn

    def stream(self, body: bytes, now: Callable[[], float]) -> Streamed:
        """Sends ``body`` and reads its stream to ``[DONE]``: each chunk carrying output text
        timed by ``now()`` as soon as the read that completed it returned."""
        out = Streamed()
        endpoint = self.client.endpoint
        resp: http.client.HTTPResponse | None = None
        try:
            with bounded_http.deadline(endpoint.timeout_s):  # the whole request, stream included
                resp = self._send(body)
                _check_answer(resp)
                finished = _read_stream(resp, out, now, endpoint)
        except _Failed as exc:
            out.error = self.client.reason(str(exc))
        except SseError as exc:
            out.error = self.client.reason(f"stream refused: {exc}")
        except openai.ChunkError as exc:
            out.error = self.client.reason(f"malformed stream: {exc}")
        except (OSError, http.client.HTTPException, bounded_http.TooLarge) as exc:
            out.error = self.client.reason(_stream_reason(exc, endpoint.timeout_s, out))
        except Exception as exc:  # what no check foresaw is still this request's, not the load's
            out.error = self.client.reason(f"client error: {type(exc).__name__}: {exc}"[:200])
        if out.error:
            self.close()  # whatever is left unread makes the connection unusable
            return out
        assert resp is not None
        if finished and not resp.isclosed():
            self._drain(resp)
        if not resp.isclosed() or resp.will_close:
            self.close()  # the next request opens a fresh connection (TCP_NODELAY set)
        return out

    def _send(self, body: bytes) -> http.client.HTTPResponse:
        """Sends ``body`` and reads the answer's status line. A kept-alive connection that the
        server closed while it idled (uvicorn, which vLLM and SGLang run on, closes one after 5 s)
        fails before any answer: that request is sent once more on a fresh connection, as
        HTTP clients with a pool do (the server never read it). A fresh connection that fails
        is the request's failure."""
        for attempt in (0, 1):
            kept = self._conn is not None
            conn = self._connect()
            try:
                conn.request("POST", self.client.path, body, self.client.headers)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not kept or attempt:
                    raise
                self.close()
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _drain(self, resp: http.client.HTTPResponse) -> None:
        """Reads what follows [DONE] (the stream's end) so the connection can carry the next
        request; a server that sends on is left: the next request opens a fresh one."""
        try:
            with bounded_http.deadline(DRAIN_S):
                left = READ_BYTES
                while left > 0 and not resp.isclosed():
                    piece = resp.read1(left)
                    if not piece:
                        break
                    left -= len(piece)
        except (OSError, http.client.HTTPException):
            pass


def _check_answer(resp: http.client.HTTPResponse) -> None:
    """Status 200 and an event stream, or _Failed with the server's first line."""
    ctype = resp.getheader("Content-Type") or ""
    if resp.status != 200:
        raise _Failed(f"HTTP {resp.status}: {first_line(resp.read(ERROR_BODY_BYTES))}")
    if not ctype.lower().startswith("text/event-stream"):
        head = first_line(resp.read(ERROR_BODY_BYTES))
        raise _Failed(
            f"not a server-sent event stream (Content-Type {ctype[:60]!r}; expected "
            f"text/event-stream): {head}"
        )


def _read_stream(
    resp: http.client.HTTPResponse, out: Streamed, now: Callable[[], float], e: GenEndpoint
) -> bool:
    """Fills ``out`` from the stream; True at ``[DONE]``, False where the stream ended cleanly
    after a finish reason without one; _Failed for any other end."""
    parser = SseParser(e.max_event_kib * 1024)
    limit, total, counted = e.max_response_mib * MIB, 0, 0
    while True:
        piece = resp.read1(READ_BYTES)
        t = now()  # before parsing: the time the bytes reached this host
        if not piece:
            break
        total += len(piece)
        if total > limit:
            raise bounded_http.TooLarge(f"a stream over the limit of {limit:,} bytes")
        for event in parser.feed(piece):
            if event.event == "error":
                raise _Failed(f"error event from the server: {first_line(event.data.encode())}")
            if event.data.strip() == DONE:
                return True
            counted = _take(openai.read_chunk(event.data), t, out, counted)
    if out.finish_reason is not None and not parser.pending:
        return False  # a server that ends its stream without [DONE] after the last choice
    where = f"after {parser.events} events" if parser.events else "before any event"
    raise _Failed(f"stream ended {where}, without [DONE]")


def _take(chunk: openai.Chunk, t: float, out: Streamed, counted: int) -> int:
    """Records one chunk; returns the server's running count of output tokens."""
    if chunk.error:
        raise _Failed(f"error in the stream: {chunk.error}")
    if chunk.prompt_tokens is not None:
        out.prompt_tokens = chunk.prompt_tokens
    if chunk.finish_reason is not None:
        out.finish_reason = chunk.finish_reason
    if chunk.token_ids and not chunk.text_chars:
        # Ids with no text yet (a character split across tokens): they reach the user with
        # the next text, so they count in that chunk.
        out.token_ids.extend(chunk.token_ids)
        out.held_ids += len(chunk.token_ids)
    if chunk.text_chars:
        tokens = (chunk.tokens or 1) + out.held_ids
        out.held_ids = 0
        # A server that counts usage in every chunk (vLLM's continuous_usage_stats) says how
        # many tokens this one carried: several where speculative decoding accepted several.
        if chunk.tokens is None and not tokens > 1 and chunk.completion_tokens is not None:
            tokens = max(1, chunk.completion_tokens - counted)
        out.chunk_times.append(t)
        out.chunk_tokens.append(tokens)
        out.token_ids.extend(chunk.token_ids)
        out.fields.extend(f for f in chunk.fields if f not in out.fields)
    if chunk.completion_tokens is not None:
        out.completion_tokens = chunk.completion_tokens
        counted = chunk.completion_tokens
    return counted


def _stream_reason(exc: BaseException, timeout: float, out: Streamed) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        got = len(out.chunk_times)
        got = f"after {got} text chunks" if got else "before any text chunk"
        return f"connection closed mid-stream ({got})"
    return network_reason(exc, timeout)

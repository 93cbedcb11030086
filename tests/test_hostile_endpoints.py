"""Endpoints as a hostile user writes them and a hostile server answers (issue 20, invariants
3, 5, 7, 8).

Invariant 3 and 7: an endpoint block's URL (scheme, host, port, control characters, whitespace,
credentials), model name, token variable and limits are errors of ``bench validate`` and of
``bench run`` before anything is written, each one line naming the file, the line and the
field, never repeating a password; a bearer token goes only over https or to this machine.

Invariant 5 and 8: whatever a server sends, over REST or gRPC (a trickle, a stall, an answer
too large, NaN, numbers beyond range, bodies no decoder expects), fails that request with the
reason, in every phase of a cell alike (alone, one at a time, under load), never a traceback;
``timeout_s`` bounds a whole request and ``startup_timeout_s`` the whole readiness wait.

The stand-in servers run in this process: a raw-socket HTTP server that misbehaves byte by
byte, and a grpcio server with generic handlers. A verdict about time rests on the reason a
request failed (bytes that arrive faster than any per-read timeout can only be stopped by the
whole request's deadline), not on how long the test took.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.run.worker import run_cell
from bench.serve import wire
from bench.serve.endpoint import Client, Endpoint, EndpointError
from bench.workloads.serve.cell.endpoint import ALONE_CALLS
from tests.conftest import bench_cmd
from tests.fixtures.tls import self_signed
from tests.test_endpoint import ANSWER, cell, measured
from tests.test_hostile_validation import clean, listing, run

STEP_S = 0.05  # a trickling server's pause between bytes: well under any timeout used here
TIMEOUT_S = 0.25  # the endpoints' timeout_s in these tests

# -- a raw-socket HTTP server that misbehaves on purpose ------------------------------------------

Behaviour = Callable[[socket.socket, threading.Event], None]


def _headers(status: str = "200 OK", length: int | None = None, extra: str = "") -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else ""
    return f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{size}{extra}\r\n".encode()


def body(data: bytes, status: str = "200 OK") -> Behaviour:
    def answer(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(_headers(status, len(data)) + data)

    return answer


def trickle(data: bytes, from_byte: int = 0) -> Behaviour:
    """``data`` sent whole up to ``from_byte``, then one byte every STEP_S (for ever, in effect:
    the test ends first)."""

    def answer(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(data[:from_byte])
        for i in range(from_byte, len(data)):
            if stop.wait(STEP_S):
                return
            sock.sendall(data[i : i + 1])

    return answer


def stall(sock: socket.socket, stop: threading.Event) -> None:
    stop.wait(30)


def huge_length(sock: socket.socket, stop: threading.Event) -> None:
    sock.sendall(_headers(length=100 << 20) + b"[" * 1024)  # says 100 MiB, sends 1 KiB
    stop.wait(30)


def huge_chunked(sock: socket.socket, stop: threading.Event) -> None:
    # No length stated: chunks of 64 KiB, 3 MiB in all, against a limit of 1 MiB.
    sock.sendall(_headers(extra="Transfer-Encoding: chunked\r\n"))
    chunk = b"%x\r\n%s\r\n" % (1 << 16, b" " * (1 << 16))
    for _ in range(48):
        if stop.is_set():
            return
        sock.sendall(chunk)
    sock.sendall(b"0\r\n\r\n")


TF_ANSWER = b'{"predictions": [[0.25, 0.75]]}'
SLOW_ANSWER = _headers(length=len(ANSWER)) + ANSWER
SLOW_BODY = _headers(length=len(ANSWER) * 200) + ANSWER * 200


class Hostile:
    """A loopback HTTP/1.1 server: GET (health) answers ``health``, POST (infer) ``infer``;
    the first ``good_first`` infer requests, and every other one after them when ``every_other``,
    are answered well. ``seen`` keeps each request's headers."""

    def __init__(
        self,
        infer: Behaviour,
        health: Behaviour | None = None,
        good_first: int = 0,
        every_other: bool = False,
        good: bytes = ANSWER,
        tls: ssl.SSLContext | None = None,
    ):
        self.infer, self.health, self.good = infer, health or body(b"{}"), body(good)
        self.good_first, self.every_other, self.tls = good_first, every_other, tls
        self.calls, self.seen = 0, []
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.sock.getsockname()[1]}"

    def __enter__(self) -> Hostile:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.sock.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.tls:
                conn = self.tls.wrap_socket(conn, server_side=True)
        except OSError:
            conn.close()
            return
        reader = conn.makefile("rb")
        try:
            while not self.stop.is_set():
                head = [reader.readline()]
                while head[-1] not in (b"\r\n", b""):
                    head.append(reader.readline())
                if head[0] == b"":
                    return
                fields = dict(line.decode().rstrip("\r\n").split(": ", 1) for line in head[1:-1])
                reader.read(int(fields.get("Content-Length", 0)))
                if head[0].startswith(b"GET"):
                    self.health(conn, self.stop)
                    continue
                with self.lock:
                    self.calls += 1
                    n = self.calls
                    self.seen.append(fields)
                bad = n > self.good_first and not (self.every_other and n % 2)
                (self.infer if bad else self.good)(conn, self.stop)
                if bad and self.infer in (stall, huge_length):
                    return
        except (OSError, ValueError):
            return  # the client gave up on this connection (or spoke TLS to plain HTTP)
        finally:
            reader.close()
            conn.close()


# -- a gRPC server that misbehaves on purpose ------------------------------------------------


def grpc_answer(values: Any, datatype: str = "FP32", shape: Any = (1, 2), raw: bool = True):
    msgs = wire.grpc_messages()
    resp = msgs["ModelInferResponse"](model_name="mlp")
    out = resp.outputs.add(name="predictions", datatype=datatype, shape=list(shape))
    if raw:
        resp.raw_output_contents.append(np.asarray(values, np.float32).tobytes())
    else:
        out.contents.fp32_contents.extend(values)
    return resp.SerializeToString()


GRPC_GOOD = grpc_answer([0.25, 0.75])


class HostileGrpc:
    """A v2 gRPC server whose ModelInfer answers ``infer(context)`` (bytes) after the first
    ``good_first``, and every other request after them when ``every_other``; ServerReady and
    ModelReady answer ``ready`` (after ``ready_delay_s``)."""

    def __init__(self, infer, good_first: int = 0, every_other: bool = False, ready_delay_s=0.0):
        grpc = pytest.importorskip("grpc")
        from concurrent.futures import ThreadPoolExecutor

        self.infer, self.good_first, self.every_other = infer, good_first, every_other
        self.calls, self.lock, self.stop = 0, threading.Lock(), threading.Event()
        self.seen: list[dict[str, str]] = []
        msgs = wire.grpc_messages()

        def ready(name: str) -> Callable[[bytes, Any], bytes]:
            def answer(request: bytes, context: Any) -> bytes:
                self.stop.wait(ready_delay_s)
                return msgs[name](ready=True).SerializeToString()

            return answer

        def model_infer(request: bytes, context: Any) -> bytes:
            with self.lock:
                self.calls += 1
                n = self.calls
                self.seen.append(dict(context.invocation_metadata()))
            bad = n > self.good_first and not (self.every_other and n % 2)
            return self.infer(context, self.stop) if bad else GRPC_GOOD

        handlers = {
            "ModelInfer": grpc.unary_unary_rpc_method_handler(model_infer),
            "ServerReady": grpc.unary_unary_rpc_method_handler(ready("ServerReadyResponse")),
            "ModelReady": grpc.unary_unary_rpc_method_handler(ready("ModelReadyResponse")),
        }
        self.server = grpc.server(
            ThreadPoolExecutor(32), options=[("grpc.max_send_message_length", 64 << 20)]
        )
        generic = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", handlers)
        self.server.add_generic_rpc_handlers((generic,))
        self.url = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    def __enter__(self) -> HostileGrpc:
        self.server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.server.stop(grace=None)


def grpc_abort(details: str) -> Callable[[Any, threading.Event], bytes]:
    def answer(context: Any, stop: threading.Event) -> bytes:
        import grpc

        context.abort(grpc.StatusCode.INTERNAL, details)
        return b""

    return answer


def grpc_slow(context: Any, stop: threading.Event) -> bytes:
    stop.wait(30)
    return GRPC_GOOD


def v2(data: str, shape: str = "[1, 2]", datatype: str = '"FP32"') -> bytes:
    tensor = f'"name": "predictions", "shape": {shape}, "datatype": {datatype}, "data": {data}'
    return ('{"outputs": [{' + tensor + "}]}").encode()


# -- invariant 5 and 8: every answer judged, in every phase alike ------------------------------

# case -> (protocol, the server's answer, what the request's recorded reason says, endpoint)
ANSWERS: dict[str, tuple[str, Any, str, dict[str, Any]]] = {
    # A whole request is bounded, however slowly the server sends.
    "http body trickled": ("v2-http", trickle(SLOW_ANSWER, 60), "timed out after 0.25 s", {}),
    "http headers trickled": ("v2-http", trickle(SLOW_ANSWER, 3), "timed out after 0.25 s", {}),
    "http long body trickled": ("v2-http", trickle(SLOW_BODY, 200), "timed out after 0.25", {}),
    "http stalled": ("v2-http", stall, "timed out after 0.25 s", {}),
    "grpc stalled": ("v2-grpc", grpc_slow, "gRPC DEADLINE_EXCEEDED", {}),
    # An answer's size is bounded (max_response_mib), stated or not.
    "http length over the limit": (
        "v2-http", huge_length, "answer of 104,857,600 bytes, over the limit of 4,194,304", {},
    ),
    "http chunked over the limit": (
        "v2-http", huge_chunked, "over the limit of 1,048,576 bytes", {"max_response_mib": 1},
    ),
    "grpc message over the limit": (
        "v2-grpc", lambda c, s: grpc_answer(np.zeros(600_000), shape=(1, 600_000)),
        "gRPC RESOURCE_EXHAUSTED", {"max_response_mib": 1},
    ),
    # Non-finite numbers are no prediction.
    "json NaN": ("v2-http", body(v2("[NaN, 0.5]")), "non-finite number NaN", {}),
    "json Infinity": ("v2-http", body(v2("[0.5, -Infinity]")), "non-finite number -Infinity", {}),
    "json 1e999": ("v2-http", body(v2("[1e999, 0.5]")), "non-finite number in the predictions", {}),
    "json beyond float32": ("v2-http", body(v2("[1e39, 0.5]")), "beyond float32's range", {}),
    "json beyond float16": (
        "v2-http", body(v2("[70000, 0.5]", datatype='"FP16"')), "beyond float16's range", {},
    ),
    "tf-serving NaN": (
        "tf-serving-rest", body(b'{"predictions": [[NaN, 0.5]]}'), "non-finite number NaN", {},
    ),
    "grpc raw NaN": (
        "v2-grpc", lambda c, s: grpc_answer([np.nan, 0.5]), "non-finite number in the predict", {},
    ),
    "grpc contents Infinity": (
        "v2-grpc", lambda c, s: grpc_answer([np.inf, 0.5], raw=False), "non-finite number", {},
    ),
    # Bodies no decoder expects: each one request's error, with the reason.
    "json integer beyond any float": (
        "v2-http", body(v2("[1%s, 0.5]" % ("0" * 400))), "OverflowError", {},
    ),
    "json 5,000-digit integer": ("v2-http", body(v2("[%s]" % ("9" * 5000))), "not JSON", {}),
    "json nested past the stack": (
        "v2-http", body(b"[" * 100_000 + b"]" * 100_000), "not JSON the client can read", {},
    ),
    "json not UTF-8": ("v2-http", body(b'{"outputs": "\xff\xfe"}'), "not JSON", {}),
    "json empty": ("v2-http", body(b""), "not JSON", {}),
    "json data a mapping": ("v2-http", body(v2('{"a": 1}')), "output tensor unreadable", {}),
    "json ragged data": ("v2-http", body(v2("[[1], [2, 3]]")), "output tensor unreadable", {}),
    "json shape mismatch": ("v2-http", body(v2("[1, 2]", "[1, 3]")), "unreadable", {}),
    "json shape not numbers": ("v2-http", body(v2("[1, 2]", '"ab"')), "unreadable", {}),
    "json unknown datatype": (
        "v2-http", body(v2("[1, 2]", datatype='"BYTES"')), "output datatype 'BYTES'", {},
    ),
    "json two rows": ("v2-http", body(v2("[1, 2]", "[2, 1]")), "shape [2, 1] for one example", {}),
    "json no outputs": ("v2-http", body(b'{"outputs": []}'), "no 'outputs' list", {}),
    "tf-serving strings": (
        "tf-serving-rest", body(b'{"predictions": [["a", "b"]]}'), "unreadable", {},
    ),
    "http error with terminal escapes": (
        "v2-http", body(b"\x1b[2J\x1b[31mboom\r\n", "500 Internal Server Error"),
        "HTTP 500: \\x1b[2J\\x1b[31mboom", {},
    ),
    "http garbage status line": ("v2-http", body(b"", "\x1b[31m"), "BadStatusLine", {}),
    "grpc not protobuf": ("v2-grpc", lambda c, s: b"\xff\xff\xff\xff", "not a ModelInferResp", {}),
    "grpc unknown datatype": (
        "v2-grpc", lambda c, s: grpc_answer([1, 2], datatype="BYTES"), "datatype 'BYTES'", {},
    ),
    "grpc shape mismatch": (
        "v2-grpc", lambda c, s: grpc_answer([1, 2], shape=(1, 3)), "unreadable", {},
    ),
    "grpc error with terminal escapes": (
        "v2-grpc", grpc_abort("\x1b[2Jboom"), "gRPC INTERNAL: \\x1b[2Jboom", {},
    ),
}  # fmt: skip

# phase -> (cell axes, server answers well first / every other request)
PHASES = {
    # The ten requests sent alone before any load: every one fails, and so does the cell.
    "alone": ({"qps": 40.0}, 0, False),
    # One at a time (arrivals: single_stream), after ten good answers alone: half fail.
    "one at a time": ({"arrivals": "single_stream"}, ALONE_CALLS, True),
    # Under open-loop load, likewise.
    "under load": ({"qps": 40.0, "arrivals": "constant"}, ALONE_CALLS, True),
}


def hostile_server(protocol: str, answer: Any, good_first: int, every_other: bool):
    if protocol == "v2-grpc":
        return HostileGrpc(answer, good_first, every_other)
    good = TF_ANSWER if protocol == "tf-serving-rest" else ANSWER
    return Hostile(answer, good_first=good_first, every_other=every_other, good=good)


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("case", list(ANSWERS))
def test_a_hostile_answer_fails_its_request_in_every_phase_alike(case, phase):
    protocol, answer, reason, extra = ANSWERS[case]
    axes, good_first, every_other = PHASES[phase]
    with hostile_server(protocol, answer, good_first, every_other) as server:
        endpoint = {"url": server.url, "protocol": protocol, "timeout_s": TIMEOUT_S, **extra}
        _, msg = cell(endpoint, queries=16, drain_s=TIMEOUT_S * 2, **axes)
        msg["measure"]["serve"].update(min_seconds=0.1, warmup_queries=2)
        record = run_cell(None, msg)  # the worker's own entry: a crash would be recorded
    assert "traceback" not in record, record.get("traceback")
    if phase == "alone":
        assert record["status"] == "failed"
        assert "every request sent alone failed: " in record["reason"], record["reason"]
        assert reason in record["reason"], record["reason"]
        return
    (probe,) = record["serve"]["probes"]
    # Recorded as failed requests of the probe, as a rate under load records them: counted,
    # with the reason, and never fast (no latency for them).
    assert probe["errors"] >= 1 and probe["answered"] >= 1, probe
    assert any(reason in why for why in probe["error_reasons"]), probe["error_reasons"]
    assert probe["latency_s"]["n"] == probe["queries"] - probe["errors"]
    # The cell is what the half answered well make it: ok with the errors flagged, or invalid
    # where this host was too busy to keep the schedule (a verdict on the client, not on this).
    assert record["status"] in ("ok", "invalid"), record["reason"]
    if record["status"] == "ok":
        assert "endpoint_errors" in record["flags"] and reason in record["reason"], record
    assert "\x1b" not in json.dumps(record)  # a server's escapes never reach a terminal raw


# -- startup_timeout_s bounds the whole readiness wait --------------------------------------

READY = b'{"ready": true}' + b" " * 600  # trickled, 30 s
READINESS: dict[str, tuple[str, Any, str]] = {
    "health answer trickled": (
        "v2-http",
        trickle(_headers(length=len(READY)) + READY, 5),
        "timed out after",
    ),
    "health route stalled": ("v2-http", stall, "timed out after"),
    "health answer over 64 KiB": ("v2-http", body(b" " * 70_000), "response too large"),
    "health answer 503": ("v2-http", body(b"{}", "503 Service Unavailable"), "answered not ready"),
    "grpc readiness stalled": ("v2-grpc", 30.0, "gRPC DEADLINE_EXCEEDED"),
}


@pytest.mark.parametrize("case", list(READINESS))
def test_the_whole_readiness_wait_ends_by_startup_timeout_s(case):
    protocol, health, last = READINESS[case]
    startup = 0.6
    server = (
        HostileGrpc(None, ready_delay_s=health)
        if protocol == "v2-grpc"
        else Hostile(stall, health=health)
    )
    with server:
        endpoint = {"url": server.url, "protocol": protocol, "startup_timeout_s": startup}
        start = time.monotonic()
        record = run_cell(None, cell(endpoint)[1])
        took = time.monotonic() - start
    assert "traceback" not in record
    assert record["status"] == "failed"
    assert f"not ready after {startup:g} s (last: {last}" in record["reason"], record["reason"]
    # Each byte came sooner than any per-read timeout: only the wait's own deadline ends it.
    # (The trickle would have lasted 30 s; the bound below has 20x slack for a loaded host.)
    assert took < 12, took


# -- the same over TLS: every read of a TLS connection keeps the deadline too ------------------


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context with a self-signed certificate for 127.0.0.1, which the client trusts
    through SSL_CERT_FILE (read by ``ssl.create_default_context``)."""
    pytest.importorskip("cryptography")
    cert_file, key_file = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


# case -> (the server's answer, what the request's recorded reason says, endpoint fields)
HTTPS: dict[str, tuple[Behaviour, str, dict[str, Any]]] = {
    "body trickled": (trickle(SLOW_ANSWER, 60), "timed out after 0.25 s", {}),
    "headers trickled": (trickle(SLOW_ANSWER, 3), "timed out after 0.25 s", {}),
    "stalled": (stall, "timed out after 0.25 s", {}),
    "length over the limit": (huge_length, "over the limit of 4,194,304", {}),
    "chunked over the limit": (
        huge_chunked, "over the limit of 1,048,576 bytes", {"max_response_mib": 1},
    ),
    "NaN": (body(v2("[NaN, 0.5]")), "non-finite number NaN", {}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(HTTPS))
def test_https_answers_are_bounded_and_judged_alike(case, tls_server):
    answer, reason, extra = HTTPS[case]
    with Hostile(answer, tls=tls_server) as server:
        endpoint = {"url": server.url, "timeout_s": TIMEOUT_S, **extra}
        record = run_cell(None, cell(endpoint)[1])
    assert "traceback" not in record, record.get("traceback")
    assert record["status"] == "failed", record["reason"]
    assert "every request sent alone failed: " in record["reason"], record["reason"]
    assert reason in record["reason"], record["reason"]


def test_a_token_goes_over_https_and_a_stalled_handshake_is_bounded(tls_server, monkeypatch):
    monkeypatch.setenv("BENCH_TEST_TOKEN", TOKEN)
    with Hostile(stall, good_first=10**9, tls=tls_server) as server:
        endpoint = {"url": server.url, "token_env": "BENCH_TEST_TOKEN"}
        record = run_cell(None, cell(endpoint, queries=10)[1])
    measured(record)
    assert {s["Authorization"] for s in server.seen} == {f"Bearer {TOKEN}"}
    # A server that accepts the connection and never answers the TLS handshake: the readiness
    # wait ends by startup_timeout_s, the handshake within what is left of it.
    with Hostile(stall) as plain:
        url = plain.url.replace("http://", "https://")
        record = run_cell(None, cell({"url": url, "startup_timeout_s": 0.5})[1])
    assert record["status"] == "failed" and "traceback" not in record
    assert "not ready after 0.5 s (last: timed out after" in record["reason"], record["reason"]


# -- invariant 3: a token goes only where it is safe ----------------------------------------

TOKEN = "s3cr3t-t0ken"


@pytest.mark.parametrize("protocol", ["v2-http", "v2-grpc"])
def test_a_token_reaches_a_loopback_server_and_nothing_else_of_it_is_written(protocol, monkeypatch):
    monkeypatch.setenv("BENCH_TEST_TOKEN", TOKEN)
    always_good = 10**9
    server = (
        HostileGrpc(None, good_first=always_good)
        if protocol == "v2-grpc"
        else Hostile(stall, good_first=always_good)
    )
    with server:
        endpoint = {"url": server.url, "protocol": protocol, "token_env": "BENCH_TEST_TOKEN"}
        record = run_cell(None, cell(endpoint, queries=10)[1])
    measured(record)
    auth = [s.get("Authorization", s.get("authorization")) for s in server.seen]
    assert auth and set(auth) == {f"Bearer {TOKEN}"}
    assert TOKEN not in json.dumps(record)  # the variable's name is kept, not its value


# endpoint fields -> what the failed cell's reason says (the token's value never in it)
TOKEN_REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "http to another host": (
        {"url": "http://10.1.2.3:8080"}, "would travel in clear text (http://) to 10.1.2.3"
    ),
    "grpc to another host": (
        {"url": "10.1.2.3:8081", "protocol": "v2-grpc"}, "(gRPC, which bench speaks in plain"
    ),
    "token unset": ({"url": "http://127.0.0.1:1", "token_env": "BENCH_NO_SUCH_VAR"}, "not set"),
    "token with a newline": (
        {"url": "http://127.0.0.1:1", "token_env": "BENCH_BAD_TOKEN"}, "one header's worth",
    ),
    "password in the url": (
        {"url": f"http://user:{TOKEN}@127.0.0.1:1"}, "a user name or password before '@'"
    ),
    "url with a newline": ({"url": "http://127.0.0.1:1/\r\nX: y"}, "control character '\\r'"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(TOKEN_REFUSED))
def test_a_worker_message_that_skipped_validation_still_keeps_the_token_rules(case, monkeypatch):
    # What validation refuses (the tests below), the client refuses too, before any request.
    monkeypatch.setenv("BENCH_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("BENCH_BAD_TOKEN", f"{TOKEN}\r\nX-Injected: 1")
    monkeypatch.delenv("BENCH_NO_SUCH_VAR", raising=False)
    fields, why = TOKEN_REFUSED[case]
    endpoint = {"protocol": "v2-http", "token_env": "BENCH_TEST_TOKEN", **fields}
    record = run_cell(None, cell(endpoint)[1])
    assert "traceback" not in record
    assert record["status"] == "failed" and why in record["reason"], record["reason"]
    assert TOKEN not in json.dumps(record)
    with pytest.raises(EndpointError) as found:
        Client(Endpoint(model_name="mlp", **endpoint))
    assert TOKEN not in str(found.value)


def test_allow_insecure_token_lets_it_go_in_clear_text(monkeypatch):
    monkeypatch.setenv("BENCH_TEST_TOKEN", TOKEN)
    for url, protocol in (("http://10.1.2.3:8080", "v2-http"), ("10.1.2.3:8081", "v2-grpc")):
        endpoint = Endpoint(
            url, protocol, "mlp", token_env="BENCH_TEST_TOKEN", allow_insecure_token=True
        )
        client = Client(endpoint)  # nothing is sent until a request
        assert client.headers["Authorization"] == f"Bearer {TOKEN}"
        client.close()


# -- invariants 3, 7, 8: an endpoint block refused at validation ----------------------------

SCENARIO = """\
name: hostile_endpoint
model: mlp
model_args: {hidden: [8]}
workload: serve
endpoint: ep
target_qps: 10
slo: {percentile: 99, latency_ms: 50}
endpoints:
  ep:
    protocol: %s
    model_name: %s
    url: %s
%s"""

# case -> (url, protocol, extra fields, model_name, the field named, what the line says)
BLOCKS: dict[str, tuple[str, str, str, str, str, str]] = {
    "password in an http url": (
        f"http://user:{TOKEN}@example.com:8080", "v2-http", "", "mlp", "url",
        "a user name or password before '@'; expected none: put the token in an environment "
        "variable",
    ),
    "user name only": ("http://admin@example.com", "v2-http", "", "mlp", "url", "password"),
    "password in a grpc target": (
        f"admin:{TOKEN}@example.com:8081", "v2-grpc", "", "mlp", "url", "token_env: MY_TOKEN",
    ),
    "password in a grpc:// url": (
        f"grpc://:{TOKEN}@example.com:8081", "v2-grpc", "", "mlp", "url", "before '@'",
    ),
    "scheme ftp": ("ftp://example.com", "v2-http", "", "mlp", "url", "scheme 'ftp'; expected http"),
    "no scheme for rest": ("example.com:8080", "v2-http", "", "mlp", "url", "no scheme"),
    "one slash": ("http:/example.com", "v2-http", "", "mlp", "url", "no scheme"),
    "https for grpc": ("https://example.com:443", "v2-grpc", "", "mlp", "url", "scheme 'https'"),
    "no host": ("http://:8080", "v2-http", "", "mlp", "url", "no host"),
    "host with a bad character": ("http://ex!ample.com", "v2-http", "", "mlp", "url", "not a host"),
    "host with empty label": ("http://a..b", "v2-http", "", "mlp", "url", "not a host name"),
    "ipv6 that is not": ("http://[zz::1]:80", "v2-http", "", "mlp", "url", "not an IPv6"),
    "non-ascii host": ("http://exämple.com", "v2-http", "", "mlp", "url", "non-ASCII"),
    "port 0": ("http://example.com:0", "v2-http", "", "mlp", "url", "port 0; expected a number"),
    "port 65536": ("http://example.com:65536", "v2-http", "", "mlp", "url", "port 65536"),
    "port huge": ("http://h:%s" % ("9" * 50), "v2-http", "", "mlp", "url", "from 1 to 65535"),
    "port negative": ("http://example.com:-1", "v2-http", "", "mlp", "url", "'-1'"),
    "port not a number": ("http://example.com:http", "v2-http", "", "mlp", "url", "'http'"),
    "grpc without port": ("grpc://example.com", "v2-grpc", "", "mlp", "url", "no port"),
    "grpc with a path": ("example.com:8081/x", "v2-grpc", "", "mlp", "url", "a path"),
    "newline": ("http://example.com/\nHost: evil", "v2-http", "", "mlp", "url", "'\\n' at"),
    "carriage return": ("http://example.com\r", "v2-http", "", "mlp", "url", "'\\r' at position"),
    "nul": ("http://example.com/\x00", "v2-http", "", "mlp", "url", "control character"),
    "delete": ("http://example.com/\x7f", "v2-http", "", "mlp", "url", "control character"),
    "tab": ("http://example.com:80\t", "v2-http", "", "mlp", "url", "control character '\\t'"),
    "space inside": ("http://example.com/a b", "v2-http", "", "mlp", "url", "whitespace ' '"),
    "space trailing": ("http://example.com ", "v2-http", "", "mlp", "url", "whitespace"),
    "no-break space": ("http://example.com\u00a0", "v2-http", "", "mlp", "url", "whitespace"),
    "query string": ("http://h/?key=abc", "v2-http", "", "mlp", "url", "a query (?...) or frag"),
    "fragment": ("http://h/#x", "v2-http", "", "mlp", "url", "fragment"),
    "too long": ("http://h/" + "a" * 3000, "v2-http", "", "mlp", "url", "at most 2,048"),
    "empty": ("", "v2-http", "", "mlp", "url", "got ''"),
    "model name with a slash": (
        "http://h", "v2-http", "", "../admin", "model_name", "a model name of letters",
    ),
    "model name with a newline": ("http://h", "v2-http", "", "m\\nX", "model_name", "letters"),
    "token_env not a name": (
        "https://h", "v2-http", "    token_env: '$(rm -rf ~)'\n", "mlp", "token_env",
        "the name of an environment variable",
    ),
    "token over http to another host": (
        "http://10.0.0.5:8080", "v2-http", "    token_env: TOK\n", "mlp", "token_env",
        "would travel in clear text (http://) to 10.0.0.5",
    ),
    "token over grpc to another host": (
        "example.com:8081", "v2-grpc", "    token_env: TOK\n", "mlp", "token_env",
        "(gRPC, which bench speaks in plaintext) to example.com",
    ),
    "allow_insecure_token a string": (
        "http://h", "v2-http", "    allow_insecure_token: 'yes'\n", "mlp", "allow_insecure_token",
        "a valid boolean",
    ),
    "response limit zero": (
        "http://h", "v2-http", "    max_response_mib: 0\n", "mlp", "max_response_mib", "got 0",
    ),
    "response limit huge": (
        "http://h", "v2-http", "    max_response_mib: 4096\n", "mlp", "max_response_mib",
        "less than or equal to 1024",
    ),
    "timeout zero": ("http://h", "v2-http", "    timeout_s: 0\n", "mlp", "timeout_s", "got 0"),
    "timeout infinite": (
        "http://h", "v2-http", "    timeout_s: .inf\n", "mlp", "timeout_s", "got inf",
    ),
    "startup timeout zero": (
        "http://h", "v2-http", "    startup_timeout_s: 0\n", "mlp", "startup_timeout_s", "got 0",
    ),
}  # fmt: skip


# case -> (the endpoints: value, --set arguments, what names the field, what the line says)
SHAPES: dict[str, tuple[str, list[str], str, str]] = {
    "a list quoting a password": (
        f'[{{url: "http://user:{TOKEN}@h"}}]', [], "endpoints: ",
        "got [{'url': 'http://***@h'}]; expected a valid dictionary",
    ),
    "a string quoting a password": (
        f'{{ep: "http://user:{TOKEN}@h:80"}}', [], "endpoints.ep: ", "got 'http://***@h:80'",
    ),
    "a quote cut inside a password": (
        f'[{{url: "http://user:{TOKEN * 9}@h"}}]', [], "endpoints: ", "got [{'url': 'http://***@h",
    ),
    "a password given with --set": (
        "{ep: {url: 'http://h', protocol: v2-http, model_name: m}}",
        ["--set", f"endpoints.ep.url=http://u:{TOKEN}@h"], "endpoints.ep.url: ", "before '@'",
    ),
    "a --set that fails, quoting a password": (
        "{ep: {url: 'http://h', protocol: v2-http, model_name: m}}",
        ["--set", f"endpoints.ep.url.x=http://u:{TOKEN}@h"],
        "--set endpoints.ep.url.x=http://***@h: ", "'url' is not a mapping",
    ),
    "endpoint name with a space": (
        "{'a b': {url: 'http://h', protocol: v2-http, model_name: m}}", [], "endpoints.a b: ",
        "a value matching",
    ),
    "max_in_flight over 1024": (
        "{ep: {url: 'http://h', protocol: v2-http, model_name: m, max_in_flight: 100000}}", [],
        "endpoints.ep.max_in_flight: ", "less than or equal to 1024",
    ),
    "connections true": (
        "{ep: {url: 'http://h', protocol: v2-grpc, model_name: m, connections: true}}", [],
        "endpoints.ep.connections: ", "got True; expected a valid integer",
    ),
    "timeout_s a string": (
        "{ep: {url: 'http://h', protocol: v2-http, model_name: m, timeout_s: '5'}}", [],
        "endpoints.ep.timeout_s: ", "got '5'; expected a valid number",
    ),
    "startup_timeout_s true": (
        "{ep: {url: 'http://h', protocol: v2-http, model_name: m, startup_timeout_s: true}}", [],
        "endpoints.ep.startup_timeout_s: ", "got True",
    ),
    "protocol unknown": (
        "{ep: {url: 'http://h', protocol: v2-https, model_name: m}}", [],
        "endpoints.ep.protocol: ", "expected one of: v2-http, v2-grpc, tf-serving-rest",
    ),
    "endpoint not a mapping": ("{ep: null}", [], "endpoints.ep: ", "got None"),
}  # fmt: skip

HEAD = SCENARIO.split("endpoints:")[0]


def yaml_quoted(text: str) -> str:
    """A YAML double-quoted scalar whose file is plain ASCII (escapes for everything else)."""
    escaped = "".join(
        c if 32 <= ord(c) < 127 and c not in '"\\' else f"\\u{ord(c):04x}" for c in text
    )
    return f'"{escaped}"'


def cases() -> list[Any]:
    """(scenario text, --set arguments, what names the field, what the line says) per case."""
    found = []
    for case, (url, protocol, extra, model_name, field, says) in BLOCKS.items():
        name = json.dumps(model_name.replace("\\n", "\n"))
        text = SCENARIO % (protocol, name, yaml_quoted(url), extra)
        found.append(pytest.param(text, [], f"endpoints.ep.{field}: ", says, id=case))
    for case, (endpoints, argv, field, says) in SHAPES.items():
        text = f"{HEAD}endpoints: {endpoints}\n"
        found.append(pytest.param(text, argv, field, says, id=case))
    return found


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(("text", "argv", "field", "says"), cases())
def test_a_hostile_endpoint_block_is_one_line_naming_the_field(
    text, argv, field, says, command, tmp_path, capsys
):
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    results = tmp_path / "results"
    before = listing(tmp_path)
    options = ["--results-dir", str(results)] if command == "run" else []
    code, out, err = run(capsys, command, str(path), *options, *argv)
    assert code == 2, (out, err)
    clean(err)
    (line,) = capsys_lines(err, path)
    assert field in line and says in line, err
    assert TOKEN not in out + err  # a password in a URL is never repeated
    assert listing(tmp_path) == before  # nothing written, in the results folder or beside it


def capsys_lines(err: str, path: Path) -> list[str]:
    """The problems reported (``run`` joins them into one stream; each starts with the file)."""
    return [f"{path}{part}" for part in err.split(str(path))[1:]]


# -- end to end: bench run, its worker and a hostile server -----------------------------------


@pytest.mark.slow
def test_bench_run_records_a_hostile_server_and_writes_only_its_results(tmp_path):
    import subprocess

    scenario = """\
name: hostile_run
model: mlp
model_args: {hidden: [8]}
workload: serve
framework: jax
target_qps: 20
arrivals: constant
matrix:
  endpoint: [nan, trickle, huge, garbage]
slo: {percentile: 99, latency_ms: 50}
measure:
  serve: {min_queries: 10, min_seconds: 0.1, warmup_queries: 2, max_seconds: 5, drain_s: 0.5}
endpoints:
"""
    servers = {
        "nan": Hostile(body(v2("[NaN, 0.5]"))),
        "trickle": Hostile(trickle(SLOW_ANSWER, 40)),
        "huge": Hostile(huge_length),
        "garbage": Hostile(body(b"[" * 100_000)),
    }
    for name, server in servers.items():
        scenario += (
            f"  {name}: {{url: '{server.url}', protocol: v2-http, model_name: mlp, "
            f"timeout_s: {TIMEOUT_S}, startup_timeout_s: 5}}\n"
        )
    work, home, tmp = tmp_path / "work", tmp_path / "home", tmp_path / "tmp"
    for folder in (work, home, tmp):
        folder.mkdir()
    (work / "s.yaml").write_text(scenario)
    before = listing(tmp_path)
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(tmp)}
    for server in servers.values():
        server.__enter__()
    try:
        done = subprocess.run(
            bench_cmd("run", "s.yaml", "--results-dir", "results"),
            cwd=work, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        for server in servers.values():
            server.__exit__()
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    (run_dir,) = [p for p in (work / "results").iterdir() if p.is_dir() and not p.is_symlink()]
    cells = [json.loads(line) for line in (run_dir / "cells.jsonl").read_text().splitlines()]
    reasons = {c["key"]["endpoint"]: (c["status"], c["reason"], "traceback" in c) for c in cells}
    assert reasons.keys() == servers.keys()
    for name, why in (
        ("nan", "non-finite number NaN"),
        ("trickle", "timed out after 0.25 s"),
        ("huge", "over the limit of 4,194,304"),
        ("garbage", "not JSON the client can read"),
    ):
        status, reason, crashed = reasons[name]
        assert status == "failed" and why in reason and not crashed, (name, reasons[name])
    # Written: the run folder (and the results folder's own files); nothing else anywhere.
    after = listing(tmp_path)
    new = {p for p in after if p not in before}
    outside = {p for p in new if not p.startswith(("work/results", "tmp"))}
    assert outside == set(), outside

"""``bench serve`` is safe to start on a shared host (issue 20, invariant 2).

Every member of the class found, each tried here: the address it listens on and what its banner
says; the model repository endpoints (load, unload) off over REST and gRPC, with the model still
served after a client tried them; each client mistake answered 400 / INVALID_ARGUMENT with its
reason, never 500 and never ``null``; a body over the limit refused before it is read (stated
length, chunked, gRPC); no log line per request; a port in use, out of range or twice, a host
that is not this machine's, and every other flag out of its bounds: one line, exit 2, before
the model is built.

The server tests run the real server (sockets, KServe's routes, request checks, batcher) around
a numpy stand-in predictor (``tests/fixtures/serve_stand_in.py``), which starts in a second;
``tests/test_endpoint.py`` runs it around the real JAX model.
"""

from __future__ import annotations

import asyncio
import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bench.models import mlp

from bench.cli import main
from bench.serve import listen
from bench.serve.body_limit import BodyLimit
from bench.serve.request_parse import (
    RequestError,
    Tensor,
    features_from_instances,
    features_from_v2,
)

REPO = Path(__file__).resolve().parent.parent
SPEC = mlp.data_spec(mlp.Args())  # numeric [13] float32, categorical [8] int32 < 1000
MAX_ROWS = 4
LIMIT_KB = 64
NEEDS_KSERVE = pytest.mark.skipif(
    importlib.util.find_spec("kserve") is None, reason="bench serve needs the serving extra"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- requests: every client mistake is the client's, with the reason ------------------------


def num(rows: int = 1, datatype: str = "FP32", data: Any = None, shape: Any = None) -> dict:
    data = [0.5] * 13 * rows if data is None else data
    return {"name": "numeric", "shape": shape or [rows, 13], "datatype": datatype, "data": data}


def cat(rows: int = 1, datatype: str = "INT32", data: Any = None, shape: Any = None) -> dict:
    data = [1] * 8 * rows if data is None else data
    return {"name": "categorical", "shape": shape or [rows, 8], "datatype": datatype, "data": data}


# (v2 inputs, what the reason must say)
V2_MISTAKES = {
    "more rows than the maximum batch": ([num(5), cat(5)], "5 rows; expected 1 to 4"),
    "no rows": ([num(0, data=[]), cat(0, data=[])], "0 rows"),
    "a missing input": ([num()], "missing ['categorical']"),
    "an unknown input": (
        [num(), cat(), {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}],
        "unknown ['x']",
    ),
    "an input twice": ([num(), num(), cat()], "more than once"),
    "text for numbers": ([num(datatype="BYTES", data=["a"] * 13), cat()], "datatype 'BYTES'"),
    "floats for indices": ([num(), cat(datatype="FP32", data=[1.5] * 8)], "datatype 'FP32'"),
    "floats sent as INT32": ([num(), cat(data=[1.5] * 8)], "expected whole numbers"),
    "a wrong feature shape": ([num(shape=[1, 12], data=[0.5] * 12), cat()], "expected [rows, 13]"),
    "fewer values than the shape": ([num(data=[0.5] * 12), cat()], "has 12 values"),
    "a negative dimension": ([num(shape=[-1, 13]), cat()], "shape [-1, 13]"),
    "a shape of 10**12 rows": ([num(shape=[10**12, 13]), cat()], "1,000,000,000,000 rows"),
    "inputs of different rows": ([num(2), cat(1)], "different numbers of rows"),
    "an index past the vocabulary": ([num(), cat(data=[1000] * 8)], "holds 1000"),
    "a negative index": ([num(), cat(data=[-1] * 8)], "holds -1"),
    "an index past int32": ([num(), cat(datatype="INT64", data=[2**40] * 8)], "holds 1099"),
    "nulls": ([num(data=[None] * 13), cat()], "expected numbers"),
    "a number past float32": ([num(datatype="FP64", data=[1e300] * 13), cat()], "float32's range"),
    "NaN": ([num(data=[float("nan")] * 13), cat()], "NaN or infinity"),
}
INSTANCE = {"numeric": [0.5] * 13, "categorical": [1] * 8}
V1_MISTAKES = {
    "more rows than the maximum batch": ({"instances": [INSTANCE] * 5}, "5 rows"),
    "no rows": ({"instances": []}, "at least one row"),
    "not an object": ([1, 2], "at least one row"),
    "a row without a feature": ({"instances": [{"numeric": [0.5] * 13}]}, "instance 0 has"),
    "a row with an unknown feature": ({"instances": [{**INSTANCE, "x": 1}]}, "instance 0 has"),
    "ragged rows": (
        {"instances": [INSTANCE, {**INSTANCE, "numeric": [0.5] * 12}]},
        "rows of different shapes",
    ),
    "an index past the vocabulary": (
        {"instances": [{**INSTANCE, "categorical": [5000] * 8}]},
        "holds 5000",
    ),
    "a float index": ({"instances": [{**INSTANCE, "categorical": [1.5] * 8}]}, "whole numbers"),
    "booleans for numbers": ({"instances": [{**INSTANCE, "numeric": [True] * 13}]}, "numbers"),
    "an integer of 31 digits": (
        {"instances": [{**INSTANCE, "categorical": [10**30] * 8}]},
        "whole numbers",
    ),
    "bare values for two features": ({"instances": [1, 2]}, "every row must be an object"),
}


def _tensors(inputs: list[dict]) -> list[Tensor]:
    return [Tensor(i["name"], i["datatype"], i["shape"], i["data"]) for i in inputs]


@pytest.mark.parametrize("case", sorted(V2_MISTAKES))
def test_every_v2_request_mistake_is_refused_with_its_reason(case):
    inputs, says = V2_MISTAKES[case]
    with pytest.raises(RequestError, match=None) as raised:
        features_from_v2(_tensors(inputs), SPEC, MAX_ROWS)
    assert says in str(raised.value), str(raised.value)


@pytest.mark.parametrize("case", sorted(V1_MISTAKES))
def test_every_v1_request_mistake_is_refused_with_its_reason(case):
    payload, says = V1_MISTAKES[case]
    with pytest.raises(RequestError) as raised:
        features_from_instances(payload, SPEC, MAX_ROWS)
    assert says in str(raised.value), str(raised.value)


def test_a_good_request_becomes_the_model_features_in_their_dtypes():
    got = features_from_v2(
        _tensors([num(2, "FP64"), cat(2, "INT64", data=list(range(16)))]), SPEC, MAX_ROWS
    )
    assert got["numeric"].dtype == np.float32 and got["numeric"].shape == (2, 13)
    assert got["categorical"].dtype == np.int32 and got["categorical"][1, 7] == 15
    rows = features_from_instances({"instances": [INSTANCE] * 3}, SPEC, MAX_ROWS)
    assert rows["numeric"].shape == (3, 13) and rows["categorical"].dtype == np.int32


# -- the body limit, on the ASGI interface --------------------------------------------------


def _through_limit(headers: list, chunks: list[bytes], limit: int) -> tuple[int, int, bytes]:
    """(status, chunks the limit read, body the app saw) for one request through BodyLimit."""
    read, sent, seen = [0], [], []

    async def receive() -> dict:
        i = read[0]
        read[0] += 1
        return {"type": "http.request", "body": chunks[i], "more_body": i + 1 < len(chunks)}

    async def send(message: dict) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        seen.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    scope = {"type": "http", "headers": headers}
    asyncio.run(BodyLimit(app, limit)(scope, receive, send))
    return sent[0]["status"], read[0], seen[0] if seen else b""


def test_a_body_over_the_limit_is_refused_before_it_is_read():
    # A stated length over the limit: 413 with nothing read.
    assert _through_limit([(b"content-length", b"10000000000")], [b"x"], 100) == (413, 0, b"")
    # Chunked (no length): read only until past the limit (3 chunks of 40 > 100), then 413.
    assert _through_limit([], [b"x" * 40] * 10, 100) == (413, 3, b"")
    # Within the limit, stated or chunked: the application gets the body as sent.
    assert _through_limit([(b"content-length", b"80")], [b"x" * 80], 100) == (200, 1, b"x" * 80)
    assert _through_limit([], [b"ab", b"cd"], 100) == (200, 2, b"abcd")
    assert _through_limit([(b"content-length", b"nan")], [b""], 100)[0] == 400


# -- flags and ports: one line, exit 2, before the model is built ---------------------------


def _cli(args: list[str], capsys: Any, monkeypatch: Any) -> tuple[int, list[str]]:
    """Exit code and stderr lines of ``bench serve ARGS``, failing if a model gets built."""
    from bench.backends import registry

    def built(*_: Any) -> None:
        raise AssertionError("the model was built before the flags and ports were checked")

    monkeypatch.setattr(registry, "load", built)
    try:
        code = main(["serve", "mlp", *args])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err.strip().splitlines()


BAD_FLAGS = {
    "--port 70000": "expected a whole number from 1 to 65,535",
    "--port 0": "from 1 to 65,535",
    "--grpc-port -1": "from 1 to 65,535",
    "--port abc": "'abc'",
    "--max-batch-size 0": "--max-batch-size",
    "--max-batch-size 2097152": "1,048,576",
    "--batch-timeout-ms nan": "milliseconds from 0 to 60,000",
    "--batch-timeout-ms inf": "milliseconds",
    "--batch-timeout-ms -1": "milliseconds",
    "--seed 4294967296": "--seed",
    "--max-request-kb 0": "--max-request-kb",
    "--max-request-kb 99999999": "--max-request-kb",
    "--model-name a/b": "a URL segment",
    "--model-args " + "x" * 70_000: "at most 65,536",
    "--host example.com": "expected an IP address",
    "--host 1.2.3.400": "expected an IP address",
    "--model-args [1]": "not a JSON object",
    '--model-args {"hidden":[0]}': "hidden",
}


@pytest.mark.parametrize("flags", sorted(BAD_FLAGS), ids=lambda f: f[:40])
def test_every_flag_out_of_bounds_is_one_line_and_exit_2(flags, capsys, monkeypatch):
    flag, _, value = flags.partition(" ")
    code, err = _cli([flag, value], capsys, monkeypatch)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("bench serve: "), err
    assert BAD_FLAGS[flags] in err[0], err


@NEEDS_KSERVE
def test_a_port_in_use_or_twice_or_a_foreign_host_is_one_line_and_exit_2(capsys, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy, free = taken.getsockname()[1], free_port()
        cases = {
            (f"--port={busy}", f"--grpc-port={free}"): f"--port {busy}: 127.0.0.1:{busy} is in use",
            (f"--port={free}", f"--grpc-port={busy}"): f"--grpc-port {busy}: 127.0.0.1:{busy} is",
            (f"--port={free}", f"--grpc-port={free}"): "are both",
            # 192.0.2.0/24 is TEST-NET-1: never an address of this host.
            ("--host=192.0.2.1", f"--port={free}"): "--host 192.0.2.1: not an address",
        }
        for args, says in cases.items():
            code, err = _cli(list(args), capsys, monkeypatch)
            assert code == 2 and len(err) == 1 and says in err[0], (args, err)


def test_more_than_one_worker_on_an_accelerator_is_refused(capsys, monkeypatch):
    code, err = _cli(["--workers", "2", "--device", "gpu"], capsys, monkeypatch)
    assert code == 2 and len(err) == 1 and "more than one worker needs --device cpu" in err[0]


def test_the_banner_says_who_can_reach_the_server():
    assert listen.reach("127.0.0.1") == "this machine only (--host to serve others)"
    assert listen.reach("::1").startswith("this machine only")
    assert "every network interface" in listen.reach("0.0.0.0")
    assert listen.address("::1", 80) == "[::1]:80"
    assert listen.parse_host("localhost") == "127.0.0.1"


# -- the server itself ----------------------------------------------------------------------


@contextmanager
def stand_in(log: Path, workers: int = 1) -> Iterator[dict[str, Any]]:
    """The real server around the numpy stand-in, on free ports, ready."""
    if importlib.util.find_spec("kserve") is None:
        pytest.skip("bench serve needs the serving extra (kserve)")
    http_port, grpc_port = free_port(), free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fixtures.serve_stand_in", str(http_port),
             str(grpc_port), str(LIMIT_KB), str(workers)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        end = time.monotonic() + 60
        while _get(http_port, "/v2/models/mlp/ready")[0] != 200:
            if proc.poll() is not None or time.monotonic() > end:
                pytest.fail(f"the stand-in server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield {"http": http_port, "grpc": grpc_port, "log": log, "proc": proc}
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # where a test stopped it
            proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: Any) -> Iterator[dict[str, Any]]:
    with stand_in(tmp_path_factory.mktemp("serve") / "serve.log") as found:
        yield found


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    except OSError:
        return 0, b""


def _post(port: int, path: str, body: Any) -> tuple[int, Any]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    c.request("POST", path, data, {"Content-Type": "application/json"})
    r = c.getresponse()
    text = r.read()
    c.close()
    return r.status, json.loads(text) if text.startswith(b"{") else text


def _listening(port: int) -> set[str]:
    """The local addresses of sockets listening on ``port`` (Linux /proc/net/tcp, tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            ip_hex, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(ip_hex)
                # /proc writes each 32-bit word in host (little-endian) order.
                ip = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(socket.inet_ntop(socket.AF_INET if len(ip) == 4 else socket.AF_INET6, ip))
    return found


V2 = "/v2/models/mlp/infer"


def test_it_listens_on_loopback_only_and_its_banner_says_so(server):
    banner = server["log"].read_text().splitlines()[0]
    assert f"http://127.0.0.1:{server['http']}" in banner, banner
    assert f"127.0.0.1:{server['grpc']} (v2 gRPC)" in banner
    assert "reachable from this machine only" in banner
    assert f"{LIMIT_KB * 1024:,} bytes" in banner
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to read the listening addresses from")
    assert _listening(server["http"]) == {"127.0.0.1"}
    assert _listening(server["grpc"]) <= {"127.0.0.1", "::ffff:127.0.0.1"}
    assert _listening(server["grpc"])


def test_loading_and_unloading_models_is_off_and_the_model_stays_served(server):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    for verb in ("unload", "load"):
        assert _post(server["http"], f"/v2/repository/models/mlp/{verb}", {})[0] == 404
    with grpc.insecure_channel(f"127.0.0.1:{server['grpc']}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for call, request in (
            (stub.RepositoryModelUnload, pb.RepositoryModelUnloadRequest(model_name="mlp")),
            (stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="mlp")),
        ):
            with pytest.raises(grpc.RpcError) as raised:
                call(request, timeout=10)
            assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert "off" in raised.value.details()
        assert stub.ModelReady(pb.ModelReadyRequest(name="mlp"), timeout=10).ready
    assert _get(server["http"], "/v2/models/mlp/ready")[0] == 200
    status, answer = _post(server["http"], V2, {"inputs": [num(), cat()]})
    assert status == 200 and answer["outputs"][0]["data"] == [6.5, 1.0]  # 13 x 0.5; mean 1


@pytest.mark.parametrize("case", sorted(V2_MISTAKES))
def test_each_v2_mistake_is_http_400_with_the_reason(server, case):
    inputs, says = V2_MISTAKES[case]
    body = {"inputs": inputs}
    if case == "NaN":  # JSON has no NaN: sent as Python's json writes it
        body = json.dumps(body).encode()
    status, answer = _post(server["http"], V2, body)
    assert status == 400 and says in answer["error"], (status, answer)


@pytest.mark.parametrize("case", sorted(V1_MISTAKES))
def test_each_v1_mistake_is_http_400_with_the_reason(server, case):
    payload, says = V1_MISTAKES[case]
    status, answer = _post(server["http"], "/v1/models/mlp:predict", payload)
    assert status == 400 and says in answer["error"], (status, answer)


@pytest.mark.parametrize(
    "body, says",
    [
        ({"nothing": 1}, "not a v2 inference request"),
        ({"inputs": 3}, "not a v2 inference request"),
        (b"{not json", "not a v2 inference request"),
    ],
)
def test_a_body_that_is_not_a_v2_request_is_400(server, body, says):
    status, answer = _post(server["http"], V2, body)
    assert status == 400 and says in answer["error"], answer


def test_each_grpc_mistake_is_invalid_argument_with_the_reason(server):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    def request(rows: int = 1, cat_type: str = "INT32", cats: Any = None, raw: Any = None) -> Any:
        r = pb.ModelInferRequest(model_name="mlp")
        n = r.inputs.add(name="numeric", datatype="FP32", shape=[rows, 13])
        c = r.inputs.add(name="categorical", datatype=cat_type, shape=[rows, 8])
        if raw is not None:
            r.raw_input_contents.extend(raw)
            return r
        n.contents.fp32_contents.extend([0.5] * 13 * rows)
        c.contents.int_contents.extend([1] * 8 * rows if cats is None else cats)
        return r

    nums = np.full(13, 0.5, np.float32).tobytes()
    cases = {
        "5 rows; expected 1 to 4": request(5),
        "datatype 'FP32'": request(cat_type="FP32"),
        "holds 4000": request(cats=[4000] * 8),
        "has 7 values": request(cats=[1] * 7),
        "holds 4000;": request(raw=[nums, np.full(8, 4000, np.int32).tobytes()]),
        "buffer size": request(raw=[nums, b"\x00" * 31]),
        "does not match": request(raw=[nums]),
    }
    missing = pb.ModelInferRequest(model_name="mlp")
    missing.inputs.add(
        name="numeric", datatype="FP32", shape=[1, 13]
    ).contents.fp32_contents.extend([0.5] * 13)
    cases["missing ['categorical']"] = missing
    with grpc.insecure_channel(f"127.0.0.1:{server['grpc']}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for says, req in cases.items():
            with pytest.raises(grpc.RpcError) as raised:
                stub.ModelInfer(req, timeout=10)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, says
            assert says in raised.value.details(), (says, raised.value.details())
        good = stub.ModelInfer(request(raw=[nums, np.full(8, 3, np.int32).tobytes()]), timeout=10)
        assert list(good.outputs[0].contents.fp32_contents) == [6.5, 3.0]


def test_predictions_the_model_cannot_compute_are_an_error_never_null(server):
    # 13 x 3e38 overflows float32 in the stand-in's sum: valid inputs, an infinite answer.
    status, answer = _post(server["http"], V2, {"inputs": [num(data=[3e38] * 13), cat()]})
    assert status == 500 and "NaN or infinite predictions" in answer["error"]


def test_a_request_over_the_limit_is_refused_unread_over_http_and_grpc(server):
    # A stated length of 10 GB and no body sent: the answer comes without waiting for one.
    head = f"POST {V2} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    answer = _exchange(server["http"], f"{head}Content-Length: 10000000000\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 413") and b"server's limit of 65,536 bytes" in answer
    # Chunked, no length: 7 chunks of 10,000 bytes pass the limit in the last one, and the
    # body's end never comes; the answer does. (Exactly the bytes the server reads are sent:
    # a socket closed with bytes unread answers with a reset, which may overtake the 413.)
    chunks = b"".join(b"2710\r\n" + b"x" * 10_000 + b"\r\n" for _ in range(7))
    answer = _exchange(
        server["http"], f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + chunks
    )
    assert answer.startswith(b"HTTP/1.1 413") and b"more than 65,536 bytes" in answer
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    big = pb.ModelInferRequest(model_name="mlp", raw_input_contents=[b"\x00" * 70_000])
    channel = grpc.insecure_channel(f"127.0.0.1:{server['grpc']}")
    with channel, pytest.raises(grpc.RpcError) as raised:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(big, timeout=10)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def _exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    return answer


def test_no_line_is_logged_per_request(server):
    before = server["log"].read_text()
    for i in range(40):
        good = {"inputs": [num(), cat()]}
        bad = {"inputs": [num(), cat(data=[9999] * 8)]}
        assert _post(server["http"], V2, good if i % 2 else bad)[0] in (200, 400)
        assert _post(server["http"], "/v1/models/mlp:predict", {"instances": [INSTANCE]})[0] == 200
    assert _post(server["http"], "/v2/repository/models/mlp/unload", {})[0] == 404
    assert server["log"].read_text() == before


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().split()[3]) == pid:
                found.add(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return found


def test_a_second_worker_serves_the_same_port_and_stops_with_its_parent(tmp_path):
    """--workers 2: with the first process stopped (SIGSTOP), a request on the port is still
    answered, by the second; killed without a chance to stop it, the first leaves no worker
    behind (the worker watches its parent)."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("no /proc to find the worker process in")
    with stand_in(tmp_path / "serve.log", workers=2) as two:
        (worker,) = _children(two["proc"].pid)
        os.kill(two["proc"].pid, signal.SIGSTOP)
        c = http.client.HTTPConnection("127.0.0.1", two["http"], timeout=60)
        c.request("POST", "/v1/models/mlp:predict", json.dumps({"instances": [INSTANCE]}),
                  {"Content-Type": "application/json"})  # fmt: skip
        response = c.getresponse()
        assert response.status == 200 and json.loads(response.read()) == {
            "predictions": [[6.5, 1.0]]
        }
        os.kill(two["proc"].pid, signal.SIGKILL)
        end = time.monotonic() + 30
        while Path(f"/proc/{worker}").exists() and time.monotonic() < end:
            time.sleep(0.2)
        assert not Path(f"/proc/{worker}").exists() or "Z" in _state(worker)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "gone"

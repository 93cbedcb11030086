"""Endpoint cells: a model server driven over the network with the open-loop generator.

Stand-in servers run in this process (``http.server`` threads with a set delay or a set way of
failing), so the network path is real and the server's behaviour known; the end-to-end test
starts ``bench serve`` (KServe) for the MLP and checks every answer against the in-process
predictions of the same inputs, over HTTP and over gRPC.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.axes import AXES, CellKey, normalize
from bench.run.worker import run_cell
from bench.serve import wire
from bench.workloads.serve.cell.endpoint import measure_endpoint_cell

REPO = Path(__file__).resolve().parent.parent
ANSWER = json.dumps(
    {
        "outputs": [
            {"name": "predictions", "shape": [1, 2], "datatype": "FP32", "data": [0.25, 0.75]}
        ]
    }
).encode()


class StandIn:
    """A v2 REST server whose infer route sleeps ``delay_s``; ``fail_every``: every n-th
    infer answers HTTP 500; ``malformed``: 200 with a body that is not JSON ("rows": a v2
    answer of two rows); ``ready_after_s``: the health route answers 503 until then."""

    def __init__(self, delay_s=0.0, fail_every=0, malformed: bool | str = False, ready_after_s=0.0):
        self.delay_s, self.fail_every, self.malformed = delay_s, fail_every, malformed
        self.ready_at = time.monotonic() + ready_after_s
        self.calls = 0
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the client's pooled connections

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without it, Nagle's algorithm holds
                # the second for the client's delayed acknowledgement (~40 ms).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                ready = time.monotonic() >= stand_in.ready_at
                self._answer(200 if ready else 503, b"{}")

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                with stand_in.lock:
                    stand_in.calls += 1
                    n = stand_in.calls
                time.sleep(stand_in.delay_s)
                if stand_in.fail_every and n % stand_in.fail_every == 0:
                    self._answer(500, b"model exploded\n")
                elif stand_in.malformed == "rows":
                    self._answer(200, ANSWER.replace(b"[1, 2]", b"[2, 1]"))
                elif stand_in.malformed:
                    self._answer(200, b"<html>not an answer</html>")
                else:
                    self._answer(200, ANSWER)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cell(
    endpoint: dict[str, Any],
    qps: float | str = 50.0,
    queries: int = 60,
    drain_s: float = 1.0,
    **axes: Any,
):
    """(key, worker message) of one endpoint cell of the MLP."""
    values = {a.name: a.default for a in AXES if a.default is not ...}
    values.update(workload="serve", batch_size=1, target_qps=qps, endpoint="ep", **axes)
    key = CellKey(model="mlp", **normalize(values))
    msg = {
        "cell_id": key.cell_id,
        "key": key.to_dict(),
        "model_args": {"hidden": [32]},
        "seed": 0,
        "pricing": {},
        "slo": {"percentile": 99.0, "latency_ms": 200.0},
        "endpoints": {"ep": {"model_name": "mlp", "protocol": "v2-http", **endpoint}},
        "measure": {
            "serve": {
                "min_queries": queries, "min_seconds": 0.5, "warmup_queries": 10,
                "max_seconds": 30.0, "drain_s": drain_s, "low_qps": None, "tolerance": 0.05,
                "retries": 0,
            }
        },
    }  # fmt: skip
    return key, msg


def measured(record: dict[str, Any]) -> bool:
    """True for an ok cell. On a busy machine the open-loop generator can fall behind its
    schedule, and the cell is then invalid with that reason, its requests still measured (seen
    in CI beside other jobs): what these tests check of the endpoint holds either way."""
    late = ("could not keep up", "generator was late")  # both the generator's own verdicts
    if record["status"] == "invalid" and any(why in record["reason"] for why in late):
        return False
    assert record["status"] == "ok", record["reason"]
    return True


def probe_of(record: dict[str, Any]) -> dict[str, Any]:
    return record["serve"]["probes"][0]


@pytest.mark.timing
def test_latency_counts_from_the_schedule_over_the_network():
    # A server that takes 20 ms per request, offered 100 requests/s at constant arrivals.
    with StandIn(delay_s=0.02) as server:
        # With 8 senders the client keeps up: latency is the round trip, ~20 ms.
        _key, msg = cell({"url": server.url, "max_in_flight": 8}, 100.0, 100, arrivals="constant")
        ok = measure_endpoint_cell(msg)
        # With one sender it can send 50/s at most: the requests it cannot send yet wait, and
        # the wait counts (1 request every 10 ms scheduled, 1 every 20 ms sent: request k
        # waits ~k x 10 ms, so the p50 of 100 requests after 10 warm-up is ~0.5 s) while each
        # round trip is still 20 ms. A closed loop would have reported 20 ms.
        # (Drained long enough for every request to be sent: 110 at 50/s take 2.2 s.)
        one = {"url": server.url, "max_in_flight": 1}
        _key, msg = cell(one, 100.0, 100, drain_s=2.5, arrivals="constant")
        slow = measure_endpoint_cell(msg)
    good, bad = probe_of(ok), probe_of(slow)
    assert ok["status"] == "ok", ok["reason"]
    assert 0.02 <= good["latency_s"]["p50"] < 0.1
    assert good["in_flight_full"] == 0 and good["meets_slo"]
    assert bad["round_trip_s"]["p50"] < 0.1  # the server was as fast as before ...
    assert bad["latency_s"]["p50"] > 0.3  # ... but the requests waited, and it shows
    assert bad["latency_s"]["max"] > 0.8
    assert bad["in_flight_full"] > 50
    # ... and the verdict is the client's, not the server's: no SLO miss blamed on it.
    assert slow["status"] == "invalid" and "client was saturated" in slow["reason"]
    assert "max_in_flight" in slow["reason"]


def test_an_endpoint_that_is_down_fails_the_cell_with_the_reason_and_the_next_cell_runs():
    down = {"url": f"http://127.0.0.1:{free_port()}", "startup_timeout_s": 0.3}
    with StandIn() as server:
        records = [
            run_cell(None, cell(endpoint)[1])  # the worker, as for a framework it lacks
            for endpoint in (down, {"url": server.url})
        ]
    assert records[0]["status"] == "failed"
    assert "not ready after 0.3 s" in records[0]["reason"]
    assert "connection refused" in records[0]["reason"]
    measured(records[1])


def test_an_endpoint_slow_to_start_is_waited_for():
    with StandIn(ready_after_s=0.5) as server:
        record = measure_endpoint_cell(cell({"url": server.url, "startup_timeout_s": 10})[1])
    measured(record)
    assert record["serve"]["ready_after_s"] >= 0.45


def test_http_errors_are_counted_and_never_fast():
    # Every 4th request fails: a quarter of the answers are missing, so the p99 is a failed
    # request (infinitely late), never a fast error response.
    with StandIn(fail_every=4) as server:
        record = measure_endpoint_cell(cell({"url": server.url})[1])
    probe = probe_of(record)
    if measured(record):
        assert "endpoint_errors" in record["flags"]
        assert "HTTP 500: model exploded" in record["reason"]
    assert list(probe["error_reasons"]) == ["HTTP 500: model exploded"]
    assert 0.2 <= record["metrics"]["error_rate"]["value"] <= 0.3
    assert probe["latency_s"]["p99"] is None and not probe["meets_slo"]
    assert probe["latency_s"]["n"] == probe["queries"] - probe["errors"]


def test_malformed_bodies_fail_the_cell_with_the_reason():
    with StandIn(malformed=True) as server:
        record = measure_endpoint_cell(cell({"url": server.url})[1])
    assert record["status"] == "failed"
    assert "malformed response: not JSON" in record["reason"]
    with StandIn(malformed="rows") as server:  # well-formed, but two answers for one request
        record = measure_endpoint_cell(cell({"url": server.url})[1])
    assert record["status"] == "failed"
    assert "predictions of shape [2, 1] for one example" in record["reason"]


def test_grpc_messages_match_the_protocol():
    # The client declares the v2 messages itself; kserve's generated module is the reference,
    # loaded from its file alone (the kserve package's own import takes seconds).
    import importlib.util

    found = importlib.util.find_spec("kserve")
    if found is None or not found.submodule_search_locations:
        pytest.skip("kserve is not installed (the serving extra)")
    path = Path(found.submodule_search_locations[0]) / "protocol/grpc/grpc_predict_v2_pb2.py"
    spec = importlib.util.spec_from_file_location("kserve_v2_pb2", path)
    assert spec is not None and spec.loader is not None
    pb2 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pb2)
    features = {"x": np.arange(6, dtype=np.float32).reshape(1, 6)}
    req = pb2.ModelInferRequest.FromString(wire.grpc_request(features, "mlp", "7"))
    assert (req.model_name, req.id, list(req.inputs[0].shape)) == ("mlp", "7", [1, 6])
    assert np.frombuffer(req.raw_input_contents[0], np.float32).tolist() == list(range(6))
    resp = pb2.ModelInferResponse(model_name="mlp")
    out = resp.outputs.add(name="predictions", datatype="FP32", shape=[1, 2])
    out.contents.fp32_contents.extend([0.5, 1.5])
    assert wire.grpc_response(resp.SerializeToString()).tolist() == [[0.5, 1.5]]


# -- end to end: bench serve (KServe) ------------------------------------------------------

IN_PROCESS = """
import json, sys
import numpy as np
from bench.axes import AXES, CellKey, normalize
from bench.backends import registry
from bench.inputs.synthetic import make_batch
from bench.workloads.serve.cell.inprocess import POOL, build_buckets
from bench.serve.batching import Policy

backend = registry.load("jax")
backend.setup("cpu", None)
values = {a.name: a.default for a in AXES if a.default is not ...}
values.update(workload="serve", batch_size=1, max_batch_size=1)
key = CellKey(model="mlp", **normalize(values))
built, spec = build_buckets(backend, key, Policy(1, 0.0), {"hidden": [32]}, 0)
pool = make_batch(spec, POOL, 1)
rows = [np.asarray(built[1].infer({k: pool[k][i : i + 1] for k in spec.features}))[0].tolist()
        for i in range(POOL)]
print(json.dumps(rows))
"""


@contextmanager
def bench_serve(http_port: int, grpc_port: int, log: Path) -> Iterator[subprocess.Popen]:
    # Its output goes to a file: a pipe nobody reads fills and blocks the server's logging.
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "serve", "mlp", "--framework", "jax",
         "--model-args", '{"hidden": [32]}', "--max-batch-size", "4",
         "--port", str(http_port), "--grpc-port", str(grpc_port)],
        cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


@pytest.mark.slow
@pytest.mark.heavy
def test_bench_serve_answers_what_the_model_computes_in_process_over_http_and_grpc(tmp_path):
    import importlib.util

    # Looked up, not imported: the server and the in-process run import them, in their own
    # processes (and TensorFlow and JAX never share one).
    for package, why in (("kserve", "bench serve needs the serving extra"), ("jax", "JAX")):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed ({why})")
    http_port, grpc_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    with bench_serve(http_port, grpc_port, log) as server:
        # While the server imports and compiles, compute the in-process predictions.
        expected = np.asarray(
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", IN_PROCESS], cwd=REPO, capture_output=True,
                    text=True, check=True,
                ).stdout.splitlines()[-1]
            ),
            np.float32,
        )  # fmt: skip
        records, runs = {}, {}
        for proto, url in (
            ("v2-http", f"http://127.0.0.1:{http_port}"),
            ("v2-grpc", f"127.0.0.1:{grpc_port}"),
        ):
            endpoint = {"url": url, "protocol": proto, "startup_timeout_s": 120}
            # A long drain: a request answered late is slow, not missing, and is checked too.
            _key, msg = cell(endpoint, 40.0, 60, drain_s=10.0, max_batch_size=4)
            runs[proto] = []
            records[proto] = measure_endpoint_cell(msg, keep=runs[proto])
            if records[proto]["status"] == "failed" and server.poll() is not None:
                pytest.fail(log.read_text()[-2000:])
    for proto, record in records.items():
        assert record["status"] in ("ok", "invalid"), (proto, record["reason"])
        (run,) = runs[proto]
        assert not any(run.errors), (proto, [e for e in run.errors if e][:3])
        checked = 0
        probe = record["serve"]["probes"][0]
        for i, out in enumerate(run.outputs):
            why = (proto, i, probe["dropped"], probe["latency_s"])
            assert out is not None and out.shape == (1, expected.shape[1]), why
            # Request i carries pool row i % 256; the server may batch it with others
            # (max batch 4), so equal up to float32 rounding of a different batch shape.
            np.testing.assert_allclose(out[0], expected[i % len(expected)], rtol=1e-5, atol=1e-6)
            checked += 1
        assert checked == len(run.trace.scheduled) == 70


def _serve_record(endpoint: str, probes: list[tuple[float, float | None, bool]]) -> dict:
    key = {"model": "mlp", "workload": "serve", "framework": "jax", "device": "cpu",
           "max_batch_size": 8, "target_qps": "search", "endpoint": endpoint}  # fmt: skip
    return {
        "cell_id": f"cell-{endpoint}",
        "key": key,
        "status": "ok",
        "metrics": {},
        "serve": {
            "slo": {"percentile": 99.0, "latency_ms": 50.0},
            "probes": [
                {"offered_qps": q, "slo_latency_s": lat, "meets_slo": met, "valid": True}
                for q, lat, met in probes
            ],
        },
    }


def test_server_overhead_is_the_latency_difference_at_the_same_rate():
    from bench.read.overhead import server_overhead
    from bench.read.runset import run_derived

    inproc = _serve_record("in_process", [(100.0, 0.004, True), (400.0, 0.012, True)])
    # The endpoint met the SLO up to 200 QPS (p99 30 ms there): in-process at 200 QPS lies
    # between its probes at 100 (4 ms) and 400 (12 ms): 4 + 8 x 100/300 = 6.667 ms.
    http = _serve_record("http", [(200.0, 0.030, True), (300.0, 0.090, False)])
    # This one's rate is beyond the in-process probes: no value, never extrapolated.
    far = _serve_record("far", [(800.0, 0.020, True)])
    found = server_overhead([inproc, http, far])
    assert set(found) == {"cell-http"}
    entry = found["cell-http"]["server_overhead_s"]
    assert entry["value"] == pytest.approx(0.030 - (0.004 + 0.008 / 3))
    assert "interpolated between its probes at 100 and 400 QPS" in entry["method"]
    exact = _serve_record("grpc", [(400.0, 0.015, True)])
    assert server_overhead([inproc, exact])["cell-grpc"]["server_overhead_s"]["value"] == (
        pytest.approx(0.003)
    )
    # The reading side's run-derived entries carry it, for compare, report and --where.
    assert "server_overhead_s" in run_derived([inproc, http])["cell-http"]
    # An in-process twin at a fixed rate (a cell of its own) that measured the very rate wins
    # over the search's straight line.
    fixed = _serve_record("in_process", [(200.0, 0.005, True)])
    fixed["cell_id"], fixed["key"]["target_qps"] = "cell-fixed", 200.0
    entry = server_overhead([inproc, fixed, http])["cell-http"]["server_overhead_s"]
    assert entry["value"] == pytest.approx(0.025) and "cell-fixed" in entry["method"]


def test_a_serve_cell_that_met_the_slo_at_no_rate_is_read_not_refused(tmp_path):
    # ok, flag slo_unmet, and its throughput unavailable with the reason: a finished record.
    from bench.metrics import unavailable
    from bench.read.runset import _check_record
    from bench.runfolder import ResultsError

    record = _serve_record("http", [(16.7, 0.4, False)])
    record["metrics"] = {"examples_per_s": unavailable("SLO not met at any rate", "examples/s")}
    _check_record(tmp_path, record)
    record["metrics"] = {}  # no throughput and no reason: truncated
    with pytest.raises(ResultsError, match="no examples_per_s"):
        _check_record(tmp_path, record)


def test_the_search_grows_past_an_estimated_top_that_meets_the_slo():
    # An endpoint's top is its capacity as a Python client measured it: where that meets the
    # SLO, the search doubles it (up to 3 times) before it halves the bracket.
    from bench.serve.search import search

    def probe(rate: float) -> dict[str, Any]:  # the SLO holds up to 700 requests/s
        return {"offered_qps": rate, "meets_slo": rate <= 700, "invalid_reason": "",
                "slo_latency_s": 0.01 if rate <= 700 else 0.1}  # fmt: skip

    found = search(probe, low=50.0, high=200.0, tolerance=0.05, grow=3)
    assert 700 / 1.05 <= found.max_qps <= 700
    assert found.bracket[1] is not None and found.bracket[1] > 700
    capped = search(probe, low=50.0, high=50.0 * 1.5, grow=2)  # 75 -> 150 -> 300, all met
    assert capped.max_qps == 300.0 and capped.bracket == (300.0, None)
    assert search(probe, low=50.0, high=200.0).max_qps == 200.0  # no growth asked: as before


def test_bench_serve_without_kserve_says_how_to_install_it(capsys):
    import importlib.util

    if importlib.util.find_spec("kserve") is not None:
        pytest.skip("kserve is installed here: the message is for where it is not")
    from bench.cli import main

    assert main(["serve", "mlp", "--port", str(free_port())]) == 2
    assert "pip install 'bench[serving]'" in capsys.readouterr().err

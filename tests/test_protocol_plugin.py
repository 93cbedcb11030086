"""An endpoint protocol added without editing bench: the "Add an endpoint protocol" example of
docs/extending.md, taken from the page and registered from this test, drives a stand-in server
through the runner and a real worker process; its cells show in ``bench results``, ``bench
compare`` and ``--where``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.run.scenario import ScenarioError, load_scenario
from bench.serve import protocols
from tests.conftest import REPO
from tests.fixtures.page_plugin import plugin_from_page

PAGE = REPO / "docs" / "extending.md"
MODULE = "csv_protocol"


def scenario(url: str) -> str:
    return f"""\
name: csv
description: an MLP behind a stand-in server that speaks CSV
model: mlp
model_args: {{hidden: [8]}}
workload: serve
framework: jax
device: cpu
arrivals: constant
endpoint: toy
matrix:
  target_qps: [40.0, 80.0]
endpoints:
  toy: {{url: "{url}", protocol: csv-http, model_name: mlp, max_in_flight: 4,
        startup_timeout_s: 10}}
slo: {{percentile: 95, latency_ms: 200}}
measure:
  timeout_s: 120
  serve: {{min_queries: 60, min_seconds: 0.5, warmup_queries: 10, max_seconds: 10,
          drain_s: 1.0}}
"""


class CsvServer:
    """Answers every CSV row with two predictions; ``calls`` counts the rows it read."""

    def __init__(self) -> None:
        self.rows = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer(200 if self.path == "/health" else 404, b"ok")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                lines = body.decode().splitlines()
                ok = self.path == "/predict/mlp" and self.headers["Content-Type"] == "text/csv"
                outer.rows += len(lines)
                answer = "\n".join("0.25,0.75" for _ in lines).encode()
                self._answer(200 if ok else 400, answer if ok else b"wrong route")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> CsvServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def csv_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with plugin_from_page(PAGE, MODULE, tmp_path / "plugins", monkeypatch) as module:
        yield module.PROTOCOL
        protocols.unregister("csv-http")


def test_an_unregistered_protocol_is_refused_by_name(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(scenario("http://127.0.0.1:9"))
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert "endpoints.toy.protocol: got 'csv-http'; expected one of: v2-http" in str(err.value)


def test_the_codec_round_trips_the_page_example(csv_protocol):
    import numpy as np

    body = csv_protocol.encode({"b": np.array([[2.0]]), "a": np.array([[1.0, 1.5]])}, "m", "0")
    assert body == b"1.0,1.5,2.0"
    assert csv_protocol.decode(b"0.25,0.75").tolist() == [[0.25, 0.75]]
    with pytest.raises(ValueError, match="not CSV numbers"):
        csv_protocol.decode(b"<html>")


@pytest.mark.slow
@pytest.mark.heavy
def test_the_page_protocol_drives_a_server_through_a_worker(csv_protocol, tmp_path, capsys):
    results = tmp_path / "results"
    with CsvServer() as server:
        path = tmp_path / "csv.yaml"
        path.write_text(scenario(server.url))
        runs = []
        for _ in range(2):
            assert main(["run", str(path), "--results-dir", str(results)]) == 0
            runs.append(max(results.iterdir(), key=lambda p: p.stat().st_mtime))
            capsys.readouterr()
    assert server.rows >= 2 * 2 * 70  # two runs of two cells of 10 warm-up + 60 requests
    records = [json.loads(line) for line in (runs[0] / "cells.jsonl").read_text().splitlines()]
    for r in records:
        # On a busy machine a rate can be invalid (the generator fell behind): still measured.
        assert r["status"] == "ok" or "could not keep up" in r["reason"], r["reason"]
        assert r["serve"]["endpoint"]["protocol"] == "csv-http"
        assert r["metrics"]["error_rate"]["value"] == 0.0
        assert r["metrics"]["request_latency_s"]["n"] >= 60

    assert main(["results", str(runs[0]), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["endpoint"] for r in rows] == ["toy", "toy"]
    where = ["--where", "endpoint==toy", "--where", "target_qps==80.0", "--where", "error_pct<=0"]
    assert main(["compare", str(runs[0]), str(runs[1]), *where, "--format", "json"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert len(groups) == 1 and groups[0]["match"].get("target_qps", "80.0") == "80.0"
    latency = [m for g in groups for m in g["metrics"] if m["field"].startswith("latency_p")]
    assert latency and all(len(m["values"]) == 2 for m in latency)

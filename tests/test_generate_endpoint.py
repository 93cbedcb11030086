"""Generate cells with an ``endpoint`` (issue 23): validation of the endpoints they load, the cell
against the stand-in streaming server (tests.fixtures.sse_server), the server's TTFT and TPOT
overhead read from a run, and end to end: ``bench serve decoder`` in a subprocess beside the
in-process engine in one ``bench run``, the same greedy tokens for every request, and the
bearer token nowhere in what the run wrote or printed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.run.runner import cell_message
from bench.run.scenario import ScenarioError, load_scenario
from bench.workloads.generate.cell.endpoint import ENGINE_ONLY, measure_endpoint_cell
from tests.conftest import REPO, bench_cmd
from tests.test_gen_client import stand_in

MODEL_ARGS = "{d_model: 32, num_layers: 2, num_heads: 2, vocab_size: 64, max_positions: 128}"
SCENARIO = """\
name: gen_endpoint
model: decoder
model_args: {model_args}
workload: generate
matrix: {{endpoint: [in_process, far]}}
arrivals: poisson
target_qps: {rate}
slots: 4
cache_len: 64
slo: {{percentile: 99, ttft_ms: {ttft_ms}, tpot_ms: 50}}
generate: {{prompt_tokens: {{uniform: [4, 16]}}, output_tokens: 8, requests: {requests},
           prompt_buckets: [16], warmup_requests: 2}}
endpoints:
  far: {endpoint}
"""


def scenario(tmp_path: Path, endpoint: str, rate: float = 8, ttft_ms: float = 500,
             requests: int = 16) -> Path:  # fmt: skip
    path = tmp_path / "gen_endpoint.yaml"
    path.write_text(SCENARIO.format(model_args=MODEL_ARGS, endpoint=endpoint, rate=rate,
                                    ttft_ms=ttft_ms, requests=requests))  # fmt: skip
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as found:
        load_scenario(path)
    return str(found.value).splitlines()


# -- validation ------------------------------------------------------------------------------

OPENAI = '{url: "http://127.0.0.1:8000", protocol: openai-completions, model_name: org/m-1'


def test_a_generate_endpoint_with_the_issues_fields_is_valid(tmp_path):
    loaded = load_scenario(scenario(tmp_path, OPENAI + (
        ", hold_length: [min_tokens, ignore_eos], temperature: 0, max_in_flight: 64, "
        "token_ids: false, timeout_s: 300, token_env: VERTEX_TOKEN}"
    )))  # fmt: skip
    assert [c.key["endpoint"] for c in loaded.cells] == ["in_process", "far"]


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ('{url: "http://127.0.0.1:8000", protocol: v2-http, model_name: m}',
         "endpoints.far.protocol: 'v2-http' is a serve protocol; expected one of "
         "openai-completions, openai-chat"),
        (OPENAI + ", temperature: 7}", "endpoints.far.temperature: 7; expected a number from 0 to 2"),
        (OPENAI + ", hold_length: [min_tokenz]}",
         "endpoints.far.hold_length: 'min_tokenz'; expected any of min_tokens, ignore_eos"),
        (OPENAI + ", max_event_kib: 0}", "endpoints.far.max_event_kib: got 0"),
        (OPENAI + ", timeout_s: 0.0}", "endpoints.far.timeout_s: got 0.0"),
        ('{url: "ftp://h:1", protocol: openai-chat, model_name: m}', "endpoints.far.url: "),
        (OPENAI + ', token_env: "1BAD"}', "endpoints.far.token_env: "),
        ('{url: "http://10.0.0.9:8000", protocol: openai-chat, model_name: m, token_env: T}',
         "endpoints.far.token_env: "),
        (OPENAI + ", protocol2: x}", "endpoints.far.protocol2: unknown key"),
    ],
)  # fmt: skip
def test_a_generate_endpoint_out_of_bounds_is_refused_naming_file_line_and_field(
    tmp_path, endpoint, why
):
    path = scenario(tmp_path, endpoint)
    found = problems(path)
    assert any(line.startswith(f"{path}:") and why in line for line in found), found


def test_a_serve_endpoint_refuses_the_generation_protocols_and_fields(tmp_path):
    path = tmp_path / "serve.yaml"
    head = (
        "name: s\nmodel: mlp\nworkload: serve\nmatrix: {endpoint: [e]}\n"
        "slo: {percentile: 99, latency_ms: 50}\nendpoints:\n  e: "
    )
    path.write_text(head + "{url: 'http://127.0.0.1:1', protocol: openai-chat, model_name: m}\n")
    assert any(
        "endpoints.e.protocol: 'openai-chat' streams generated text; expected one of v2-http"
        in line
        for line in problems(path)
    )
    path.write_text(head + "{url: 'http://127.0.0.1:1', protocol: v2-http, model_name: m, "
                    "token_ids: true}\n")  # fmt: skip
    assert any(
        "endpoints.e.token_ids: a generation field; expected none on a v2-http endpoint" in line
        for line in problems(path)
    )


# -- the cell against the stand-in server --------------------------------------------------------


def endpoint_cell(path: Path) -> dict[str, Any]:
    loaded = load_scenario(path)
    (far,) = [c for c in loaded.cells if c.key["endpoint"] == "far"]
    return measure_endpoint_cell(cell_message(loaded, far))


def test_an_endpoint_cell_has_the_in_process_metrics_and_says_what_it_cannot_see(tmp_path):
    with stand_in(20.0, 2.0, 5.0) as url:
        path = scenario(
            tmp_path,
            f'{{url: "{url}", protocol: openai-completions, model_name: m, max_in_flight: 16}}',
        )
        rec = endpoint_cell(path)
    assert rec["status"] == "ok", rec["reason"]
    m, block = rec["metrics"], rec["generate"]
    # The stand-in answers 20 ms after the request, then a token every 2 ms: a median TTFT
    # of at least 20 ms, a TPOT of about 2 ms.
    assert 0.020 <= m["ttft_s"]["p50"] < 0.5 and 0.0015 < m["tpot_s"]["p50"] < 0.05
    assert m["output_tokens_per_s"]["value"] > 0 and m["goodput_rps"]["value"] > 0
    for name in ENGINE_ONLY:
        assert "inside the engine" in m[name]["unavailable"]
    assert block["prompts"].startswith("synthesised text")  # not bench's own server
    (probe,) = block["probes"]
    assert probe["client"]["token_counts"]["compared"] == 16
    assert probe["client"]["flags"] == [] and rec["flags"] == []
    assert len(rec["samples"]["ttft_s"]) == 16


def test_a_rate_the_client_could_not_send_is_invalid_and_flagged_client_saturated(tmp_path):
    # One sender, each request holding it ~40 ms (20 ms to the first token, 8 tokens 2 ms
    # apart, 5 ms to the usage chunk), at 50 requests/s: Little's law needs ~2 senders.
    with stand_in(20.0, 2.0, 5.0) as url:
        path = scenario(
            tmp_path,
            f'{{url: "{url}", protocol: openai-completions, model_name: m, max_in_flight: 1}}',
            rate=50, ttft_ms=30,
        )  # fmt: skip
        rec = endpoint_cell(path)
    assert rec["status"] == "invalid" and "client_saturated" in rec["flags"], rec
    assert (
        rec["reason"].startswith("the client was saturated: ") and "sender slots" in rec["reason"]
    )


# -- the server's overhead, read from a run ------------------------------------------------------


def probe(rate: float | None, ttft: float, tpot: float) -> dict[str, Any]:
    return {"offered_qps": rate, "valid": True, "meets_slo": True,
            "ttft_s": {"p50": ttft}, "tpot_s": {"p50": tpot}}  # fmt: skip


def record(cell_id: str, endpoint: str, *probes: dict[str, Any]) -> dict[str, Any]:
    key = {"workload": "generate", "model": "decoder", "endpoint": endpoint, "target_qps": 8.0}
    block = {"slo": {"percentile": 99.0, "ttft_ms": 500.0}, "probes": list(probes)}
    return {"cell_id": cell_id, "key": key, "status": "ok", "metrics": {}, "generate": block}


def test_the_servers_overhead_is_the_median_difference_at_the_same_rate():
    from bench.read.overhead import generation_overhead
    from bench.read.runset import run_derived

    inproc = record("in", "in_process", probe(8.0, 0.004, 0.0010))
    served = record("far", "far", probe(8.02, 0.007, 0.0012))  # 0.25% apart: the same rate
    found = generation_overhead([inproc, served])["far"]
    # 7 - 4 ms and 1.2 - 1.0 ms.
    assert found["server_ttft_overhead_s"]["value"] == pytest.approx(0.003)
    assert found["server_tpot_overhead_s"]["value"] == pytest.approx(0.0002)
    assert "minus in-process cell in" in found["server_ttft_overhead_s"]["method"]
    assert set(run_derived([inproc, served])["far"]) >= set(found)
    elsewhere = record("far", "far", probe(9.0, 0.007, 0.0012))  # 12% apart: no twin
    assert generation_overhead([inproc, elsewhere]) == {}
    offline = record("far", "far", probe(None, 0.007, 0.0012))  # no rate to match
    assert generation_overhead([inproc, offline]) == {}


# -- end to end: bench serve decoder beside the in-process engine --------------------------------

TOKEN = "e2e-s3cr3t-Bearer-t0k3n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(proc: subprocess.Popen, port: int, log: Path) -> None:
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"bench serve decoder ended: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"bench serve decoder did not listen: {log.read_text()[-2000:]}")


@pytest.mark.slow
@pytest.mark.heavy
def test_served_and_in_process_cells_generate_the_same_tokens_and_the_token_stays_secret(
    tmp_path, capsys
):
    pytest.importorskip("uvicorn", reason="bench serve decoder needs the serving extra")
    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "BENCH_E2E_TOKEN": TOKEN}
    with log.open("wb") as out:
        server = subprocess.Popen(
            bench_cmd("serve", "decoder", "--model-args", json.dumps(
                {"d_model": 32, "num_layers": 2, "num_heads": 2, "vocab_size": 64,
                 "max_positions": 128}), "--slots", "4", "--cache-len", "64",
                "--prompt-buckets", "16", "--port", str(port)),
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        wait_ready(server, port, log)
        path = scenario(
            tmp_path,
            f'{{url: "http://127.0.0.1:{port}", protocol: openai-completions, model_name: '
            "decoder, hold_length: [min_tokens, ignore_eos], token_ids: true, max_in_flight: 16, "
            "token_env: BENCH_E2E_TOKEN}",
            requests=24,
        )
        results = tmp_path / "results"
        done = subprocess.run(
            bench_cmd("run", str(path), "--results-dir", str(results)), cwd=REPO, env=env,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    records = {
        json.loads(line)["key"]["endpoint"]: json.loads(line)
        for line in (run_dir / "cells.jsonl").read_text().splitlines()
    }
    inproc, served = records["in_process"], records["far"]
    assert inproc["status"] == served["status"] == "ok", (inproc["reason"], served["reason"])
    assert served["generate"]["prompts"].startswith("token ids")
    assert "server_note" not in served["generate"], served["generate"]["server_note"]
    digests = inproc["generate"]["token_digests"]
    assert len(digests) == 24 and None not in digests
    assert served["generate"]["token_digests"] == digests  # every request, token for token

    outputs = [done.stdout, done.stderr]
    assert main(["compare", str(run_dir)]) == 0
    outputs.append(capsys.readouterr().out)
    assert "server TTFT overhead" in outputs[-1] and "server TPOT overhead" in outputs[-1]
    assert main(["compare", str(run_dir), "--format", "json"]) == 0
    outputs.append(capsys.readouterr().out)
    for fmt in ("html", "md"):
        report = tmp_path / f"report.{fmt}"
        assert main(["report", str(run_dir), "--format", fmt, "-o", str(report)]) == 0
    outputs.append(capsys.readouterr().out + capsys.readouterr().err)
    report_md = (tmp_path / "report.md").read_text()
    assert "| configuration | TTFT overhead ms | TPOT overhead ms |" in report_md
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in run_dir.iterdir())  # the worker's log is searched
    for p in written:
        assert TOKEN.encode() not in p.read_bytes(), p
    for text in outputs:
        assert TOKEN not in text
    assert "BENCH_E2E_TOKEN" in json.dumps(served["generate"]["endpoint"])  # its name is kept
    assert sys.executable  # the subprocesses ran this interpreter


def test_a_search_is_bounded_by_the_offline_rate_and_reports_a_met_rate(tmp_path):
    with stand_in(10.0, 1.0, 2.0) as url:
        path = scenario(
            tmp_path,
            f'{{url: "{url}", protocol: openai-completions, model_name: m, max_in_flight: 8}}',
            ttft_ms=2000,
        )
        text = path.read_text().replace("target_qps: 8", "target_qps: search")
        path.write_text(text + "measure: {serve: {tolerance: 0.5}}\n")
        rec = endpoint_cell(path)
    assert rec["status"] == "ok", rec["reason"]
    block = rec["generate"]
    offline, *probes = block["probes"]
    assert offline["offered_qps"] is None and probes
    # The offline load's request rate bounds the search; with a generous slo it is met, so
    # rates above it are tried (it is only an estimate of the server's capacity).
    assert block["search"]["offline_qps"] == offline["requests_per_s"]
    assert rec["metrics"]["max_compliant_qps"]["value"] >= offline["requests_per_s"]
    assert max(p["offered_qps"] for p in probes) > offline["requests_per_s"]


def test_a_kept_alive_connection_the_server_closed_while_idle_is_opened_again():
    # The server closes the first connection unanswered (uvicorn's idle keep-alive ends one
    # after 5 s), then streams on the next: the request succeeds, sent once more.
    import threading

    from bench.serve.generation.stream import GenEndpoint, StreamClient

    events = (
        b'data: {"choices":[{"text":" a","finish_reason":"length"}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n'
        b"data: [DONE]\n\n"
    )
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: "
        + str(len(events)).encode() + b"\r\n\r\n" + events
    )  # fmt: skip
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        for k in range(2):
            conn, _ = listener.accept()
            accepted.append(k)
            if k == 0:
                conn.recv(1)  # wait until the client has sent its request, then close unread
                conn.close()
                continue
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            conn.sendall(answer)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    client = StreamClient(GenEndpoint(f"http://127.0.0.1:{port}", "openai-completions", "m"))
    sender = client.sender()
    sender.open()  # the pool's connection, opened ahead of the load
    got = sender.stream(client.body("x", 1), time.perf_counter)
    thread.join(5)
    listener.close()
    assert got.error == "" and got.completion_tokens == 1 and accepted == [0, 1]


def test_token_ids_go_to_benchs_own_server_over_completions_only(tmp_path):
    from bench.serve.generation.requests import GenRequest
    from bench.workloads.generate.cell.endpoint import _prompts

    card = {"owned_by": "bench", "bench": {"model": "decoder", "model_args": {}}}  # no seed
    asked = GenRequest(0, 0.0, 5, 4, seed=3)
    for protocol, kind, said in (
        ("openai-completions", list, "token ids"), ("openai-chat", str, "synthesised text"),
    ):  # fmt: skip
        path = scenario(tmp_path, f'{{url: "http://127.0.0.1:1", protocol: {protocol}, '
                                  "model_name: decoder}")  # fmt: skip
        loaded = load_scenario(path)
        msg = cell_message(loaded, loaded.cells[1])
        block: dict[str, Any] = {}
        prompt = _prompts(card, 64, block, msg)(asked)
        assert isinstance(prompt, kind) and len(prompt if kind is list else prompt.split()) == 5
        assert block["prompts"].startswith(said)
        if kind is list:  # the card states no seed nor framework, and other model_args
            note = block["server_note"]
            assert note.startswith("the server's model_args, seed, framework differ"), note

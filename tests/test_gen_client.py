"""The generation client against a stand-in streaming server (issue 23): times from the chunks
that carry text and from the scheduled arrival, every hostile stream an error with its reason
while the load goes on, a saturated client said to be one, a token never written.

The stand-in (``tests.fixtures.sse_server``) runs in its own process with set delays. The
verdicts here rest on what the server cannot do early (a token before its delay) and on counts,
never on how promptly this machine ran: the 1 ms agreement of TTFT and TPOT with the set
delays is ``test_ttft_and_tpot_match_the_set_delays_at_50_concurrent_streams``, a timing test.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from bench.serve.endpoint import EndpointError
from bench.serve.generation.client_checks import (
    client_check,
    facts,
    output_lengths,
    prompt_lengths,
    token_agreement,
)
from bench.serve.generation.client_load import GenLoad, default_prompt, drive
from bench.serve.generation.prompt_text import synth_prompt
from bench.serve.generation.record import Generated
from bench.serve.generation.requests import GenRequest
from bench.serve.generation.stream import GenEndpoint, StreamClient, problems
from tests.conftest import REPO
from tests.fixtures.tls import self_signed

FIRST_MS, TOKEN_MS, USAGE_MS = 30.0, 10.0, 40.0


@contextmanager
def stand_in(first_ms: float, token_ms: float, usage_ms: float) -> Iterator[str]:
    with server(
        "tests.fixtures.sse_server", "--first-ms", str(first_ms), "--token-ms", str(token_ms),
        "--usage-ms", str(usage_ms),
    ) as where:  # fmt: skip
        yield where


@contextmanager
def server(module: str, *args: str) -> Iterator[str]:
    """A server module run as its own process, which prints ``PORT <n>`` once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            assert pipe is not None
            pipe.close()


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with stand_in(FIRST_MS, TOKEN_MS, USAGE_MS) as where:
        yield where


def requests(n: int, gap_s: float, output: int = 8, prompt: int = 12) -> list[GenRequest]:
    return [GenRequest(i, i * gap_s, prompt, output, seed=100 + i) for i in range(n)]


def modes(*names: str):
    """A prompt per request that asks the stand-in for one behaviour each, in order."""

    def prompt(r: GenRequest) -> str:
        return f"mode={names[r.index]}; " + synth_prompt(r.prompt_tokens, r.seed)

    return prompt


@pytest.mark.parametrize("protocol", ["openai-chat", "openai-completions"])
def test_ttft_counts_the_first_text_chunk_and_usage_never_moves_the_end(url, protocol):
    # The chat stand-in sends a role-only chunk at once (vLLM #15106): counted as a token,
    # it would make TTFT about 0; and the usage chunk 40 ms after the last token, which would
    # move the end by 40 ms.
    load = drive(requests(6, 0.02), GenEndpoint(url, protocol, "m", timeout_s=10), slots=6)
    for rec, released in zip(load.records, load.released, strict=True):
        assert rec.ok, rec.error
        assert len(rec.chunk_times) == rec.output_tokens == 8  # text chunks only
        assert rec.chunk_tokens == [1] * 8
        assert rec.ttft >= FIRST_MS / 1e3  # the server sends no token before its delay
        assert rec.started is not None and rec.scheduled <= rec.started <= rec.first_token
        # The stream went on 40 ms after the last token (usage, then [DONE]); the end is the
        # last text chunk's time, which no later chunk adds to (8 times for 8 tokens above).
        assert rec.end == rec.chunk_times[-1] < released
        assert (rec.server_prompt_tokens, rec.server_output_tokens) == (12, 8)
        assert rec.tpot == pytest.approx((rec.end - rec.first_token) / 7)
    assert load.finish_reasons == ["length"] * 6
    assert load.fields == [["content" if protocol == "openai-chat" else "text"]] * 6
    assert token_agreement(load.records)["disagree"] == 0
    assert prompt_lengths(load.records)["ratio_p50"] == 1.0


HOSTILE = {
    # mode: the reason its request fails with (None: it succeeds)
    "ok": None,
    "forever": "timed out after 1 s",
    "huge": "stream refused: an event over 1,048,576 bytes",
    "badjson": "malformed stream: invalid JSON in a chunk",
    "error_event": 'error event from the server: {"message": "engine died"}',
    "error_data": "error in the stream: out of memory",
    "429": 'HTTP 429: {"error": "busy',
    "503": 'HTTP 503: {"error": "busy',
    "close_after_headers": "connection closed mid-stream (before any text chunk)",
    "cut": "connection closed mid-stream (after 3 text chunks)",
    "json": "not a server-sent event stream (Content-Type 'application/json'",
    "trickle": None,  # the first text event one byte per TCP segment
    "multi": None,  # two tokens a chunk (speculative decoding)
    "reasoning": None,
    "usage_each": None,
    "no_done": None,  # a clean end after the finish reason, without [DONE]
}


def test_a_completions_prompt_may_be_token_ids(url):
    # Where bench knows the server's tokenizer (the zoo decoder behind a server), prompts of
    # exact lengths: the server counts the ids it was sent.
    endpoint = GenEndpoint(url, "openai-completions", "m")
    load = drive(requests(2, 0.0, prompt=7), endpoint, 2, prompt=lambda r: [r.seed] * 7)
    assert [r.server_prompt_tokens for r in load.records] == [7, 7]
    with pytest.raises(ValueError, match="token ids need openai-completions"):
        drive(requests(1, 0.0), GenEndpoint(url, "openai-chat", "m"), 1, prompt=lambda r: [1])


def test_token_ids_where_the_server_returns_them(url):
    endpoint = GenEndpoint(url, "openai-completions", "m", token_ids=True)
    load = drive(requests(2, 0.0, output=6), endpoint, 2, prompt=modes("ok", "multi"))
    one, two = load.records
    assert one.tokens == two.tokens == list(range(6))  # every generated id, in order
    assert one.chunk_tokens == [1] * 6 and two.chunk_tokens == [2, 2, 2]  # counted by ids


def test_hostile_streams_each_fail_their_request_with_the_reason_and_the_load_goes_on(url):
    names = [*HOSTILE, "ok"]
    endpoint = GenEndpoint(url, "openai-chat", "m", timeout_s=1.0)
    load = drive(requests(len(names), 0.01, output=6), endpoint, 6, prompt=modes(*names))
    for name, rec in zip(names, load.records, strict=True):
        want = HOSTILE[name]
        if want is None:
            assert rec.ok and rec.error == "", (name, rec.error)
            assert rec.server_output_tokens == 6 == sum(rec.chunk_tokens), name
        else:
            assert rec.error.startswith(want), (name, rec.error)
            assert not rec.ok and rec.ttft is None and rec.latency is None
    by = dict(zip(names, load.records, strict=False))
    assert by["multi"].chunk_tokens == [2, 2, 2] and by["multi"].tpot is not None
    assert by["usage_each"].chunk_tokens == [1] * 6
    assert load.fields[names.index("reasoning")] == ["reasoning_content", "content"]
    assert facts(load)["text_fields"] == {"content": 7, "reasoning_content": 1}
    assert by["reasoning"].ttft >= FIRST_MS / 1e3 and len(by["reasoning"].chunk_times) == 6


def test_each_sender_keeps_its_connection_across_requests(url):
    # Read to its end after [DONE], a stream leaves its connection ready for the next request.
    def accepted() -> int:
        with urllib.request.urlopen(url + "/connections", timeout=5) as answer:
            return int(answer.read())  # this question's own connection included

    before = accepted()
    load = drive(requests(12, 0.005, output=3), GenEndpoint(url, "openai-chat", "m"), 3)
    assert all(r.ok for r in load.records)
    assert accepted() - before == 3 + 1  # the three senders' connections, and the question


def test_a_real_asgi_stack_streams_as_the_stand_in_does():
    # Starlette's StreamingResponse on uvicorn, as vLLM's and KServe's OpenAI routes are
    # built: its chunked encoding and events are read alike.
    with server("tests.fixtures.asgi_sse_app") as where:
        endpoint = GenEndpoint(where, "openai-chat", "m", timeout_s=10)
        assert StreamClient(endpoint).wait_ready() >= 0
        load = drive(requests(6, 0.01, output=5), endpoint, 6)
    for rec in load.records:
        assert rec.ok, rec.error
        assert rec.chunk_tokens == [1] * 5 and rec.server_output_tokens == 5
        assert rec.server_prompt_tokens == 12
    found = facts(load)
    assert found["token_counts"]["disagree"] == 0 and not found["client"]["slots_bound"]


def test_over_https_a_stream_is_read_and_an_endless_one_bounded(tmp_path, monkeypatch):
    # Every read of a TLS connection keeps the request's deadline too.
    pytest.importorskip("cryptography")
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts the stand-in's
    certs = ("--cert", str(cert), "--key", str(key))
    with server("tests.fixtures.sse_server", "--first-ms", "5", "--token-ms", "5", *certs) as at:
        endpoint = GenEndpoint(at.replace("http://", "https://"), "openai-chat", "m", timeout_s=1)
        load = drive(requests(2, 0.0, output=4), endpoint, 2, prompt=modes("ok", "forever"))
    ok, endless = load.records
    assert ok.ok and len(ok.chunk_times) == 4, ok.error
    assert endless.error == "timed out after 1 s" and len(endless.chunk_times) > 4


def test_a_failure_no_check_foresaw_fails_its_request_not_the_load(url, monkeypatch):
    from bench.serve.generation import openai

    real = openai.read_chunk

    def read_chunk(data: str) -> openai.Chunk:
        if "w " in data:  # a chunk with text: the stand-in's tokens are "w "
            raise RuntimeError("a bug in reading a chunk")
        return real(data)

    monkeypatch.setattr(openai, "read_chunk", read_chunk)
    load = drive(requests(3, 0.0, output=2), GenEndpoint(url, "openai-chat", "m"), 2)
    assert [r.error for r in load.records] == [
        "client error: RuntimeError: a bug in reading a chunk"
    ] * 3


def test_a_load_cut_off_at_drain_s_says_which_requests_it_left():
    with stand_in(20, 50, 0) as where:
        endpoint = GenEndpoint(where, "openai-completions", "m", timeout_s=30)
        load = drive(
            requests(3, 0.0, output=4), endpoint, 1, prompt=modes("ok", "forever", "ok"),
            drain_s=1.2,
        )  # fmt: skip
        # The endless stream is cut at the cutoff, while the server still sends: its sender
        # does not stream on for 30 s beside whatever runs next.
        for thread in threading.enumerate():
            if thread.name.startswith("bench-gen-send-"):
                thread.join(timeout=5)
                assert not thread.is_alive()
    first, endless, queued = load.records
    assert first.ok
    assert endless.error.startswith("unfinished when the load ended")
    assert queued.error.startswith("never sent") and queued.started is None
    assert load.seconds < 5  # not the endless stream's 30 s timeout


TOKEN = "tok-3f9a1c2b7e6d5f4a"


def test_a_bearer_token_appears_nowhere_in_what_the_client_returns_or_logs(
    url, monkeypatch, caplog, capsys
):
    monkeypatch.setenv("GEN_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    endpoint = GenEndpoint(url, "openai-chat", "m", timeout_s=5, token_env="GEN_TOKEN")
    load = drive(
        requests(4, 0.005), endpoint, 4, prompt=modes("ok", "echo_auth", "error_data", "ok")
    )
    # The stand-in echoed the Authorization header into its answers: the token was sent, and
    # the reasons recorded say so without it.
    assert "Bearer ***" in load.records[1].error and "Bearer ***" in load.records[2].error
    assert load.records[0].ok and load.records[3].ok
    facts = [client_check(load), token_agreement(load.records), prompt_lengths(load.records)]
    written = repr(load) + json.dumps(facts) + json.dumps(endpoint.to_record())
    written += json.dumps([vars(r) for r in load.records])
    out = capsys.readouterr()
    assert TOKEN not in written + out.out + out.err + caplog.text
    # Over plain http to another host it never leaves; the refusal does not repeat it.
    away = GenEndpoint("http://10.1.2.3:8000", "openai-chat", "m", token_env="GEN_TOKEN")
    with pytest.raises(EndpointError, match="clear text") as refused:
        StreamClient(away)
    assert TOKEN not in str(refused.value)


def test_one_sender_slot_at_a_rate_that_needs_more_is_a_saturated_client_not_a_slow_server(url):
    # Each stream holds its slot at least 30 + 7 * 10 + 40 = 140 ms (the stand-in's schedule),
    # so requests 100 ms apart (10 requests/s) need at least 1.4 slots by Little's law, and
    # each finds the one slot busy: saturated, however fast this machine is. Eight slots are
    # enough unless a stream takes over 800 ms or the generator falls 35 ms behind.
    endpoint = GenEndpoint(url, "openai-completions", "m", timeout_s=10)
    load = drive(requests(8, 0.1), endpoint, 1)
    one = client_check(load)
    assert one["saturated"] and one["slots_bound"] and "1 sender slots busy" in one["reason"]
    assert facts(load)["flags"] == ["client_saturated"]
    assert one["all_busy"] == 7 and one["needed_slots"] >= 1.4
    enough = client_check(drive(requests(8, 0.1), endpoint, 8))
    # Beside a busy core the generator itself may fall behind, which is said apart (and is a
    # saturated client too); the slots are what this test is about.
    assert not enough["slots_bound"] and enough["all_busy"] == 0, enough["reason"]


def test_the_server_is_waited_for_and_a_server_that_is_down_says_so(url):
    assert StreamClient(GenEndpoint(url, "openai-chat", "m")).wait_ready() >= 0
    down = GenEndpoint("http://127.0.0.1:9", "openai-chat", "m", startup_timeout_s=0.3)
    with pytest.raises(EndpointError, match=r"not ready after 0.3 s \(last: connection refused"):
        StreamClient(down).wait_ready()
    vertex = "https://x-aiplatform.googleapis.com/v1/projects/p/endpoints/e/chat/completions"
    assert StreamClient(GenEndpoint(vertex, "openai-chat", "m")).ready_path() is None


def test_endpoint_fields_out_of_bounds_are_refused_by_name():
    bad = GenEndpoint(
        "ftp://x", "openai-chat", "", timeout_s=0, max_event_kib=0, hold_length=("top_k",),
        temperature=float("nan"), max_in_flight=0,
    )  # fmt: skip
    found = " | ".join(problems(bad))
    for name in ("url:", "model_name:", "timeout_s:", "max_event_kib:", "hold_length:",
                 "temperature:", "max_in_flight:"):  # fmt: skip
        assert name in found
    assert problems(GenEndpoint("http://h:1", "openai-chats", "m"))[0].startswith("protocol:")
    with pytest.raises(EndpointError, match="url:"):
        StreamClient(bad)
    with pytest.raises(ValueError, match="slots"):
        drive([], GenEndpoint("http://h:1", "openai-chat", "m"), 0)
    # A scenario's block as YAML reads it: a list for hold_length.
    block = {"url": "http://h:1", "protocol": "openai-chat", "model_name": "m",
             "hold_length": ["ignore_eos"], "max_in_flight": 8}  # fmt: skip
    assert GenEndpoint(**block).hold_length == ("ignore_eos",)
    assert problems(GenEndpoint(**block)) == []


def test_synthesised_prompts_are_seeded_and_of_the_asked_words():
    assert synth_prompt(50, 7) == synth_prompt(50, 7) != synth_prompt(50, 8)
    assert len(synth_prompt(50, 7).split(" ")) == 50


# -- the client's facts on loads made up here (no server, no timing) ------------------------


def made_load(holds: list[float], gap: float, slots: int, busy: int, late: float = 0.0) -> GenLoad:
    n = len(holds)
    recs = [Generated(i, i * gap, 10, 4, started=i * gap) for i in range(n)]
    issued = np.array([i * gap * (1 + late) for i in range(n)])
    released = np.array([i * gap + h for i, h in enumerate(holds)])
    return GenLoad(recs, issued, released, [[]] * n, [None] * n, slots, busy, 1.0, 0.1, "x")


def test_saturation_is_judged_by_littles_law_and_the_generators_lateness():
    # 10 requests/s, each holding a slot 0.5 s: 5 slots needed.
    assert client_check(made_load([0.5] * 11, 0.1, 1, busy=6))["saturated"]
    assert client_check(made_load([0.5] * 11, 0.1, 4, busy=2))["needed_slots"] == pytest.approx(5)
    assert not client_check(made_load([0.5] * 11, 0.1, 8, busy=0))["saturated"]
    # A burst found every slot busy, but the rate needs fewer slots than there are.
    assert not client_check(made_load([0.5] * 11, 0.1, 6, busy=2))["saturated"]
    late = client_check(made_load([0.01] * 11, 0.1, 8, busy=0, late=0.2))
    assert late["saturated"] and late["generator_behind"] and not late["slots_bound"]
    assert late["reason"].startswith("the client was saturated: the load generator issued")
    both = client_check(made_load([0.5] * 11, 0.1, 1, busy=6, late=0.2))
    assert both["generator_behind"] and both["slots_bound"] and "; and 6 of 11" in both["reason"]
    # 20% late over a 10 ms schedule is 2 ms: thread wake-ups, not a saturated generator.
    assert not client_check(made_load([0.001] * 11, 0.001, 8, busy=0, late=0.2))["saturated"]


def test_token_counts_that_disagree_on_over_5_percent_of_requests_flag_the_cell():
    def rec(i: int, chunks: int, server: int | None) -> Generated:
        return Generated(i, 0.0, 10, 8, [0.1 * k for k in range(chunks)], [1] * chunks,
                         started=0.0, server_output_tokens=server, server_prompt_tokens=11)  # fmt: skip

    agree = [rec(i, 8, 8) for i in range(95)]
    assert not token_agreement([*agree, *(rec(95 + i, 6, 8) for i in range(5))])["flagged"]
    found = token_agreement([*agree, *(rec(95 + i, 6, 8) for i in range(6))])
    assert found["flagged"] and found["disagree"] == 6 and found["share"] == pytest.approx(6 / 101)
    assert token_agreement([rec(0, 8, None)])["no_usage"] == 1
    assert prompt_lengths(agree)["ratio_p50"] == pytest.approx(1.1)  # 11 reported, 10 asked
    off = [Generated(0, 0.0, 10, 8, server_prompt_tokens=13), *agree[:3]]
    assert prompt_lengths(off)["off_over_10pct"] == 0.25
    assert output_lengths([rec(0, 6, 6), rec(1, 8, 8)]) == {"n": 2, "short": 1, "long": 0}


# Measured: 89 of 100 runs failed on the 2-core VM at nice 19 beside other jobs (load average
# 5.2-6.7), on TTFT (median excess 2.9 ms); TPOT held in 99 (docs/endpoints.md, "Measured").
@pytest.mark.timing
def test_ttft_and_tpot_match_the_set_delays_at_50_concurrent_streams():
    with stand_in(50, 20, 5) as where:
        assert_delays_match(where)


def assert_delays_match(where: str) -> dict[str, float]:
    """50 streams of 16 tokens, started 2 ms apart: each lasts 50 + 15 * 20 = 350 ms, so all
    50 run at once from 100 to 350 ms. Medians within 1 ms of the set delays; the failure
    message says where the excess was (this client's wait to send, the stand-in's own lateness
    in writing the first token, the rest: the network stacks and the two processes waking)."""
    endpoint = GenEndpoint(where, "openai-chat", "m", timeout_s=10)
    reqs = requests(50, 0.002, output=16)
    load = drive(reqs, endpoint, 50)
    assert all(r.ok for r in load.records), [r.error for r in load.records if r.error][:3]
    with urllib.request.urlopen(where + "/lags", timeout=5) as answer:
        lags = json.loads(answer.read())
    recs = load.records
    found = {
        "ttft_excess_s": float(np.median([r.ttft for r in recs])) - 0.050,
        "tpot_excess_s": float(np.median([r.tpot for r in recs])) - 0.020,
        "wait_to_send_s": float(np.median([r.started - r.scheduled for r in recs])),
        "server_lag_s": float(np.median([lags[default_prompt(q)] for q in reqs])),
        "excess_less_server_lag_s": float(
            np.median(
                [r.ttft - 0.050 - lags[default_prompt(q)] for r, q in zip(recs, reqs, strict=True)]
            )
        ),
    }
    shown = ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in found.items())
    assert abs(found["ttft_excess_s"]) < 1e-3 and abs(found["tpot_excess_s"]) < 1e-3, shown
    return found

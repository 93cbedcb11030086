"""``bench serve decoder`` without a framework: the engine's open-ended mode against the fixed-list
engine, and the OpenAI-compatible application around a stand-in decoder whose tokens depend only
on (request seed, position) (issue 23). Hostile requests each get 400 (or 404, 413, 503) with
the reason. The real server, built from the zoo decoder, is exercised end to end in
tests/test_generate_endpoint.py."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest

from bench.cli import main
from bench.serve.generation import engine
from bench.serve.generation.completions_app import CompletionsServer, token_text
from bench.serve.generation.completions_request import Limits, word_ids
from bench.serve.generation.live import Job, LiveEngine
from bench.serve.generation.requests import GenRequest
from tests.test_generation_engine import VOCAB, FakeDecoder, VirtualClock, expected_token

# starlette's TestClient warns that it will move from httpx to httpx2: the client, not the server.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
LIMITS = Limits("tiny", VOCAB, max_prompt=32, cache_len=64, temperature=0.0)
LIMIT_BYTES = 4096


def jobs_through(decoder: FakeDecoder, asked: list[GenRequest]) -> dict[int, list[int]]:
    """Each request's tokens from the open-ended engine, all submitted at once."""
    got: dict[int, list[int]] = {r.index: [] for r in asked}
    done = threading.Event()
    left = [len(asked)]

    def publish(step: list[tuple[Job, int, bool]]) -> None:
        for job, token, last in step:
            got[int(job.context)].append(token)  # type: ignore[call-overload]
            left[0] -= last
        if left[0] == 0:
            done.set()

    live = LiveEngine(decoder, publish)
    live.start()
    for r in asked:
        prompt = np.arange(1, r.prompt_tokens + 1, dtype=np.int32)
        live.submit(Job(prompt, r.output_tokens, r.seed, context=r.index))
    assert done.wait(10)
    live.stop()
    return got


def test_the_open_ended_engine_makes_the_fixed_list_engines_tokens():
    # 3 slots, 7 requests of different lengths: slots are reused as sequences end.
    asked = [GenRequest(i, 0.0, 3 + i, 1 + (5 * i) % 9, seed=40 + i) for i in range(7)]
    got = jobs_through(FakeDecoder(VirtualClock(), slots=3), asked)
    ran = engine.run(
        FakeDecoder(VirtualClock(), slots=3), asked, "continuous",
        lambda r: np.arange(1, r.prompt_tokens + 1, dtype=np.int32), clock=VirtualClock(),
    )  # fmt: skip
    for r, rec in zip(asked, ran.records, strict=True):
        want = [expected_token(r.seed, r.prompt_tokens + k) for k in range(r.output_tokens)]
        assert got[r.index] == rec.tokens == want


def test_a_cancelled_job_frees_its_slot_and_the_next_one_runs():
    decoder = FakeDecoder(VirtualClock(), slots=1)
    seen: list[tuple[int, int, bool]] = []
    finished = threading.Event()
    hog = Job(np.array([1, 2], dtype=np.int32), 10_000, 1, context=0)

    def publish(step: list[tuple[Job, int, bool]]) -> None:
        for job, token, last in step:
            seen.append((int(job.context), token, last))  # type: ignore[call-overload]
            if job is hog and job.made >= 3:
                hog.cancelled = True  # its client went away
            if job.context == 1 and last:
                finished.set()

    live = LiveEngine(decoder, publish)
    live.start()
    live.submit(hog)
    live.submit(Job(np.array([5], dtype=np.int32), 2, 9, context=1))
    assert finished.wait(10)
    live.stop()
    assert [t for c, t, _ in seen if c == 1] == [expected_token(9, 1), expected_token(9, 2)]
    assert sum(c == 0 for c, _, _ in seen) < 10  # dropped at the step after it was cancelled


@pytest.fixture()
def client() -> Any:
    pytest.importorskip("starlette", reason="bench serve decoder needs the serving extra")
    pytest.importorskip("httpx", reason="starlette's TestClient needs httpx")
    from starlette.testclient import TestClient

    server = CompletionsServer(FakeDecoder(VirtualClock(), slots=2), LIMITS, {"model": "x"}, 4)
    with TestClient(server.app(LIMIT_BYTES, "--max-request-kb")) as c:
        yield c
    server.engine.stop()


def events(text: str) -> list[Any]:
    out = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_a_streamed_completion_is_one_token_per_chunk_then_usage_then_done(client):
    body = {
        "model": "tiny", "prompt": [3, 4, 5], "max_tokens": 4, "stream": True, "seed": 7,
        "stream_options": {"include_usage": True}, "return_token_ids": True,
        "min_tokens": 4, "ignore_eos": True,
    }  # fmt: skip
    answer = client.post("/v1/completions", json=body)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    found = events(answer.text)
    want = [expected_token(7, 3 + k) for k in range(4)]
    chunks, usage, done = found[:4], found[4], found[5]
    assert [c["choices"][0]["token_ids"] for c in chunks] == [[t] for t in want]
    assert [c["choices"][0]["text"] for c in chunks] == [token_text(t) for t in want]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "length"]
    assert usage["choices"] == [] and usage["usage"] == {
        "prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
    }  # fmt: skip
    assert done == "[DONE]" and len(found) == 6


def test_a_completion_not_streamed_is_one_answer_and_text_prompts_count_words(client):
    answer = client.post(
        "/v1/completions", json={"model": "tiny", "prompt": "the of and", "max_tokens": 3}
    )
    assert answer.status_code == 200
    got = answer.json()
    want = [expected_token(0, 3 + k) for k in range(3)]
    assert got["choices"][0]["text"] == "".join(map(token_text, want))
    assert got["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    assert word_ids("the of and", VOCAB).tolist() == word_ids("the  of\nand", VOCAB).tolist()


def test_the_model_list_says_it_is_bench_and_what_it_serves(client):
    (card,) = client.get("/v1/models").json()["data"]
    assert card["id"] == "tiny" and card["owned_by"] == "bench" and card["bench"] == {"model": "x"}


GOOD = {"model": "tiny", "prompt": [1, 2], "max_tokens": 2}
# body -> (status, what the reason says)
HOSTILE: dict[str, tuple[Any, int, str]] = {
    "not json": (b"{nope", 400, "the body is not JSON"),
    "nested past the parser": (b"[" * 2000 + b"]" * 2000, 400, "not JSON"),
    "an array": ([1, 2], 400, "expected an object"),
    "unknown field": ({**GOOD, "stop": ["\n"]}, 400, "unknown field(s) 'stop'"),
    "several prompts": ({**GOOD, "prompt": ["a", "b"]}, 400, "one prompt per request"),
    "no prompt": ({"model": "tiny", "max_tokens": 2}, 400, "prompt: expected text"),
    "empty prompt": ({**GOOD, "prompt": []}, 400, "prompt: 0 token ids; expected 1 to 32"),
    "id out of vocab": ({**GOOD, "prompt": [VOCAB]}, 400, f"token id {VOCAB} is outside"),
    "negative id": ({**GOOD, "prompt": [-1]}, 400, "token id -1 is outside"),
    "a float id": ({**GOOD, "prompt": [1.5]}, 400, "list of token ids (integers)"),
    "prompt too long": ({**GOOD, "prompt": [1] * 33}, 400, "33 token ids; expected 1 to 32"),
    "max_tokens 0": ({**GOOD, "max_tokens": 0}, 400, "max_tokens 0; expected a whole number"),
    "past the cache": ({**GOOD, "max_tokens": 63}, 400, "max_tokens 63; expected a whole number from 1 to 62"),
    "max_tokens text": ({**GOOD, "max_tokens": "5"}, 400, "max_tokens 5; expected"),
    "max_tokens true": ({**GOOD, "max_tokens": True}, 400, "max_tokens True; expected"),
    "min over max": ({**GOOD, "min_tokens": 3}, 400, "min_tokens 3; expected a whole number from 0 to 2"),
    "temperature": ({**GOOD, "temperature": 0.7}, 400, "temperature 0.7; expected 0"),
    "temperature nan": (b'{"model":"tiny","prompt":[1],"temperature":NaN}', 400, "temperature nan"),
    "n": ({**GOOD, "n": 2}, 400, "n 2; expected 1"),
    "echo": ({**GOOD, "echo": True}, 400, "echo True; expected none"),
    "stream text": ({**GOOD, "stream": "yes"}, 400, "stream yes; expected true or false"),
    "options alone": ({**GOOD, "stream_options": {"include_usage": True}}, 400, "with stream: true"),
    "seed": ({**GOOD, "seed": -1}, 400, "seed -1; expected a whole number"),
    "model": ({**GOOD, "model": "other"}, 404, "model 'other': not served here; expected 'tiny'"),
    "over the limit": ({**GOOD, "user": "x" * LIMIT_BYTES}, 413, "over this server's limit"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_bad_request_is_refused_with_the_reason(client, case):
    body, status, why = HOSTILE[case]
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = client.post("/v1/completions", content=raw)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert why in (error["message"] if isinstance(error, dict) else error)
    # The server goes on answering.
    assert client.post("/v1/completions", json=GOOD).status_code == 200


def test_requests_past_max_waiting_are_answered_503_not_queued(client):
    # Four streams held open (max_waiting 4, each asking for the cache's worth of tokens, read
    # one chunk at a time): the fifth is refused at once.
    streams = []
    for seed in range(4):
        s = client.stream(
            "POST", "/v1/completions", json={**GOOD, "max_tokens": 62, "stream": True, "seed": seed}
        )
        answer = s.__enter__()
        next(answer.iter_lines())
        streams.append(s)
    try:
        refused = client.post("/v1/completions", json=GOOD)
        assert refused.status_code == 503 and "--max-waiting" in refused.json()["error"]["message"]
    finally:
        for s in streams:
            s.__exit__(None, None, None)
    assert client.get("/v1/completions").status_code == 405


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--cache-len", "512"], "--cache-len 512: longer than the model's max_positions (256)"),
        (["--prompt-buckets", "16,300", "--cache-len", "256"], "--prompt-buckets 300"),
        (["--prompt-buckets", "a,b"], "expected prompt lengths separated by commas"),
        (["--temperature", "9"], "--temperature: '9': expected a number from 0 to 2"),
        (["--slots", "0"], "--slots: '0': expected a whole number from 1"),
        (["--host", "example.com"], "--host 'example.com': expected an IP address"),
        (["--framework", "litert"], "--framework litert: a generation model runs on jax or"),
    ],
)
def test_bench_serve_decoder_refuses_bad_flags_before_building(args, why, capsys):
    try:
        code = main(["serve", "decoder", *args])
    except SystemExit as exc:  # argparse's own checks exit; bench's return the code
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert why in err and len(err.strip().splitlines()) == 1, err

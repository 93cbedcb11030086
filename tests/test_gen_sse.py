"""The server-sent-event parser and the OpenAI chunk reader (issue 23): any split of the bytes
gives the same events, an event is bounded, and every chunk shape a server sends is read as
what it says (text or not, which field, how many tokens, usage, an error)."""

from __future__ import annotations

import json

import pytest

from bench.serve.generation import openai
from bench.serve.generation.sse import DONE, Event, SseError, SseParser

# A chat stream as vLLM writes it, with what other servers add: a comment (keep-alive), CRLF
# and lone-CR line ends, a multi-line data field, a named event, a non-ASCII character (split
# inside its UTF-8 bytes by some offsets below), a byte-order mark, the usage chunk, [DONE].
STREAM = (
    b"\xef\xbb\xbf: keep-alive\n\n"
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"caf\xc3\xa9"}}]}\r\n\r\n'
    b'data: {"choices":[{"index":0,\r'
    b'data: "delta":{"content":" au lait"}}]}\r\r'
    b"event: ping\ndata: {}\n\n"
    b'data:{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)
EXPECTED = [
    Event('{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'),
    Event('{"choices":[{"index":0,"delta":{"content":"café"}}]}'),
    Event('{"choices":[{"index":0,\n"delta":{"content":" au lait"}}]}'),
    Event("{}", "ping"),
    Event('{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}'),
    Event('{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}'),
    Event(DONE),
]


def parse(*pieces: bytes, limit: int = 1 << 20) -> list[Event]:
    parser = SseParser(limit)
    out = [e for p in pieces for e in parser.feed(p)]
    assert not parser.pending
    return out


def test_the_whole_stream_at_once():
    assert parse(STREAM) == EXPECTED


def test_an_event_split_across_reads_at_every_byte_offset_gives_the_same_events():
    for k in range(len(STREAM) + 1):
        assert parse(STREAM[:k], STREAM[k:]) == EXPECTED, f"split at byte {k}"


def test_three_pieces_at_every_pair_of_offsets_and_one_byte_at_a_time():
    n = len(STREAM)
    for a in range(0, n + 1, 7):
        for b in range(a, n + 1, 5):
            assert parse(STREAM[:a], STREAM[a:b], STREAM[b:]) == EXPECTED, (a, b)
    assert parse(*(STREAM[i : i + 1] for i in range(n))) == EXPECTED


def test_a_crlf_split_between_reads_is_one_line_end_not_two():
    # A CR closing one read and its LF opening the next: one line end, so the event's blank
    # line is not seen twice and no event is dispatched early.
    assert parse(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [Event("a\nb")]


def test_an_event_over_the_limit_fails_once_it_passes_it_without_holding_more():
    parser = SseParser(1000)
    parser.feed(b"data: " + b"x" * 900)
    with pytest.raises(SseError, match="over 1,000 bytes"):
        parser.feed(b"x" * 200)
    # Data lines that each fit but never end the event count together.
    parser = SseParser(1000)
    with pytest.raises(SseError):
        for _ in range(100):
            parser.feed(b"data: " + b"y" * 40 + b"\n")
    # Exactly at the limit is fine; comments and blank lines do not count.
    assert parse(b"data: " + b"z" * 900 + b"\n\n", limit=1000) == [Event("z" * 900)]


def test_a_cut_stream_leaves_its_partial_event_pending():
    parser = SseParser()
    assert parser.feed(b'data: {"choices": [') == []
    assert parser.pending


# -- chunks ---------------------------------------------------------------------------------


def chunk(obj: object) -> openai.Chunk:
    return openai.read_chunk(json.dumps(obj))


def test_a_role_only_or_empty_chunk_carries_no_text():
    role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    assert chunk(role).text_chars == 0
    assert chunk({"choices": [{"index": 0, "delta": {}}]}).text_chars == 0
    assert chunk({"choices": [{"index": 0, "text": ""}]}).text_chars == 0
    assert chunk({"choices": [{"delta": {"content": None, "tool_calls": []}}]}).text_chars == 0


def test_text_is_read_from_either_protocol_and_reasoning_is_named():
    assert chunk({"choices": [{"text": "abc"}]}).fields == ("text",)
    assert chunk({"choices": [{"delta": {"content": "ab"}}]}).text_chars == 2
    thinking = chunk({"choices": [{"delta": {"reasoning_content": "hmm", "content": ""}}]})
    assert thinking.text_chars == 3 and thinking.fields == ("reasoning_content",)
    assert chunk({"choices": [{"delta": {"reasoning": "so"}}]}).fields == ("reasoning",)


def test_tokens_per_chunk_where_the_chunk_lists_them():
    two = {"choices": [{"text": "ab", "logprobs": {"tokens": ["a", "b"]}}]}
    assert chunk(two).tokens == 2
    chat = {"choices": [{"delta": {"content": "ab"}, "logprobs": {"content": [{}, {}, {}]}}]}
    assert chunk(chat).tokens == 3
    assert chunk({"choices": [{"text": "a"}]}).tokens is None  # the client counts it as one


def test_token_ids_count_the_tokens_of_a_chunk():
    c = chunk({"choices": [{"delta": {"content": "ab"}, "token_ids": [5, 9]}]})
    assert (c.tokens, c.token_ids) == (2, (5, 9))
    held = chunk({"choices": [{"text": "", "token_ids": [7]}]})  # a split character
    assert (held.text_chars, held.token_ids) == (0, (7,))
    with pytest.raises(openai.ChunkError, match="token_ids"):
        chunk({"choices": [{"text": "a", "token_ids": ["7"]}]})


def test_usage_and_finish_reason():
    c = chunk({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3.0}})
    assert (c.text_chars, c.prompt_tokens, c.completion_tokens) == (0, 7, 3)
    assert chunk({"choices": [{"text": "", "finish_reason": "length"}]}).finish_reason == "length"


def test_errors_in_the_stream_in_each_servers_shape():
    assert chunk({"error": {"message": "out of memory", "code": 500}}).error == "out of memory"
    assert chunk({"error": "Request failed during generation"}).error.startswith("Request")
    assert chunk({"object": "error", "message": "bad"}).error == "bad"


@pytest.mark.parametrize(
    "data, reason",
    [
        ('{"choices": [{"text": "w"', "invalid JSON"),
        ("[" * 100_000 + "]" * 100_000, "invalid JSON"),
        ("1" * 5000, "invalid JSON"),  # past Python's limit on an integer's digits
        ("[1, 2]", "not a JSON object"),
        ('{"choices": {"text": "w"}}', "choices are not a list"),
        ('{"choices": [{"text": 5}]}', "text is not a string"),
        ('{"choices": [{"delta": "w"}]}', "delta is not an object"),
        ('{"choices": [], "usage": {"completion_tokens": -1}}', "not a count"),
        ('{"choices": [], "usage": {"completion_tokens": NaN}}', "not a count"),
        ('{"choices": [], "usage": {"completion_tokens": true}}', "not a count"),
        ('{"choices": [], "usage": "12"}', "usage is not an object"),
    ],
)
def test_a_chunk_that_is_not_the_protocols_is_refused_with_the_reason(data, reason):
    with pytest.raises(openai.ChunkError, match=reason):
        openai.read_chunk(data)


def test_request_bodies_and_paths():
    body = json.loads(
        openai.request_body("openai-chat", "m/x", "hi", 16, ("min_tokens", "ignore_eos"))
    )
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["max_tokens"] == body["min_tokens"] == 16 and body["ignore_eos"] is True
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    plain = json.loads(openai.request_body("openai-completions", "m", "hi", 8))
    assert plain["prompt"] == "hi" and "min_tokens" not in plain and "ignore_eos" not in plain
    assert openai.path("openai-chat", "") == "/v1/chat/completions"
    assert openai.path("openai-completions", "/v1") == "/v1/completions"
    vertex = "/v1/projects/p/locations/us-central1/endpoints/openapi/chat/completions"
    assert openai.path("openai-chat", vertex) == vertex

"""The ASGI application of ``bench serve decoder``: OpenAI-compatible ``POST /v1/completions``
(streamed as server-sent events, or one JSON answer) and ``GET /v1/models`` (readiness: the
model list, ``owned_by: bench`` with what is served), over the engine's open-ended mode
(``live``: continuous batching in a thread of its own).

Starlette, not FastAPI or KServe: KServe 0.21's OpenAI routes (``kserve.protocol.rest.openai``)
need vLLM, which is not installed here, and two routes need no request models. Each request is
parsed and bounded (``completions_request``: a mistake is 400 with the reason, a model not
served 404) before it reaches the engine; a body over the limit is refused unread
(``bench.serve.body_limit``); more than ``max_waiting`` requests in the server at once are
answered 503 rather than queued without end. A stream's chunks follow vLLM's: one token per
chunk (``text``: the token's stand-in text, `` <id>``; ``token_ids`` where asked), the last with
``finish_reason: "length"``, then the usage chunk where asked, then ``[DONE]``. A client that
goes away frees its slot at the engine's next step. Framework-free: the decoder is built
elsewhere (``bench.run.decoder_server``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from bench.serve.body_limit import BodyLimit
from bench.serve.generation.completions_request import BadRequest, Completion, Limits, parse
from bench.serve.generation.decoder import CompiledDecoder
from bench.serve.generation.live import Job, LiveEngine, Step

ENGINE_DOWN = "the generation engine stopped"


def token_text(token: int) -> str:
    """A token's stand-in text (the zoo decoder has ids, not a vocabulary of strings)."""
    return f" <{token}>"


class CompletionsServer:
    """The engine and the requests in it; ``app`` is what uvicorn serves."""

    def __init__(
        self,
        decoder: CompiledDecoder,
        limits: Limits,
        served: Mapping[str, Any],
        max_waiting: int,
    ) -> None:
        self.limits, self.max_waiting = limits, max_waiting
        self.created = int(time.time())
        self.card = {
            "id": limits.model_name, "object": "model", "created": self.created,
            "owned_by": "bench", "max_model_len": limits.cache_len, "bench": dict(served),
        }  # fmt: skip
        self.jobs: set[Job] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.engine = LiveEngine(decoder, self._publish, self._failed)
        self.engine.start()

    # -- the engine's thread -------------------------------------------------------------------

    def _publish(self, step: Step) -> None:
        loop = self.loop
        if loop is not None:
            loop.call_soon_threadsafe(_deliver, step)

    def _failed(self, exc: BaseException) -> None:
        loop = self.loop
        if loop is not None:
            loop.call_soon_threadsafe(_deliver, [(job, -1, True) for job in list(self.jobs)])

    # -- the server's loop -----------------------------------------------------------------

    def app(self, max_body_bytes: int, hint: str) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route

        routes = [
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
        ]
        return BodyLimit(Starlette(routes=routes), max_body_bytes, hint)

    async def health(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        if self.engine.failure is not None:
            return _error(503, ENGINE_DOWN)
        return JSONResponse({"status": "ok"})

    async def models(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        if self.engine.failure is not None:
            return _error(503, ENGINE_DOWN)
        return JSONResponse({"object": "list", "data": [self.card]})

    async def completions(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, StreamingResponse

        try:
            asked = parse(await request.body(), self.limits)
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        if self.engine.failure is not None:
            return _error(503, ENGINE_DOWN)
        if len(self.jobs) >= self.max_waiting:
            return _error(
                503, f"{len(self.jobs)} requests in the server already (--max-waiting); retry"
            )
        self.loop = asyncio.get_running_loop()
        job = Job(asked.prompt, asked.max_tokens, asked.seed, context=asyncio.Queue())
        self.jobs.add(job)
        self.engine.submit(job)
        rid = f"cmpl-{uuid.uuid4().hex}"
        if asked.stream:
            return StreamingResponse(
                self._events(job, asked, rid), media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )  # fmt: skip
        try:
            tokens = [t async for t in _tokens(job)]
        finally:
            self._done(job)
        if tokens and tokens[-1] < 0:
            return _error(500, ENGINE_DOWN)
        choice: dict[str, Any] = {
            "index": 0, "text": "".join(map(token_text, tokens)), "logprobs": None,
            "finish_reason": "length",
        }  # fmt: skip
        if asked.token_ids:
            choice["token_ids"] = tokens
        return JSONResponse(
            {**self._head(rid), "choices": [choice], "usage": _usage(asked, len(tokens))}
        )

    async def _events(self, job: Job, asked: Completion, rid: str) -> AsyncIterator[bytes]:
        head = self._head(rid)
        made = 0
        try:
            async for token in _tokens(job):
                if token < 0:
                    yield _event({"error": {"message": ENGINE_DOWN, "type": "server_error"}})
                    return
                made += 1
                choice: dict[str, Any] = {
                    "index": 0, "text": token_text(token), "logprobs": None,
                    "finish_reason": "length" if made == asked.max_tokens else None,
                }  # fmt: skip
                if asked.token_ids:
                    choice["token_ids"] = [token]
                yield _event({**head, "choices": [choice]})
            if asked.include_usage:
                yield _event({**head, "choices": [], "usage": _usage(asked, made)})
            yield b"data: [DONE]\n\n"
        finally:
            self._done(job)

    def _done(self, job: Job) -> None:
        job.cancelled = True  # finished already, or its client went away: either way, free
        self.jobs.discard(job)

    def _head(self, rid: str) -> dict[str, Any]:
        return {
            "id": rid, "object": "text_completion", "created": int(time.time()),
            "model": self.limits.model_name,
        }  # fmt: skip


def _deliver(step: Step) -> None:
    for job, token, last in step:
        assert isinstance(job.context, asyncio.Queue)
        job.context.put_nowait((token, last))


async def _tokens(job: Job) -> AsyncIterator[int]:
    """The job's tokens as the engine makes them; -1 where the engine failed."""
    assert isinstance(job.context, asyncio.Queue)
    while True:
        token, last = await job.context.get()
        yield token
        if last or token < 0:
            return


def _usage(asked: Completion, made: int) -> dict[str, int]:
    prompt = len(asked.prompt)
    return {"prompt_tokens": prompt, "completion_tokens": made, "total_tokens": prompt + made}


def _event(obj: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _error(status: int, message: str) -> Any:
    from starlette.responses import JSONResponse

    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": status}}, status_code=status
    )

"""A limit on the size of a request body, enforced before the body is read (ASGI middleware).

uvicorn reads whatever body a client sends and the web framework buffers it whole, so without
a limit one client can make the server hold gigabytes. Here a body whose ``Content-Length`` is
over the limit is refused with 413 before a byte of it is read; a body sent without a length
(chunked) is read only until it passes the limit, then refused the same way. Either way the
answer closes the connection, so the rest of the body is never read. Framework-free: it wraps
any ASGI application.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    def __init__(self, app: App, limit: int, hint: str = "") -> None:
        self.app, self.limit, self.hint = app, limit, hint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None:
            if length < 0:
                await _answer(send, 400, "Content-Length is not a byte count")
                return
            if length > self.limit:
                await self._refuse(send, f"a request body of {length:,} bytes")
                return
            await self.app(scope, receive, send)
            return
        # No stated length: read what comes, up to the limit, and hand it on as it came.
        received: list[Message] = []
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(send, f"a request body of more than {self.limit:,} bytes")
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return received.pop(0) if received else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, what: str) -> None:
        hint = f" ({self.hint})" if self.hint else ""
        await _answer(
            send, 413, f"{what} is over this server's limit of {self.limit:,} bytes{hint}"
        )


async def _answer(send: Send, status: int, error: str) -> None:
    """An error answer that closes the connection: the unread rest of the body is never read."""
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    """The stated body length; -1 for one that is not a byte count (refused, 400)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) <= 20 else -1
    return None

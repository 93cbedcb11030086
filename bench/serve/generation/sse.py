"""Server-sent events read incrementally: bytes in whatever pieces the network gives, events out.

A streaming generation server answers with ``text/event-stream`` (the WHATWG HTML standard,
section "Server-sent events"): lines ended by CRLF, LF or CR; ``data:`` lines that accumulate
into one event's data (joined by newlines); ``event:`` naming its type; ``:`` comments
(keep-alives); a blank line dispatching the event. TCP delivers the stream in arbitrary pieces,
so a line, a CRLF pair or a UTF-8 character may be split between two reads: the parser keeps
what is incomplete and finishes it with the next piece, so any split gives the same events.

An event is bounded (``max_event_bytes``): a server that sends a line without an end, or data
lines without a blank one, fails with ``SseError`` once the event passes the limit, before the
client holds more than that of it (a 100 MB chunk costs the limit, not 100 MB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DONE = "[DONE]"  # the data of OpenAI's last event: nothing follows
_LINE_END = re.compile(rb"[\r\n]")
_BOM = "\ufeff"


class SseError(ValueError):
    """The stream broke a bound (``str()`` says which, never its content)."""


@dataclass(frozen=True)
class Event:
    data: str
    event: str = "message"  # the ``event:`` field; the standard's default type


class SseParser:
    """Feed bytes as they arrive; each ``feed`` returns the events its bytes completed."""

    def __init__(self, max_event_bytes: int = 1 << 20):
        self.max_event_bytes = max_event_bytes
        self._line = bytearray()  # the current line, not yet ended
        self._data: list[str] = []  # this event's data lines so far
        self._type = ""
        self._size = 0  # bytes of this event's data lines so far
        self._skip_lf = False  # the last piece ended in CR: an LF first in the next is its pair
        self._first = True  # the stream's first line may open with a byte-order mark
        self.events = 0  # dispatched so far

    @property
    def pending(self) -> bool:
        """Part of an event received and not dispatched (at the end of a stream: cut off)."""
        return bool(self._line or self._data)

    def feed(self, piece: bytes) -> list[Event]:
        out: list[Event] = []
        start, n = 0, len(piece)
        if self._skip_lf and n:
            self._skip_lf = False
            if piece[0] == 0x0A:
                start = 1
        while start < n:
            found = _LINE_END.search(piece, start)
            if found is None:
                self._line += piece[start:]
                self._check(len(self._line))
                break
            end = found.start()
            if self._line:
                self._line += piece[start:end]
                self._check(len(self._line))
                line = bytes(self._line)
                self._line.clear()
            else:
                line = piece[start:end]
                self._check(len(line))
            if piece[end] == 0x0D:  # CR, CRLF: a CR closing the piece may have its LF next
                if end + 1 < n:
                    end += piece[end + 1] == 0x0A
                else:
                    self._skip_lf = True
            start = end + 1
            self._take(line, out)
        return out

    def _check(self, line_bytes: int) -> None:
        if self._size + line_bytes > self.max_event_bytes:
            raise SseError(f"an event over {self.max_event_bytes:,} bytes (the limit on one event)")

    def _take(self, raw: bytes, out: list[Event]) -> None:
        line = raw.decode("utf-8", "replace")
        if self._first:
            self._first = False
            line = line.removeprefix(_BOM)
        if not line:  # a blank line dispatches what was gathered
            if self._data:
                out.append(Event("\n".join(self._data), self._type or "message"))
                self.events += 1
            self._data, self._type, self._size = [], "", 0
            return
        if line.startswith(":"):
            return  # a comment: servers send them to keep a connection alive
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._size += len(raw) + 1
        elif name == "event":
            self._type = value
        # id, retry and unknown fields mean nothing to a request that is read once

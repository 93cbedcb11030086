"""One generation request as measured: the shape the in-process engine and an endpoint client
both produce, and the only thing ``bench.serve.generation.summary`` reads.

Times are seconds from the start of the load (the same origin as ``scheduled``), taken on the
host when the tokens were readable there. A request's latency counts from its *scheduled*
arrival, never from when it was sent or admitted, so a stalled server or a busy client shows as
latency (no coordinated omission).
"""

from __future__ import annotations

import zlib
from array import array
from dataclasses import dataclass, field


@dataclass
class Generated:
    index: int  # the request's place in the schedule
    scheduled: float  # when it was due to arrive
    prompt_tokens: int  # asked
    output_tokens: int  # asked (runs hold the length fixed: no early end of sequence)
    # When each chunk of output reached the host, and how many tokens it carried (the engine:
    # one token per decode step; a streaming server may send several per chunk).
    chunk_times: list[float] = field(default_factory=list)
    chunk_tokens: list[int] = field(default_factory=list)
    # When the request left: admitted to a slot (engine) or sent once a sender was free
    # (client). The wait from ``scheduled`` to here is part of every latency.
    started: float | None = None
    error: str = ""  # why it failed; a failed request counts as infinitely late
    # Counts the server reported (``usage``), where a server reports them; None in process.
    server_prompt_tokens: int | None = None
    server_output_tokens: int | None = None
    tokens: list[int] = field(default_factory=list)  # the generated ids, where known

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.chunk_times)

    @property
    def first_token(self) -> float | None:
        return self.chunk_times[0] if self.chunk_times else None

    @property
    def end(self) -> float | None:
        return self.chunk_times[-1] if self.chunk_times else None

    @property
    def generated(self) -> int:
        """Output tokens received: the server's count where it gave one, else the chunks'."""
        if self.server_output_tokens is not None:
            return self.server_output_tokens
        return sum(self.chunk_tokens)

    @property
    def ttft(self) -> float | None:
        """Time to first token, from the scheduled arrival."""
        return None if not self.ok else self.chunk_times[0] - self.scheduled

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first: (end - first) / (tokens - 1)."""
        if not self.ok or self.generated < 2:
            return None
        return (self.chunk_times[-1] - self.chunk_times[0]) / (self.generated - 1)

    @property
    def latency(self) -> float | None:
        """End to end, from the scheduled arrival to the last token."""
        return None if not self.ok else self.chunk_times[-1] - self.scheduled

    def inter_token(self) -> list[float]:
        """Gaps between chunks, each spread over the tokens of the later chunk (a chunk of k
        tokens after a gap g is k gaps of g / k, so speculative decoding is not one slow
        token)."""
        out: list[float] = []
        for i in range(1, len(self.chunk_times)):
            k = max(1, self.chunk_tokens[i] if i < len(self.chunk_tokens) else 1)
            out.extend([(self.chunk_times[i] - self.chunk_times[i - 1]) / k] * k)
        return out


MAX_DIGESTS = 4096  # a load's per-request digests kept in a record, at most


def token_digests(records: list[Generated]) -> list[int | None] | None:
    """Each request's generated ids as one CRC-32 (None: failed, or no ids known), in schedule
    order: two cells that generated the same tokens for every request have equal lists. None
    for a load of more than ``MAX_DIGESTS`` requests."""
    if len(records) > MAX_DIGESTS:
        return None
    return [
        zlib.crc32(array("i", r.tokens).tobytes()) if r.ok and r.tokens else None
        for r in sorted(records, key=lambda r: r.index)
    ]

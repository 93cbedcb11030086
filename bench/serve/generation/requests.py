"""Generation requests: when each arrives, how long its prompt is, how many tokens it asks for.

Drawn from seeded distributions (``bench.serve.generation.lengths``) or read from a trace file;
the same seed gives the same requests on every device and framework, so cells compare.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenRequest:
    index: int  # place in the schedule
    arrival: float  # seconds from the start of the load (0 for offline: all at once)
    prompt_tokens: int
    output_tokens: int  # held fixed: no early end of sequence
    seed: int  # the request's own: its prompt's token ids and its sampling

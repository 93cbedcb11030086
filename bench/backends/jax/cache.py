"""Whether a compile was a load from JAX's persistent compilation cache.

``bench tune`` gives its JAX workers a compilation cache (``bench.tune.real``): a cell whose
program an earlier cell of the tune compiled (its memory probe, or the same program fed by
another input pipeline) loads it instead of compiling it again. That cell's ``compile_s`` is
then tracing, lowering and a load, not a compile, and its record says so (``compile_s``'s
``cached``), so neither a report nor the tune's estimate of the full grid reads it as one.
``bench run`` sets no cache directory: there nothing is cached or counted, unless the user's
own environment sets one, whose loads are marked the same way.
"""

from __future__ import annotations

from typing import Any

import jax

_EVENTS = {
    "/jax/compilation_cache/cache_hits": "hits",
    "/jax/compilation_cache/cache_misses": "misses",
}
_COUNTS = {"hits": 0, "misses": 0}
_LISTENING: list[bool] = []


def _count(event: str, **_: Any) -> None:
    name = _EVENTS.get(event)
    if name is not None:
        _COUNTS[name] += 1


def counts() -> tuple[int, int] | None:
    """(hits, misses) so far in this process; None when no cache is configured."""
    if not jax.config.jax_compilation_cache_dir:
        return None
    if not _LISTENING:
        jax.monitoring.register_event_listener(_count)
        _LISTENING.append(True)
    return _COUNTS["hits"], _COUNTS["misses"]


def loaded(before: tuple[int, int] | None) -> bool:
    """Whether every compile since ``counts()`` returned ``before`` was a cache load."""
    after = counts()
    if before is None or after is None:
        return False
    return after[0] > before[0] and after[1] == before[1]

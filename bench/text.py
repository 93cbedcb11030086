"""Words in sentences, shared by every layer that writes a message for people."""

from __future__ import annotations

from collections.abc import Sequence


def join_words(words: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``: lists in sentences."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]

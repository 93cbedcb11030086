"""How a JAX step is waited for: JAX dispatches asynchronously, so a call returns before its
device work is done; ``block_until_ready`` on the outputs waits for exactly that work."""

from __future__ import annotations

from typing import Any

import jax

METHOD = "device-synced"


def sync(out: Any) -> None:
    jax.block_until_ready(out)

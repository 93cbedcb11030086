"""How a TensorFlow step is waited for: a host read of every replica's output (its step has
finished once the value is on the host), and on accelerators a device sync first, because a
step's side effects (optimizer updates) need not feed the output that is read."""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def method(device: str) -> str:
    if device == "cpu":
        return "host read of the output"
    return "devices synced (tf.test.experimental.sync_devices), then a host read of the output"


def sync(strategy: Any, device: str, out: Any) -> None:
    if device != "cpu":
        # Waits for every pending kernel on the accelerators, not only those behind `out`.
        tf.test.experimental.sync_devices()
    for local in strategy.experimental_local_results(out):
        local.numpy()  # a host read of the output: its step has finished

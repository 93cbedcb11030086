"""TensorFlow for data work, imported on first use (data files and tf.data pipelines share it)."""

from __future__ import annotations

import contextlib
import os
from typing import Any


def import_tensorflow(hide_accelerators: bool = False) -> Any:
    """TensorFlow for data work; with ``hide_accelerators`` it never touches a GPU or TPU."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if hide_accelerators:
        for kind in ("GPU", "TPU"):
            # RuntimeError: already initialised by an earlier cell (and hidden then);
            # ValueError: this TensorFlow build knows no such device type.
            with contextlib.suppress(RuntimeError, ValueError):
                tf.config.set_visible_devices([], kind)
    return tf

"""Shared fixtures. Tests that start real workers are marked ``slow`` (seconds each)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let workers import test-only models from ``tests.fixtures``."""
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))


def sigint_default() -> None:
    """``preexec_fn`` for a child the test interrupts: Ctrl-C's default action, even where this
    test process inherited SIGINT ignored (started in the background without job control, as
    `cmd &` in a script is), since an exec keeps an ignored signal ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def bench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", *args]

"""Timing asynchronous device work without waiting for it under-reports; bench's timer waits."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.timing
@pytest.mark.slow
def test_unsynced_timing_under_reports_and_the_timer_does_not():
    done = subprocess.run(
        [sys.executable, "-m", "tests.fixtures.sync_probe"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"JAX_PLATFORMS": "cpu", "PATH": ""},
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # JAX dispatches asynchronously: without a sync the clock stops when the call returns,
    # long before eight 768^3 matmuls (~7 GFLOP) finish, so the "step" looks nearly free.
    assert found["unsynced"] < 0.2 * found["synced"]
    # With the sync, a timed step covers the work: close to the wall time of a synced loop
    # (generous bounds: this is a shared 2-core machine, not a speed assertion).
    assert 0.5 * found["wall"] < found["synced"] < 2.0 * found["wall"]

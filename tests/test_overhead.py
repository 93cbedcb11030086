"""``bench selfcheck`` runs each framework's overhead benchmark and reports a ratio (speed is not
asserted)."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import bench_cmd


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["jax", "tensorflow"])
def test_selfcheck_reports_the_ratio(framework):
    done = subprocess.run(
        bench_cmd("selfcheck", "--steps", "20", "--trials", "2", "--size", "16",
                  "--framework", framework),
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    match = re.search(
        rf"^{framework} .*ratio (\d+\.\d+) \((meets|MISSES) the 0.98 target", done.stdout, re.M
    )
    assert match, done.stdout
    assert float(match.group(1)) > 0


def test_interleaved_trials_flip_the_order_every_trial():
    # whichever loop runs second in a trial is at a disadvantage on a busy machine; the order
    # must alternate so neither side always pays it
    from bench.measure.overhead import interleaved

    calls: list[str] = []

    def loop(name: str, rate: float):
        return lambda: calls.append(name) or rate

    found = interleaved(loop("plain", 100.0), loop("bench", 98.0), trials=4)
    assert calls == ["plain", "bench", "bench", "plain", "plain", "bench", "bench", "plain"]
    assert found["ratio"] == pytest.approx(0.98) and found["ratios"] == [pytest.approx(0.98)] * 4

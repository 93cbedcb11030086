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

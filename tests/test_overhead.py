"""``bench selfcheck`` runs the overhead benchmark and reports a ratio (speed is not asserted)."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import bench_cmd


@pytest.mark.slow
def test_selfcheck_reports_the_ratio():
    done = subprocess.run(
        bench_cmd("selfcheck", "--steps", "20", "--trials", "2", "--size", "64"),
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"ratio (\d+\.\d+) \((meets|MISSES) the 0.98 target", done.stdout)
    assert match, done.stdout
    assert float(match.group(1)) > 0

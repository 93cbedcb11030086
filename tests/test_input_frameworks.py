"""Data files and pipelines through real TensorFlow and JAX, each in a subprocess of its own.

The files ``bench data make`` writes decode back to the records written (JPEG within a few
levels, everything else exactly, CSV too) and are the same bytes when made again; every input
(synthetic, numpy, tfdata under several pipelines) yields batches of the declared shapes and
dtypes in both frameworks; JAX's double buffering yields the same batches in the same order as
plain iteration of the pipeline.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.framework_checks import CHECKS

pytestmark = [pytest.mark.slow, pytest.mark.heavy]


def run_checks(framework: str, root) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.framework_checks", framework, str(root)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULTS ")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads(lines[-1].removeprefix("RESULTS "))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def tf_results(data_root):
    return run_checks("tensorflow", data_root)  # makes the files the JAX checks reuse


@pytest.fixture(scope="module")
def jax_results(data_root, tf_results):
    return run_checks("jax", data_root)


@pytest.mark.parametrize("check", CHECKS["tensorflow"])
def test_tensorflow(check, tf_results):
    assert tf_results.get(check) == "ok", tf_results.get(check, "check did not run")


@pytest.mark.parametrize("check", CHECKS["jax"])
def test_jax(check, jax_results):
    assert jax_results.get(check) == "ok", jax_results.get(check, "check did not run")

"""Shared fixtures. Tests that start real workers are marked ``slow`` (seconds each); those of
over 9 s ``heavy`` (the second tier); those whose verdict rests on real wall-clock timings with
a false-failure rate not shown under 1% ``timing``: skipped unless ``--timing`` is given, as
``.ci/timing-checks`` does, which runs them repeatedly and reports how often each failed."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--timing",
        action="store_true",
        help="run the tests marked timing (.ci/timing-checks runs them and reports their figures)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``timing`` test failed beside one busy core in 1% or more of its runs, or ran too
    rarely there to show less (issue 21): it would fail the build on a neighbour's load, not on
    the code, so it runs where its failures are counted, not where they block."""
    if config.getoption("--timing"):
        return
    skip = pytest.mark.skip(
        reason="real-time check: .ci/timing-checks runs it (or pytest --timing)"
    )
    for item in items:
        if "timing" in item.keywords:
            item.add_marker(skip)


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


# Both frameworks, train and predict, one small MLP: the real run that several tests read (each
# real run costs 15-20 s on the 2-core machine, so it is made once per session).
REAL_RUN_SCENARIO = """\
name: e2e
model: mlp
model_args: {hidden: [32], vocab_size: 50, embed_dim: 4}
matrix:
  framework: [jax, tensorflow]
  workload: [train, predict]
  batch_size: [16]
measure: {warmup_steps: 1, min_steps: 3, min_seconds: 0.0, max_seconds: 2.0, target_rel_ci: 0.5,
          timeout_s: 60}
"""


@dataclass(frozen=True)
class RealRun:
    scenario: Path
    run_dir: Path
    stdout: str


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    """``bench run`` of ``REAL_RUN_SCENARIO`` through real JAX and TensorFlow workers, shared:
    tests read it and must not change it."""
    root = tmp_path_factory.mktemp("real-run")
    scenario = root / "s.yaml"
    scenario.write_text(REAL_RUN_SCENARIO)
    done = subprocess.run(
        bench_cmd("run", str(scenario), "--results-dir", str(root / "results")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = [p for p in (root / "results").iterdir() if p.is_dir()]
    return RealRun(scenario, run_dir, done.stdout)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A real PostgreSQL server for the whole session (tests/fixtures/postgres.py)."""
    from tests.fixtures import postgres

    if postgres.binaries() is None and not os.environ.get("BENCH_TEST_PG_URL"):
        pytest.skip(postgres.WHY_NOT)
    yield from postgres.server()


@pytest.fixture(params=["sqlite", "postgresql"])
def history_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty history database URL: a SQLite file, or a new database on the server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite'}"
    from tests.fixtures.postgres import fresh_database

    server = request.getfixturevalue("pg_server")
    return fresh_database(
        server, "t_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    )

"""Results across commits in a database, and the changes in them confirmed by a re-run.

    import bench.history
    df = bench.history.load(metric="step_time")        # results/history.sqlite, or $BENCH_DB

The store (``store``, ``schema``, ``versioning``, ``migrations/``) keeps a point per run, cell
and metric; ``ingest`` adds runs; ``read`` reads points back; ``detect`` finds suspected
changes in each series; ``confirm`` re-runs the two commits around a suspect, interleaved,
and judges them by the gate's rule; ``baseline`` gives the gate the points of a branch since
its last confirmed change. SQLAlchemy, Alembic and pandas are imported when first used.
"""

from __future__ import annotations

from typing import Any


def load(*args: Any, **kwargs: Any) -> Any:
    """``bench.history.read.load``: the history's points as a pandas DataFrame."""
    from bench.history.read import load as _load

    return _load(*args, **kwargs)

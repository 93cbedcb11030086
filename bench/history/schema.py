"""The history's tables, in SQLAlchemy Core: one definition that SQLite, PostgreSQL and BigQuery
all read.

Keys are natural (a run id, a cell id, a metric name), never auto-increment counters, because
BigQuery has none and a natural key is what makes ``bench history add`` idempotent everywhere:
adding a run twice finds its ``runs`` row and adds nothing.

Changing a table means a new Alembic revision in ``migrations/versions`` (``migrations.py``
applies them); ``SCHEMA_REVISION`` is the newest one, the revision this bench writes.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_REVISION = "0001"

metadata = MetaData()

# One row per run added: where and when it was measured, on what machine.
runs = Table(
    "bench_runs",
    metadata,
    Column("run_id", String(200), primary_key=True),
    Column("commit", String(64), nullable=False),
    Column("branch", String(200), nullable=False),
    # The order of the series: the commit's own time where git knows it, else the run's start.
    Column("commit_time", String(40), nullable=False),
    Column("started_at", String(40), nullable=False),
    Column("added_at", String(40), nullable=False),
    Column("machine", String(16), nullable=False),  # a short hash of the fingerprint
    # JSON: the gate's document of the run (id, scenario, environment fingerprint, reference
    # kernel timings), so a baseline built from the history is the one the gate would build
    Column("gate", Text, nullable=False),
    Column("scenario", String(200), nullable=False),
    Column("scenario_sha256", String(64), nullable=False),
)

# One row per (run, cell): the cell's key and what the gate needs to pool it as a baseline (the
# gate's own per-cell document: thinned samples, process medians), as JSON.
cells = Table(
    "bench_cells",
    metadata,
    Column("run_id", String(200), ForeignKey("bench_runs.run_id"), primary_key=True),
    Column("cell_id", String(400), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("key", Text, nullable=False),
    Column("gate", Text, nullable=False),
)

# One row per (run, cell, metric): the point a series plots and the detector reads.
points = Table(
    "bench_points",
    metadata,
    Column("run_id", String(200), ForeignKey("bench_runs.run_id"), primary_key=True),
    Column("cell_id", String(400), primary_key=True),
    Column("metric", String(60), primary_key=True),
    Column("unit", String(20), nullable=False),
    Column("median", Float, nullable=False),
    Column("ci_lo", Float, nullable=False),  # 95% interval of the median, within the run
    Column("ci_hi", Float, nullable=False),
    Column("n", Integer, nullable=False),
    # max / min - 1 of the run's per-process medians (measure.repeats); NULL with one process
    Column("process_spread", Float),
)

# Suspected and judged changes: one row per (branch, cell, metric, commit pair).
changes = Table(
    "bench_changes",
    metadata,
    Column("change_id", String(64), primary_key=True),  # sha256 of the natural key
    Column("branch", String(200), nullable=False),
    Column("cell_id", String(400), nullable=False),
    Column("metric", String(60), nullable=False),
    Column("before_commit", String(64), nullable=False),
    Column("after_commit", String(64), nullable=False),
    # suspect (first stage) | confirmed | cleared | inconclusive (second stage)
    Column("status", String(20), nullable=False),
    Column("ratio", Float),  # after / before
    Column("ci_lo", Float),
    Column("ci_hi", Float),
    Column("verdict", String(20)),  # the gate's verdict that decided it
    Column("detected_at", String(40), nullable=False),
    Column("judged_at", String(40)),
    Column("detail", Text, nullable=False),  # JSON: the suspect's window, the judgement's reason
)

"""The first history schema: runs, cells, points, changes.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    # Written out rather than taken from bench.history.schema: a migration is frozen history,
    # and the schema module will move on.
    op.create_table(
        "bench_runs",
        sa.Column("run_id", sa.String(200), primary_key=True),
        sa.Column("commit", sa.String(64), nullable=False),
        sa.Column("branch", sa.String(200), nullable=False),
        sa.Column("commit_time", sa.String(40), nullable=False),
        sa.Column("started_at", sa.String(40), nullable=False),
        sa.Column("added_at", sa.String(40), nullable=False),
        sa.Column("machine", sa.String(16), nullable=False),
        sa.Column("gate", sa.Text, nullable=False),
        sa.Column("scenario", sa.String(200), nullable=False),
        sa.Column("scenario_sha256", sa.String(64), nullable=False),
    )
    op.create_table(
        "bench_cells",
        sa.Column("run_id", sa.String(200), sa.ForeignKey("bench_runs.run_id"), primary_key=True),
        sa.Column("cell_id", sa.String(400), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("gate", sa.Text, nullable=False),
    )
    op.create_table(
        "bench_points",
        sa.Column("run_id", sa.String(200), sa.ForeignKey("bench_runs.run_id"), primary_key=True),
        sa.Column("cell_id", sa.String(400), primary_key=True),
        sa.Column("metric", sa.String(60), primary_key=True),
        sa.Column("unit", sa.String(20), nullable=False),
        sa.Column("median", sa.Float, nullable=False),
        sa.Column("ci_lo", sa.Float, nullable=False),
        sa.Column("ci_hi", sa.Float, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("process_spread", sa.Float),
    )
    op.create_table(
        "bench_changes",
        sa.Column("change_id", sa.String(64), primary_key=True),
        sa.Column("branch", sa.String(200), nullable=False),
        sa.Column("cell_id", sa.String(400), nullable=False),
        sa.Column("metric", sa.String(60), nullable=False),
        sa.Column("before_commit", sa.String(64), nullable=False),
        sa.Column("after_commit", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("ratio", sa.Float),
        sa.Column("ci_lo", sa.Float),
        sa.Column("ci_hi", sa.Float),
        sa.Column("verdict", sa.String(20)),
        sa.Column("detected_at", sa.String(40), nullable=False),
        sa.Column("judged_at", sa.String(40)),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("bench_points_series", "bench_points", ["cell_id", "metric"])

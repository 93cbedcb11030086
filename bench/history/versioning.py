"""The history's schema version: Alembic revisions in ``migrations/``, applied on open.

A database with no tables gets every revision; an older one is upgraded in place; one whose
recorded revision this bench does not know was written by a newer bench and is refused, never
touched, so an older CI job cannot damage a team's shared history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.history.schema import SCHEMA_REVISION

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "bench_schema_version"


class SchemaError(Exception):
    """The database's schema is one this bench cannot use."""


def _config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}


def current_revision(connection: Any) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def check(connection: Any, where: str) -> str | None:
    """The database's revision; SchemaError where a newer bench wrote it."""
    revision = current_revision(connection)
    if revision is not None and revision not in known_revisions():
        raise SchemaError(
            f"{where}: history schema revision {revision!r} was written by a newer bench; this "
            f"bench knows revisions up to {SCHEMA_REVISION!r}: upgrade bench to use it"
        )
    return revision


def upgrade(connection: Any, where: str) -> None:
    """Bring the database to ``SCHEMA_REVISION`` on ``connection`` (the caller commits)."""
    from alembic import command

    if check(connection, where) == SCHEMA_REVISION:
        return
    config = _config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")

"""Alembic's entry point for the history's migrations: run on the connection the store opened
(``bench.history.versioning`` passes it in), never on a URL of its own."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table="bench_schema_version")
with context.begin_transaction():
    context.run_migrations()

"""The history's database: open it, check or bring its schema up to date, add a run, read rows.

Where it lives: ``--db`` or ``$BENCH_DB``, a SQLAlchemy URL (``postgresql+psycopg://...``,
``bigquery://project/dataset``) or a file path (SQLite); by default ``history.sqlite`` in the
results folder, so a single user has nothing to start.

Every failure is a ``HistoryError`` with one line that names the database (its password
hidden) and what went wrong: a server that cannot be reached, a file that is not a database,
a schema a newer bench wrote. A run is added in one transaction, so a writer that dies adds
all of a run or none of it. Writers take a lock first (a lock file beside a SQLite database, a
transaction-scoped advisory lock on PostgreSQL), so two at once are served one after the other
and the schema is created once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.history.versioning import SchemaError, check, upgrade

DEFAULT_FILE = "history.sqlite"
ENV = "BENCH_DB"
CONNECT_TIMEOUT_S = 10
SQLITE_BUSY_S = 60
# Any constant: PostgreSQL advisory locks are numbers agreed among the writers.
PG_LOCK = 0x62656E6368  # "bench"


class HistoryError(Exception):
    """A history that cannot be used; the message is one line for the user."""


def resolve_url(db: str | None, results_dir: str | Path = "results") -> str:
    """The database URL from ``--db``, else ``$BENCH_DB``, else SQLite in ``results_dir``."""
    text = db or os.environ.get(ENV) or str(Path(results_dir) / DEFAULT_FILE)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def shown(url: str) -> str:
    """The URL as it may be printed: without its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _engine(url: str, where: str) -> Any:
    try:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    except ImportError:
        raise HistoryError(
            "bench history needs SQLAlchemy and Alembic: pip install 'bench[history]'"
        ) from None
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise HistoryError(f"{where}: not a database URL or file path") from None
    args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        args = {"timeout": SQLITE_BUSY_S}
    elif parsed.get_backend_name() == "postgresql":
        args = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        return create_engine(parsed, connect_args=args)
    except NoSuchModuleError:
        raise HistoryError(
            f"{where}: no SQLAlchemy dialect for {parsed.drivername!r} is installed "
            "(PostgreSQL: pip install 'bench[postgres]'; BigQuery: pip install 'bench[bigquery]')"
        ) from None
    except (ImportError, ArgumentError) as exc:
        raise HistoryError(f"{where}: cannot use this database ({exc})") from None


class Store:
    """An open history database."""

    def __init__(self, url: str, engine: Any, where: str):
        self.url = url
        self.engine = engine
        self.where = where
        self.sqlite_path = engine.url.database if engine.dialect.name == "sqlite" else None

    @classmethod
    def open(cls, url: str, *, write: bool) -> Store:
        """Open ``url``; for writing, create or upgrade its schema; for reading, refuse a
        database that holds no history."""
        where = shown(url)
        engine = _engine(url, where)
        store = cls(url, engine, where)
        path = store.sqlite_path
        if path and path != ":memory:":
            if not write and not Path(path).exists():
                raise HistoryError(f"{path}: no history here yet; add runs with: bench history add")
            if write:
                try:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise HistoryError(f"{path}: cannot create its folder ({exc})") from None
        if write:
            with store.writing() as conn:
                upgrade(conn, where)
        else:
            with store.reading() as conn:
                if check(conn, where) is None:
                    raise HistoryError(f"{where}: holds no bench history (no schema version)")
        return store

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        from sqlalchemy.exc import DatabaseError, OperationalError, SQLAlchemyError

        try:
            yield
        except SchemaError as exc:
            raise HistoryError(str(exc)) from None
        except OperationalError as exc:
            raise HistoryError(
                f"{self.where}: cannot use the database: {_first_line(exc)}"
            ) from None
        except DatabaseError as exc:
            raise HistoryError(
                f"{self.where}: not a readable bench history ({_first_line(exc)})"
            ) from None
        except SQLAlchemyError as exc:
            raise HistoryError(f"{self.where}: {_first_line(exc)}") from None

    @contextlib.contextmanager
    def reading(self) -> Iterator[Any]:
        with self._errors(), self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def writing(self) -> Iterator[Any]:
        """One transaction, with the writers' lock held: committed whole or not at all."""
        with self._errors(), self._file_lock(), self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                from sqlalchemy import text

                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK})
            yield conn

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        if not self.sqlite_path or self.sqlite_path == ":memory:":
            yield
            return
        lock = f"{self.sqlite_path}.lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise HistoryError(f"{lock}: cannot open the writers' lock ({exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def close(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------- writing

    def add(self, rows: Any) -> bool:
        """Add a run's rows (``bench.history.points.RunRows``); False when the run is there."""
        from sqlalchemy import select

        from bench.history.schema import cells, points, runs

        with self.writing() as conn:
            there = conn.execute(
                select(runs.c.run_id).where(runs.c.run_id == rows.run["run_id"])
            ).first()
            if there is not None:
                return False
            conn.execute(runs.insert(), [rows.run])
            if rows.cells:
                conn.execute(cells.insert(), rows.cells)
            if rows.points:
                conn.execute(points.insert(), rows.points)
        return True

    # ---------------------------------------------------------------- reading

    def point_rows(self, metric: str | None = None, branch: str | None = None) -> list[dict]:
        """Every point with its run's commit, branch, times and machine, in series order."""
        from sqlalchemy import select

        from bench.history.schema import cells, points, runs

        query = (
            select(
                runs.c.commit,
                runs.c.branch,
                runs.c.commit_time,
                runs.c.started_at,
                runs.c.machine,
                runs.c.scenario,
                points,
                cells.c.key,
            )
            .join(runs, runs.c.run_id == points.c.run_id)
            .join(
                cells, (cells.c.run_id == points.c.run_id) & (cells.c.cell_id == points.c.cell_id)
            )
            .order_by(runs.c.commit_time, runs.c.started_at, points.c.run_id, points.c.cell_id)
        )
        if metric:
            query = query.where(points.c.metric == metric)
        if branch:
            query = query.where(runs.c.branch == branch)
        with self.reading() as conn:
            found = [dict(r._mapping) for r in conn.execute(query)]
        for row in found:
            row["key"] = json.loads(row["key"])
        return found

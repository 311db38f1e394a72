"""What every PostgreSQL store shares: the connection pool (pgvector types registered),
the checks that the schema is migrated, the pooled store's lifecycle and transactions
with psycopg errors mapped to pipeline errors.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool

from pipeline.adapters.postgres.connect import connect, describe, map_psycopg_errors
from pipeline.errors import ConfigError
from pipeline.statements import job_sql, sql

Pool = ConnectionPool[psycopg.Connection[Any]]


def check_vector_column(
    dsn: str, table: str, column: str, dimension: int, *, timeout_s: float
) -> None:
    """Refuse to start when the schema's vector column is not ``vector(dimension)`` (or
    an untyped ``vector``, which takes any)."""
    query = sql.vector_column(table, column)
    with connect(dsn, autocommit=True, timeout_s=timeout_s) as conn, map_psycopg_errors():
        row = conn.execute(query.text, query.params).fetchone()
    if row is None:
        raise ConfigError(
            f"{table}.{column} does not exist in {describe(dsn)}: run `quarry migrate` first"
        )
    declared_dimension, declared = int(row[0]), str(row[1])
    if declared_dimension == -1:
        return  # a vector of any dimension (embedding_cache since migration 0019)
    if declared_dimension != dimension:
        raise ConfigError(
            f"{table}.{column} is {declared} in {describe(dsn)} but the embedding dimension"
            f" is {dimension}: add a migration for the new dimension or use a model of"
            f" dimension {declared_dimension}"
        )


def check_vector_version(
    dsn: str, minimum: tuple[int, ...], feature: str, *, timeout_s: float
) -> None:
    """Refuse to start when the pgvector extension is older than ``minimum`` (which
    ``feature`` needs), naming the version found and the fix."""
    query = sql.vector_extension_version()
    with connect(dsn, autocommit=True, timeout_s=timeout_s) as conn, map_psycopg_errors():
        row = conn.execute(query.text, query.params).fetchone()
    found = "none" if row is None else str(row[0])
    if row is None or _version(found) < minimum:
        wanted = ".".join(str(part) for part in minimum)
        raise ConfigError(
            f"{feature} needs pgvector >= {wanted} but {describe(dsn)} has {found}: install"
            " a PostgreSQL with a newer pgvector (the stack's: `make install`) and run"
            " `quarry migrate` (0018 updates the extension), or set it off"
        )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in text.split("."))


def open_pool(dsn: str, *, pool_size: int, timeout_s: float, name: str) -> Pool:
    """A pool of autocommit connections that know the ``vector`` type; callers open
    their own transactions."""
    if pool_size < 1:
        raise ConfigError(f"pool_size must be at least 1, got {pool_size}")
    pool: Pool = ConnectionPool(
        dsn,
        min_size=1,
        max_size=pool_size,
        kwargs={"autocommit": True, "connect_timeout": max(1, round(timeout_s))},
        configure=register_vector,
        check=ConnectionPool.check_connection,
        timeout=timeout_s,
        name=name,
        open=False,
    )
    with map_psycopg_errors():
        pool.open(wait=False)
    return pool


class PooledStore:
    """A store over a connection pool: :meth:`close` it, or use it as a context manager."""

    _pool: Pool

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_checked_pool(
    dsn: str, *, table: str, column: str, pool_size: int, timeout_s: float, name: str
) -> Pool:
    """A pool, once ``table.column`` is known to exist (:class:`ConfigError` naming the
    missing column and the fix otherwise; :class:`StoreUnavailableError` if unreachable)."""
    query = job_sql.schema_column(table, column)
    with connect(dsn, autocommit=True, timeout_s=timeout_s) as conn, map_psycopg_errors():
        found = conn.execute(query.text, query.params).fetchone()
    if found is None:
        raise ConfigError(
            f"{table}.{column} does not exist in {describe(dsn)}: run `quarry migrate` first"
        )
    return open_pool(dsn, pool_size=pool_size, timeout_s=timeout_s, name=name)


class PgStore(PooledStore):
    """A pooled store whose every call maps psycopg errors to pipeline errors."""

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with map_psycopg_errors(), self._pool.connection() as conn, conn.transaction():
            yield conn

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with map_psycopg_errors(), self._pool.connection() as conn:
            yield conn


def copy_rows(
    cur: psycopg.Cursor[Any], statement: str, types: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """COPY ``rows`` (of ``types``) through ``statement`` (a ``COPY ... FROM STDIN``)."""
    with cur.copy(statement) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


def execute(conn: psycopg.Connection[Any], query: sql.Query) -> psycopg.Cursor[Any]:
    return conn.execute(query.text, query.params)

"""PgMigrationTarget: applies SQL migrations, each in one transaction with its record.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import psycopg

from pipeline.adapters.postgres.connect import connect, map_psycopg_errors
from pipeline.errors import MigrationError
from pipeline.migration import AppliedMigration, Migration

# Any constant works; it only has to be the same for every runner of this schema.
_ADVISORY_LOCK_KEY = 0x5155_4152  # "QUAR"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class PgMigrationTarget:
    """SQL migrations on one PostgreSQL database, recorded in ``schema_migrations``."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: psycopg.Connection | None = None

    @property
    def kind(self) -> Literal["sql"]:
        return "sql"

    @contextmanager
    def lock(self) -> Iterator[None]:
        with connect(self._dsn, autocommit=True) as conn, map_psycopg_errors():
            conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
            self._conn = conn
            try:
                yield
            finally:
                self._conn = None
                conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))

    def applied(self) -> dict[int, AppliedMigration]:
        if self._conn is not None:
            return self._applied(self._conn)
        with connect(self._dsn, autocommit=True) as conn:
            return self._applied(conn)

    @staticmethod
    def _applied(conn: psycopg.Connection) -> dict[int, AppliedMigration]:
        with map_psycopg_errors():
            # A dry run on a fresh database must not create even the bookkeeping table.
            exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
            if exists is None or exists[0] is None:
                return {}
            rows = conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
        return {int(v): AppliedMigration(int(v), str(n), str(c)) for v, n, c in rows}

    def apply(self, migration: Migration) -> None:
        conn = self._require_conn()
        try:
            with conn.transaction():
                conn.execute(_CREATE_TABLE)
                # No parameters: psycopg sends the file as one simple query, so a file may
                # hold several statements; all of them commit or none does.
                conn.execute(migration.text.encode("utf-8"))
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
        except psycopg.OperationalError:
            with map_psycopg_errors():
                raise
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MigrationError(f"{migration.label} failed: {first}") from exc

    def _require_conn(self) -> psycopg.Connection:
        if self._conn is None:
            raise RuntimeError("PgMigrationTarget used outside lock()")
        return self._conn

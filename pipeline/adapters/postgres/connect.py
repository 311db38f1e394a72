"""PostgreSQL connection helpers and the translation of psycopg errors.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from config.redaction import redact_url
from pipeline.errors import InvalidInputError, StoreUnavailableError

STORE = "postgres"


@contextmanager
def map_psycopg_errors(store: str = STORE) -> Iterator[None]:
    """Map psycopg exceptions to pipeline errors: lost server → transient, bad data → permanent."""
    try:
        yield
    except (psycopg.OperationalError, psycopg.errors.AdminShutdown) as exc:
        raise StoreUnavailableError(store, _first_line(exc)) from exc
    except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
        raise InvalidInputError(f"{store} rejected the data: {_first_line(exc)}") from exc
    except psycopg.InterfaceError as exc:
        raise StoreUnavailableError(store, _first_line(exc)) from exc


def connect(dsn: str, *, autocommit: bool = False, timeout_s: float = 5.0) -> psycopg.Connection:
    with map_psycopg_errors():
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=max(1, int(timeout_s)))


def ensure_database(dsn: str) -> bool:
    """Create the DSN's database if it does not exist (via the `postgres` database).

    Returns whether it was created.
    """
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    name = str(info.get("dbname") or "postgres")
    admin = psycopg.conninfo.make_conninfo(dsn, dbname="postgres")
    with connect(admin, autocommit=True) as conn, map_psycopg_errors():
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False
        return True


def describe(dsn: str) -> str:
    return redact_url(dsn)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

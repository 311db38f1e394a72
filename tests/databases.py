"""Fresh, throw-away databases on the session stack's real PostgreSQL and graph server.

Contract suites take one per module (or per case) so that they never see each other's
rows; each is dropped afterwards.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import httpx
import neo4j
import psycopg

from config.endpoints import Endpoints
from config.settings import QuarrySettings
from pipeline.adapters.neo4j.driver import make_driver
from pipeline.adapters.postgres.connect import ensure_database


def database_dsn(endpoints: Endpoints, name: str) -> str:
    """The stack's PostgreSQL DSN with another database name."""
    return endpoints.postgres_dsn.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def fresh_pg_database(endpoints: Endpoints, prefix: str) -> Iterator[str]:
    """A new, empty database (its DSN), dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    dsn = database_dsn(endpoints, name)
    ensure_database(dsn)
    try:
        yield dsn
    finally:
        with psycopg.connect(database_dsn(endpoints, "postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _graph_command(settings: QuarrySettings, endpoints: Endpoints, command: str) -> None:
    http = f"http://{settings.stack_host}:{settings.stack_graph_http_port}"
    httpx.post(
        f"{http}/api/v1/server",
        json={"command": command},
        auth=(endpoints.neo4j_user, endpoints.neo4j_password),
        timeout=30,
    ).raise_for_status()


@contextlib.contextmanager
def fresh_graph_database(
    settings: QuarrySettings, endpoints: Endpoints, prefix: str
) -> Iterator[tuple[neo4j.Driver, str]]:
    """A new, empty graph database on the local server and a driver; both gone on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _graph_command(settings, endpoints, f"create database {name}")
    driver = make_driver(endpoints.neo4j_uri, endpoints.neo4j_user, endpoints.neo4j_password)
    try:
        yield driver, name
    finally:
        driver.close()
        with contextlib.suppress(httpx.HTTPError):
            _graph_command(settings, endpoints, f"drop database {name}")

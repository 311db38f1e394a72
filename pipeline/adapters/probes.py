"""Health probes of the services: one short, bounded round trip each.

Used by the API's /readyz and by `quarry dev status`. A probe never raises: it returns
a :class:`Probe` that says whether the service answered and, if not, why.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import neo4j
import psycopg
import redis

from config.redaction import redact_url


@dataclass(frozen=True, slots=True)
class Probe:
    healthy: bool
    detail: str
    latency_s: float


def probe_redis(url: str, timeout_s: float = 2.0) -> Probe:
    started = time.monotonic()
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        try:
            ok = bool(client.ping())
        finally:
            client.close()
        return Probe(ok, "PONG" if ok else "no PONG", time.monotonic() - started)
    except (redis.RedisError, OSError, ValueError) as exc:
        return Probe(False, _short(exc, url), time.monotonic() - started)


def probe_postgres(dsn: str, timeout_s: float = 2.0) -> Probe:
    started = time.monotonic()
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s))) as conn:
            conn.execute("SELECT 1").fetchone()
        return Probe(True, "SELECT 1", time.monotonic() - started)
    except (psycopg.Error, OSError) as exc:
        return Probe(False, _short(exc, dsn), time.monotonic() - started)


def probe_graph(uri: str, user: str, password: str, database: str, timeout_s: float = 3.0) -> Probe:
    started = time.monotonic()
    try:
        with neo4j.GraphDatabase.driver(
            uri, auth=(user, password), connection_timeout=timeout_s
        ) as driver:
            # An auto-commit query: the driver does not retry it (execute_query would
            # retry a down server for 30 s, and a probe must answer at once).
            with driver.session(database=database) as session:
                record = session.run("RETURN 1 AS ok").single()
            ok = record is not None and record["ok"] == 1
        return Probe(ok, "RETURN 1", time.monotonic() - started)
    except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError, OSError) as exc:
        return Probe(False, _short(exc, uri), time.monotonic() - started)


def probe_http(url: str, expect: tuple[int, ...] = (200, 204), timeout_s: float = 2.0) -> Probe:
    """GET ``url``; healthy when the status is one of ``expect``."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (http only)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    except (urllib.error.URLError, OSError) as exc:
        return Probe(False, _short(exc, url), time.monotonic() - started)
    return Probe(status in expect, f"HTTP {status}", time.monotonic() - started)


def _short(exc: BaseException, url: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # Drivers echo the DSN in some messages; never let a password through.
    return text.replace(url, redact_url(url))[:300]

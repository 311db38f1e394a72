"""Run every migration against the configured stores, once, from one process.

Must not import: api/, cli/.
"""

from __future__ import annotations

from config.endpoints import Endpoints
from migrations.runner import MigrationReport, run
from pipeline.adapters.neo4j.driver import make_driver
from pipeline.adapters.neo4j.migrations import Neo4jMigrationTarget
from pipeline.adapters.postgres.connect import ensure_database
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.token_store import PgTokenStore


def migrate_reports(endpoints: Endpoints, *, dry_run: bool = False) -> list[MigrationReport]:
    if not dry_run:
        ensure_database(endpoints.postgres_dsn)
    reports = [run(PgMigrationTarget(endpoints.postgres_dsn), dry_run=dry_run)]
    driver = make_driver(endpoints.neo4j_uri, endpoints.neo4j_user, endpoints.neo4j_password)
    try:
        reports.append(run(Neo4jMigrationTarget(driver, endpoints.neo4j_database), dry_run=dry_run))
    finally:
        driver.close()
    return reports


def describe(report: MigrationReport) -> list[str]:
    if report.dry_run:
        if not report.pending:
            return [f"{report.kind}: up to date"]
        return [f"{report.kind}: would apply {label}" for label in report.pending]
    if not report.applied:
        return [f"{report.kind}: up to date"]
    return [f"{report.kind}: applied {label}" for label in report.applied]


def migrate_all(endpoints: Endpoints, *, dry_run: bool = False) -> list[str]:
    return [line for r in migrate_reports(endpoints, dry_run=dry_run) for line in describe(r)]


def register_token(dsn: str, tenant: str, token: str, label: str) -> None:
    """Store ``token`` (hashed) for ``tenant``; idempotent."""
    store = PgTokenStore(dsn, pool_size=1)
    try:
        store.register(tenant, token, label)
    finally:
        store.close()

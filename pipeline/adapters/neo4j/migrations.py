"""Neo4jMigrationTarget: applies Cypher migrations and records them as graph nodes.

Schema statements cannot share a transaction with data writes in Neo4j, so a Cypher
migration is applied statement by statement; every statement must be idempotent
(``IF NOT EXISTS``) so that a run interrupted between statements can be re-run.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal

import neo4j

from pipeline.adapters.neo4j.driver import map_neo4j_errors
from pipeline.errors import MigrationError, PipelineError
from pipeline.migration import AppliedMigration, Migration

RECORD_LABEL = "QuarryMigration"


def split_statements(text: str) -> list[str]:
    """Statements of a Cypher file: ``;`` ends one at the end of a line; ``//`` comments."""
    statements: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("//"):
            continue
        current.append(line)
        if stripped.endswith(";"):
            statements.append("\n".join(current).strip().removesuffix(";").strip())
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return [s for s in statements if s]


class Neo4jMigrationTarget:
    """Cypher migrations on one graph database, recorded as ``(:QuarryMigration)`` nodes."""

    def __init__(self, driver: neo4j.Driver, database: str) -> None:
        self._driver = driver
        self._database = database

    @property
    def kind(self) -> Literal["cypher"]:
        return "cypher"

    @contextmanager
    def lock(self) -> Iterator[None]:
        # Migrations run once, from the process that starts the stack (never from
        # workers); the idempotent statements make a concurrent run harmless.
        yield

    def applied(self) -> dict[int, AppliedMigration]:
        with map_neo4j_errors():
            records = self._run(
                f"MATCH (m:{RECORD_LABEL}) RETURN m.version AS version, "
                "m.name AS name, m.checksum AS checksum"
            )
        return {
            int(r["version"]): AppliedMigration(
                int(r["version"]), str(r["name"]), str(r["checksum"])
            )
            for r in records
        }

    def apply(self, migration: Migration) -> None:
        for statement in split_statements(migration.text):
            try:
                with map_neo4j_errors():
                    self._run(statement)
            except PipelineError as exc:
                raise MigrationError(f"{migration.label} failed at `{statement}`: {exc}") from exc
        with map_neo4j_errors():
            self._run(
                f"CREATE CONSTRAINT quarry_migration_version IF NOT EXISTS "
                f"FOR (m:{RECORD_LABEL}) REQUIRE m.version IS UNIQUE"
            )
            self._run(
                f"MERGE (m:{RECORD_LABEL} {{version: $version}}) "
                "SET m.name = $name, m.checksum = $checksum, m.applied_at = $applied_at",
                version=migration.version,
                name=migration.name,
                checksum=migration.checksum,
                applied_at=_now_iso(),
            )

    def _run(self, query: str, **params: object) -> list[neo4j.Record]:
        with self._driver.session(database=self._database) as session:
            return list(session.run(query, params))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()

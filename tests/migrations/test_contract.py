"""One contract for every MigrationTarget: the fake, real PostgreSQL and the real graph.

Each case gets a fresh database on the session's real services.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from config.endpoints import Endpoints
from devstack.stack import Stack
from migrations.runner import discover, run
from pipeline.adapters.fakes.migrations import InMemoryMigrationTarget
from pipeline.adapters.neo4j.driver import make_driver
from pipeline.adapters.neo4j.migrations import RECORD_LABEL, Neo4jMigrationTarget
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.errors import MigrationError
from pipeline.ports import MigrationTarget
from tests.databases import fresh_graph_database, fresh_pg_database


@pytest.fixture(params=["memory", "postgres", "graph"])
def target(request: pytest.FixtureRequest) -> Iterator[MigrationTarget]:
    if request.param == "memory":
        yield InMemoryMigrationTarget("sql")
        return
    stack: Stack = request.getfixturevalue("stack")
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    if request.param == "postgres":
        with fresh_pg_database(endpoints, "mig") as dsn:
            yield PgMigrationTarget(dsn)
        return
    with fresh_graph_database(stack.settings, endpoints, "mig") as (driver, name):
        yield Neo4jMigrationTarget(driver, name)


def _write(root: Path, kind: str, files: dict[str, str]) -> Path:
    folder = root / kind
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return root


def _sample(root: Path, kind: str) -> Path:
    if kind == "sql":
        return _write(
            root,
            "sql",
            {
                "0001_one.sql": "CREATE TABLE contract_one (id int PRIMARY KEY);",
                "0002_two.sql": "CREATE INDEX contract_one_id ON contract_one (id);\n"
                "CREATE TABLE contract_two (id int);",
            },
        )
    return _write(
        root,
        "cypher",
        {
            "0001_one.cypher": "CREATE CONSTRAINT contract_one IF NOT EXISTS "
            "FOR (n:ContractOne) REQUIRE n.id IS UNIQUE;",
            "0002_two.cypher": "// an index\nCREATE INDEX contract_two IF NOT EXISTS "
            "FOR (n:ContractTwo) ON (n.name);",
        },
    )


@pytest.mark.timeout(120)
def test_fresh_store_gets_every_migration_then_a_rerun_is_a_no_op(
    target: MigrationTarget, tmp_path: Path
) -> None:
    available = discover(target.kind, _sample(tmp_path, target.kind))
    first = run(target, available)
    assert first.applied == (f"{target.kind} 0001_one", f"{target.kind} 0002_two")
    second = run(target, available)
    assert second.applied == ()
    assert sorted(target.applied()) == [1, 2]


@pytest.mark.timeout(120)
def test_dry_run_lists_pending_and_writes_nothing(target: MigrationTarget, tmp_path: Path) -> None:
    available = discover(target.kind, _sample(tmp_path, target.kind))
    report = run(target, available, dry_run=True)
    assert report.pending == (f"{target.kind} 0001_one", f"{target.kind} 0002_two")
    with target.lock():
        assert target.applied() == {}


@pytest.mark.timeout(120)
def test_changed_checksum_of_an_applied_migration_is_refused(
    target: MigrationTarget, tmp_path: Path
) -> None:
    root = _sample(tmp_path, target.kind)
    run(target, discover(target.kind, root))
    edited = root / target.kind / f"0001_one.{target.kind}"
    edited.write_text(edited.read_text(encoding="utf-8") + "\n// edited\n", encoding="utf-8")
    (root / target.kind / f"0003_three.{target.kind}").write_text(
        "CREATE TABLE contract_three (id int);"
        if target.kind == "sql"
        else "CREATE INDEX contract_three IF NOT EXISTS FOR (n:ContractThree) ON (n.x);",
        encoding="utf-8",
    )
    with pytest.raises(MigrationError, match="0001_one was changed after it was applied"):
        run(target, discover(target.kind, root))
    with target.lock():
        assert sorted(target.applied()) == [1, 2], "nothing may be applied after a refusal"


@pytest.mark.timeout(120)
def test_shipped_schema_applies_on_real_stores(stack: Stack, endpoints: Endpoints) -> None:
    """The session stack ran the shipped migrations; the tables and records are there."""
    with psycopg.connect(endpoints.postgres_dsn) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        }
        versions = [
            r[0]
            for r in conn.execute(
                "SELECT version FROM schema_migrations ORDER BY version"
            ).fetchall()
        ]
        ext = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
    assert {"tenants", "repositories", "snapshots", "files", "chunks", "jobs"} <= tables
    assert versions == [m.version for m in discover("sql")]
    assert ext is not None
    driver = make_driver(endpoints.neo4j_uri, endpoints.neo4j_user, endpoints.neo4j_password)
    with driver:
        records, _, _ = driver.execute_query(
            f"MATCH (m:{RECORD_LABEL}) RETURN m.version AS v ORDER BY v",
            database_=endpoints.neo4j_database,
        )
    assert [r["v"] for r in records] == [m.version for m in discover("cypher")]


def test_cli_migrate_dry_run_on_an_up_to_date_stack_says_so(stack: Stack) -> None:
    from config.settings import settings_as_env
    from tests.stackutil import run_quarry

    result = run_quarry("migrate", "--dry-run", env=settings_as_env(stack.settings), timeout_s=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["sql: up to date", "cypher: up to date"]

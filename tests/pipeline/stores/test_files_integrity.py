"""The file lists of snapshots keep their parents without per-row foreign keys (0022).

A snapshot's file list is one COPY of every file of its commit; migration 0022 replaced
the two per-row foreign keys of ``files`` by statement-level triggers. These tests hold
the same guarantees on a fresh database of the session's real server: a file row names
an existing snapshot of its own repository, a writer holds the snapshot until it
commits, and a deleted snapshot or repository takes its files with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.snapshot_store import PgSnapshotStore
from pipeline.models import FileVersion, RepoRef
from tests.databases import fresh_pg_database


@pytest.fixture(scope="module")
def dsn(endpoints: Endpoints) -> Iterator[str]:
    with fresh_pg_database(endpoints, "files_integrity") as found:
        run(PgMigrationTarget(found))
        yield found


@pytest.fixture
def store(dsn: str) -> Iterator[PgSnapshotStore]:
    with PgSnapshotStore(dsn, pool_size=2) as snapshots:
        yield snapshots


def _files(n: int) -> list[FileVersion]:
    return [FileVersion(f"pkg/m{i}.py", f"{i:064x}", "python", 10 + i) for i in range(n)]


def _begin(store: PgSnapshotStore, name: str = "app", files: int = 50) -> tuple[RepoRef, int]:
    repo = RepoRef(f"t{uuid.uuid4().hex[:8]}", name)
    return repo, store.begin(repo, "a" * 40, _files(files))


def _count(dsn: str, where: str, *params: object) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM files WHERE {where}", params).fetchone()
    assert row is not None
    return int(row[0])


def _repository_id(dsn: str, snapshot_id: int) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT repository_id FROM snapshots WHERE id = %s", (snapshot_id,))
        found = row.fetchone()
    assert found is not None
    return int(found[0])


def test_a_deleted_snapshot_or_repository_takes_its_files(store: PgSnapshotStore, dsn: str) -> None:
    _, first = _begin(store, files=40)
    _, second = _begin(store, files=30)
    _, other = _begin(store, files=20)
    repository = _repository_id(dsn, second)
    assert _count(dsn, "snapshot_id = %s", first) == 40
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM snapshots WHERE id = %s", (first,))
    assert _count(dsn, "snapshot_id = %s", first) == 0
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM repositories WHERE id = %s", (repository,))
    assert _count(dsn, "repository_id = %s", repository) == 0
    assert _count(dsn, "snapshot_id = %s", other) == 20  # nobody else's


def test_a_file_of_a_missing_snapshot_or_of_another_repositorys_is_refused_naming_it(
    store: PgSnapshotStore, dsn: str
) -> None:
    _, snapshot = _begin(store)
    _, foreign = _begin(store)
    foreign_repository = _repository_id(dsn, foreign)
    row = "INSERT INTO files VALUES (%s, %s, 'x.py', %s, 'python', 1)"
    with psycopg.connect(dsn) as conn:
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="snapshot 987654321"):
            conn.execute(row, (987_654_321, foreign_repository, "b" * 64))
        conn.rollback()
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match=f"snapshot {snapshot} "):
            conn.execute(row, (snapshot, foreign_repository, "b" * 64))
        conn.rollback()
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "UPDATE files SET repository_id = %s WHERE snapshot_id = %s",
                (foreign_repository, snapshot),
            )
        conn.rollback()
    assert _count(dsn, "snapshot_id = %s", snapshot) == 50  # nothing of it lost


def test_a_snapshot_is_held_while_a_writer_of_its_files_has_not_committed(
    store: PgSnapshotStore, dsn: str
) -> None:
    _, snapshot = _begin(store, files=5)
    repository = _repository_id(dsn, snapshot)
    with psycopg.connect(dsn) as writer, psycopg.connect(dsn) as deleter:
        writer.execute(
            "INSERT INTO files VALUES (%s, %s, 'late.py', %s, 'python', 1)",
            (snapshot, repository, "c" * 64),
        )
        deleter.execute("SET lock_timeout = '300ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            deleter.execute("DELETE FROM snapshots WHERE id = %s", (snapshot,))
        deleter.rollback()
        writer.commit()
        deleter.execute("DELETE FROM snapshots WHERE id = %s", (snapshot,))
        deleter.commit()
    assert _count(dsn, "snapshot_id = %s", snapshot) == 0  # the late file went too

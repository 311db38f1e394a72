"""One contract for the source blob store: the fake and PostgreSQL.

The PostgreSQL cases run on a fresh database of the session's real server, migrated with
the shipped migrations. Collection is judged against the snapshots' files: the fake is
told which hashes those hold, PostgreSQL reads its ``files`` table.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator

import pytest

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.fakes.blob_store import InMemoryBlobStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.adapters.postgres.blob_store import PgBlobStore
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.snapshot_store import PgSnapshotStore
from pipeline.errors import InvalidInputError
from pipeline.models import FileVersion, RepoRef
from pipeline.ports import BlobStore, SnapshotStore
from tests.databases import fresh_pg_database


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def pg_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_pg_database(endpoints, "blobs") as dsn:
        run(PgMigrationTarget(dsn))
        yield dsn


@pytest.fixture(params=["memory", "postgres"])
def stores(request: pytest.FixtureRequest) -> Iterator[tuple[BlobStore, SnapshotStore]]:
    if request.param == "memory":
        snapshots = InMemorySnapshotStore()
        made: list[int] = []
        original_begin = snapshots.begin

        def begin(repo: RepoRef, commit: str, files: list[FileVersion]) -> int:
            made.append(original_begin(repo, commit, files))
            return made[-1]

        snapshots.begin = begin  # type: ignore[method-assign]

        def referenced() -> set[str]:
            return {f.sha256 for s in made for f in snapshots.snapshot_files(s).values()}

        yield InMemoryBlobStore(referenced=referenced), snapshots
        return
    dsn = request.getfixturevalue("pg_dsn")
    with PgBlobStore(dsn) as blobs, PgSnapshotStore(dsn, pool_size=2) as snapshots:
        yield blobs, snapshots


def test_blobs_read_back_byte_for_byte_and_are_stored_once(
    stores: tuple[BlobStore, SnapshotStore],
) -> None:
    blobs, _ = stores
    one, two = b"def f():\n    return 1\n" * 50, uuid.uuid4().bytes + b"\x00\xff binary"
    assert blobs.missing([sha(one), sha(two)]) == {sha(one), sha(two)}
    assert blobs.put_many({sha(one): one, sha(two): two}) == 2
    assert blobs.put_many({sha(one): one}) == 0  # the same content: a no-op
    assert blobs.missing([sha(one), sha(two)]) == set()
    assert blobs.get_many([sha(one), sha(two), sha(b"never stored")]) == {
        sha(one): one,
        sha(two): two,
    }
    assert blobs.get_many([]) == {} and blobs.missing([]) == set()


def test_a_blob_under_another_contents_hash_or_a_malformed_hash_is_refused(
    stores: tuple[BlobStore, SnapshotStore],
) -> None:
    blobs, _ = stores
    with pytest.raises(InvalidInputError, match="another sha256"):
        blobs.put_many({sha(b"a"): b"b"})
    assert blobs.missing([sha(b"a")]) == {sha(b"a")}
    for bad in ("../../etc/passwd", sha(b"x").upper(), "abc", "x" * 64):
        with pytest.raises(InvalidInputError, match="blob hash"):
            blobs.get_many([bad])
        with pytest.raises(InvalidInputError, match="blob hash"):
            blobs.missing([bad])


def test_collection_keeps_what_a_snapshot_holds_and_what_is_young(
    stores: tuple[BlobStore, SnapshotStore],
) -> None:
    blobs, snapshots = stores
    held, loose = uuid.uuid4().bytes * 3, uuid.uuid4().bytes * 5
    repo = RepoRef(f"t{uuid.uuid4().hex[:8]}", "app")
    snapshots.begin(repo, "c1", [FileVersion("a.py", sha(held), "python", len(held))])
    blobs.put_many({sha(held): held, sha(loose): loose})
    assert blobs.collect(older_than_s=3600, limit=100) == 0  # both too young
    time.sleep(0.05)
    blobs.collect(older_than_s=0, limit=10_000)
    assert blobs.missing([sha(held), sha(loose)]) == {sha(loose)}
    assert blobs.get_many([sha(held)]) == {sha(held): held}

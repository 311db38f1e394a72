"""One contract for the store of uploaded archives: the fake and PostgreSQL, and the
fetcher that reads an upload back on another host."""

from __future__ import annotations

import io
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.fakes.upload_store import InMemoryUploadStore
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.upload_store import PgUploadStore
from pipeline.adapters.sources.fetcher import LocalSourceFetcher
from pipeline.errors import InvalidInputError
from pipeline.jobs import JobSource, SourceKind
from pipeline.ports import UploadStore
from pipeline.sources.policy import LocalSourcePolicy
from pipeline.sources.uploads import upload_location
from tests.databases import fresh_pg_database


@pytest.fixture(scope="module")
def pg_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_pg_database(endpoints, "uploads") as dsn:
        run(PgMigrationTarget(dsn))
        yield dsn


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[UploadStore]:
    if request.param == "memory":
        yield InMemoryUploadStore()
        return
    with PgUploadStore(request.getfixturevalue("pg_dsn")) as pg:
        yield pg


def upload(store: UploadStore, tenant: str, parts: list[bytes]) -> str:
    upload_id = store.begin(tenant)
    for number, part in enumerate(parts):
        store.add_part(upload_id, number, part)
    store.finish(upload_id, sum(map(len, parts)))
    return upload_id


def test_parts_read_back_in_order_for_their_tenant_only(store: UploadStore) -> None:
    parts = [uuid.uuid4().bytes * 1000, b"\x00" * 10, b"end"]
    upload_id = upload(store, "tenant-a", parts)
    assert list(store.read(upload_id, "tenant-a")) == parts
    with pytest.raises(InvalidInputError, match="unknown or incomplete"):
        list(store.read(upload_id, "tenant-b"))


def test_an_unfinished_or_discarded_upload_cannot_be_read(store: UploadStore) -> None:
    unfinished = store.begin("tenant-a")
    store.add_part(unfinished, 0, b"half")
    with pytest.raises(InvalidInputError):
        list(store.read(unfinished, "tenant-a"))
    done = upload(store, "tenant-a", [b"x"])
    store.discard(done)
    with pytest.raises(InvalidInputError):
        list(store.read(done, "tenant-a"))


def test_collection_spares_young_uploads(store: UploadStore) -> None:
    young = upload(store, "tenant-a", [b"young"])
    store.collect(older_than_s=3600, limit=100)
    assert list(store.read(young, "tenant-a")) == [b"young"]
    time.sleep(0.05)
    store.collect(older_than_s=0, limit=10_000)
    with pytest.raises(InvalidInputError):
        list(store.read(young, "tenant-a"))


def test_the_fetcher_extracts_an_upload_on_a_host_without_the_apis_disk(tmp_path: Path) -> None:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        payload = b"def f():\n    return 1\n"
        member = tarfile.TarInfo("pkg-1.0/pkg/mod.py")
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    blob = data.getvalue()
    store = InMemoryUploadStore()
    upload_id = upload(store, "tenant-a", [blob[:10], blob[10:]])
    fetcher = LocalSourceFetcher(
        policy=LocalSourcePolicy.build([], []),  # no local path is allowed at all
        max_archive_bytes=10**6,
        max_extracted_bytes=10**6,
        max_members=10,
        clone_timeout_s=5,
        uploads=store,
    )
    source = JobSource(SourceKind.ARCHIVE, upload_location(upload_id))
    folder, commit = fetcher.fetch(source, tmp_path / "work", tenant="tenant-a")
    assert (folder / "pkg" / "mod.py").read_bytes() == payload and commit is None
    assert not (tmp_path / "work" / "upload.tar.gz").exists()
    with pytest.raises(InvalidInputError):
        fetcher.fetch(source, tmp_path / "other", tenant="tenant-b")
    small = LocalSourceFetcher(
        policy=LocalSourcePolicy.build([], []),
        max_archive_bytes=20,
        max_extracted_bytes=10**6,
        max_members=10,
        clone_timeout_s=5,
        uploads=store,
    )
    with pytest.raises(InvalidInputError, match="larger than 20 bytes"):
        small.fetch(source, tmp_path / "small", tenant="tenant-a")

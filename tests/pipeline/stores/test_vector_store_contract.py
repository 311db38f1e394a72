"""One contract for the vector store and the embedding cache: the fakes and PostgreSQL.

The PostgreSQL cases run on a fresh database of the session's real server, migrated with
the shipped migrations; every test works in repositories of its own.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt
import psycopg
import pytest
from pgvector.psycopg import register_vector

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.fakes.vector_store import InMemoryEmbeddingCache, InMemoryVectorStore
from pipeline.adapters.postgres.embedding_cache import PgEmbeddingCache
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.vector_store import PgVectorStore
from pipeline.errors import ConfigError, InvalidInputError, PermanentError, StoreUnavailableError
from pipeline.models import Chunk, ChunkKind, RepoRef, Span, StoredChunk
from pipeline.ports import EmbeddingCache, VectorStore
from tests.databases import fresh_pg_database

DIM = 384
Vector = npt.NDArray[np.float32]


class Backend(Protocol):
    store: VectorStore

    def embedding(self, repo: RepoRef, file_sha256: str, chunk_id: str) -> Vector | None: ...


class MemoryBackend:
    def __init__(self) -> None:
        self.fake = InMemoryVectorStore(dimension=DIM)
        self.store: VectorStore = self.fake

    def embedding(self, repo: RepoRef, file_sha256: str, chunk_id: str) -> Vector | None:
        return self.fake.embedding(repo, file_sha256, chunk_id)


class PgBackend:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.store: VectorStore = PgVectorStore(dsn, dimension=DIM, pool_size=2)

    def embedding(self, repo: RepoRef, file_sha256: str, chunk_id: str) -> Vector | None:
        with psycopg.connect(self.dsn) as conn:
            register_vector(conn)
            row = conn.execute(
                "SELECT c.embedding FROM chunks c JOIN repositories r ON r.id = c.repository_id"
                " WHERE r.tenant_id = %s AND r.name = %s AND c.file_sha256 = %s AND c.id = %s",
                (repo.tenant, repo.name, file_sha256, chunk_id),
            ).fetchone()
        assert row is not None, "no such chunk"
        return None if row[0] is None else row[0].to_numpy()


@pytest.fixture(scope="module")
def pg_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL with the shipped migrations."""
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_pg_database(endpoints, "vs") as dsn:
        run(PgMigrationTarget(dsn))
        yield dsn


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    real = PgBackend(request.getfixturevalue("pg_dsn"))
    try:
        yield real
    finally:
        real.store.close()  # type: ignore[attr-defined]


@pytest.fixture(params=["memory", "postgres"])
def cache(request: pytest.FixtureRequest) -> Iterator[EmbeddingCache]:
    if request.param == "memory":
        yield InMemoryEmbeddingCache(dimension=DIM)
        return
    real = PgEmbeddingCache(request.getfixturevalue("pg_dsn"), dimension=DIM)
    try:
        yield real
    finally:
        real.close()


@pytest.fixture
def repo(backend: Backend) -> RepoRef:
    made = RepoRef(f"t{uuid.uuid4().hex[:8]}", "repo")
    backend.store.ensure_repository(made)
    return made


def _sc(chunk: Chunk, sha: str, model_id: str, vector: object) -> StoredChunk:
    """A StoredChunk with a numpy vector (the model types it as a sequence of floats)."""
    return StoredChunk(chunk, sha, model_id, cast("Sequence[float] | None", vector))


def _vector(seed: int) -> Vector:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _chunk(path: str, n: int, text: str = "") -> Chunk:
    body = text or f"def handler_{n}():\n    return {n}\n"
    span = Span(n, n + 1, 10 * n, 10 * n + 9)
    kind, digest = ChunkKind.FUNCTION, f"h-{path}-{n}-{body}"
    return Chunk(f"{path}#{n}", path, "python", span, f"mod.handler_{n}", kind, digest, 9, body)


def _stored(path: str, n: int, sha: str, *, seed: int | None = None, text: str = "") -> StoredChunk:
    vector = _vector(seed if seed is not None else n)
    return _sc(_chunk(path, n, text), sha, "model-a", vector)


def _file(path: str, sha: str, count: int = 2) -> list[StoredChunk]:
    return [_stored(path, n, sha) for n in range(1, count + 1)]


def test_upserted_chunks_are_listed_by_key_and_by_file_version(
    backend: Backend, repo: RepoRef
) -> None:
    written = backend.store.upsert_chunks(repo, _file("a.py", "sa") + _file("b.py", "sb", 1))
    assert written == 3
    assert backend.store.chunk_keys(repo) == {
        ("a.py", "sa", "a.py#1"),
        ("a.py", "sa", "a.py#2"),
        ("b.py", "sb", "b.py#1"),
    }
    assert backend.store.file_versions(repo) == {
        "a.py": frozenset({"sa"}),
        "b.py": frozenset({"sb"}),
    }


def test_replaying_an_upsert_writes_nothing_and_changes_nothing(
    backend: Backend, repo: RepoRef
) -> None:
    batch = _file("a.py", "sa", 3)
    assert backend.store.upsert_chunks(repo, batch) == 3
    before = backend.store.chunk_keys(repo)
    assert backend.store.upsert_chunks(repo, batch) == 0
    assert backend.store.chunk_keys(repo) == before
    changed = [batch[0], _stored("a.py", 2, "sa", seed=99), batch[2]]
    assert backend.store.upsert_chunks(repo, changed) == 1
    got = backend.embedding(repo, "sa", "a.py#2")
    assert got is not None and np.allclose(got, _vector(99))


def test_a_new_file_version_lives_beside_the_old_until_retain_versions(
    backend: Backend, repo: RepoRef
) -> None:
    backend.store.upsert_chunks(repo, _file("a.py", "v1"))
    backend.store.upsert_chunks(repo, _file("a.py", "v2"))
    assert backend.store.file_versions(repo) == {"a.py": frozenset({"v1", "v2"})}
    assert len(backend.store.chunk_keys(repo)) == 4, "same chunk ids, two versions"
    assert backend.store.retain_versions(repo, {"a.py": {"v2"}}) == 2
    assert backend.store.chunk_keys(repo) == {("a.py", "v2", "a.py#1"), ("a.py", "v2", "a.py#2")}


def test_a_version_written_whole_drops_its_rows_of_other_ids_and_nothing_else(
    backend: Backend, repo: RepoRef
) -> None:
    """A file version chunked again by a newer chunker (same file sha256, other chunk
    ids) leaves no rows of its old shape; other versions and paths keep theirs."""
    backend.store.upsert_chunks(repo, _file("a.py", "v1", 3) + _file("b.py", "v1", 2))
    backend.store.upsert_chunks(repo, _file("a.py", "v0", 2))
    # Another tenant's repository of the same name, with the same file version.
    other = RepoRef(f"t{uuid.uuid4().hex[:8]}", repo.name)
    backend.store.ensure_repository(other)
    backend.store.upsert_chunks(other, _file("a.py", "v1", 3))
    rechunked = [_stored("a.py", 7, "v1"), _stored("a.py", 2, "v1")]
    assert backend.store.upsert_chunks(repo, rechunked, whole_versions=True) == 1
    assert len(backend.store.chunk_keys(other)) == 3, "another tenant's rows stay"
    assert backend.store.chunk_keys(repo) == {
        ("a.py", "v1", "a.py#7"),
        ("a.py", "v1", "a.py#2"),
        ("a.py", "v0", "a.py#1"),
        ("a.py", "v0", "a.py#2"),
        ("b.py", "v1", "b.py#1"),
        ("b.py", "v1", "b.py#2"),
    }


def test_retain_versions_drops_removed_paths_and_old_versions(
    backend: Backend, repo: RepoRef
) -> None:
    backend.store.upsert_chunks(
        repo, _file("keep.py", "k1") + _file("old.py", "o1") + _file("gone.py", "g1")
    )
    backend.store.upsert_chunks(repo, _file("old.py", "o2"))
    keep: dict[str, set[str]] = {"keep.py": {"k1"}, "old.py": {"o2"}, "new.py": {"n1"}}
    keep["gone.py"] = set()  # no version of it is held any more
    assert backend.store.retain_versions(repo, keep) == 4
    assert backend.store.file_versions(repo) == {
        "keep.py": frozenset({"k1"}),
        "old.py": frozenset({"o2"}),
    }
    assert backend.store.retain_versions(repo, keep) == 0
    assert backend.store.retain_versions(repo, {}) == 0  # paths not named are untouched
    # Two versions of one path held at once (two refs): both stay.
    backend.store.upsert_chunks(repo, _file("old.py", "o3"))
    assert backend.store.retain_versions(repo, {"old.py": {"o2", "o3"}}) == 0
    assert backend.store.retain_versions(repo, {"keep.py": set(), "old.py": set()}) == 6
    assert backend.store.chunk_keys(repo) == set()


def test_delete_files_leaves_no_row_of_any_version(backend: Backend, repo: RepoRef) -> None:
    backend.store.upsert_chunks(
        repo, _file("a.py", "v1") + _file("a.py", "v2") + _file("b.py", "s")
    )
    assert backend.store.delete_files(repo, ["a.py", "missing.py"]) == 4
    assert backend.store.chunk_keys(repo) == {("b.py", "s", "b.py#1"), ("b.py", "s", "b.py#2")}
    assert backend.store.file_versions(repo) == {"b.py": frozenset({"s"})}
    assert backend.store.delete_files(repo, ["a.py"]) == 0
    assert backend.store.delete_files(repo, []) == 0


def test_deleting_the_repository_removes_its_chunks_and_writes_need_it_again(
    backend: Backend, repo: RepoRef
) -> None:
    backend.store.upsert_chunks(repo, _file("a.py", "s"))
    backend.store.delete_repository(repo)
    assert backend.store.chunk_keys(repo) == set()
    assert backend.store.file_versions(repo) == {}
    with pytest.raises(InvalidInputError, match="does not exist"):
        backend.store.upsert_chunks(repo, _file("a.py", "s"))
    backend.store.delete_repository(repo)  # idempotent
    backend.store.ensure_repository(repo)
    assert backend.store.upsert_chunks(repo, _file("a.py", "s")) == 2


def test_a_tenant_never_sees_another_tenants_rows_of_the_same_repository_name(
    backend: Backend,
) -> None:
    tag = uuid.uuid4().hex[:8]
    a, b = RepoRef(f"a{tag}", "shared"), RepoRef(f"b{tag}", "shared")
    for repo in (a, b, a):  # ensuring twice is a no-op
        backend.store.ensure_repository(repo)
    backend.store.upsert_chunks(a, _file("a.py", "sa"))
    backend.store.upsert_chunks(b, _file("b.py", "sb", 1))
    assert {k[0] for k in backend.store.chunk_keys(a)} == {"a.py"}
    assert {k[0] for k in backend.store.chunk_keys(b)} == {"b.py"}
    assert backend.store.delete_files(b, ["a.py"]) == 0
    assert backend.store.retain_versions(b, {"a.py": set()}) == 0
    assert backend.store.retain_versions(b, {"a.py": set(), "b.py": set()}) == 1
    assert len(backend.store.chunk_keys(a)) == 2
    backend.store.delete_repository(a)
    assert backend.store.chunk_keys(b) == set() and backend.store.chunk_keys(a) == set()


def test_embeddings_round_trip_as_float32(backend: Backend, repo: RepoRef) -> None:
    sent = _vector(7)
    backend.store.upsert_chunks(repo, [_sc(_chunk("a.py", 1), "s", "model-a", sent)])
    sent[:] = 0  # the store keeps its own copy
    got = backend.embedding(repo, "s", "a.py#1")
    assert got is not None and got.dtype == np.float32 and got.shape == (DIM,)
    expected = _vector(7)
    assert float(got @ expected / np.linalg.norm(got)) == pytest.approx(1.0, abs=1e-6)
    assert np.array_equal(got, expected)


def test_a_chunk_without_an_embedding_is_stored_and_can_get_one_later(
    backend: Backend, repo: RepoRef
) -> None:
    bare = _sc(_chunk("a.py", 1), "s", "", None)
    assert backend.store.upsert_chunks(repo, [bare]) == 1
    assert backend.store.chunk_keys(repo) == {("a.py", "s", "a.py#1")}
    assert backend.embedding(repo, "s", "a.py#1") is None
    assert backend.store.upsert_chunks(repo, [_stored("a.py", 1, "s", seed=3)]) == 1
    got = backend.embedding(repo, "s", "a.py#1")
    assert got is not None and np.allclose(got, _vector(3))


def _drain(store: VectorStore) -> None:
    """Every row that waits for the vector index goes in (other tests' rows too)."""
    while store.index_pending(10_000):
        pass


def test_written_rows_wait_for_the_vector_index_until_index_pending_takes_them(
    backend: Backend, repo: RepoRef
) -> None:
    store = backend.store
    _drain(store)
    assert store.pending_rows() == 0
    batch = _file("a.py", "sa", 3)
    bare = _sc(_chunk("b.py", 1), "sb", "", None)
    assert store.upsert_chunks(repo, _file("c.py", "sc", 2)) == 2
    assert store.pending_rows() == 0, "without defer_index a write enters the index itself"
    assert store.upsert_chunks(repo, [*batch, bare], defer_index=True) == 4
    assert store.pending_rows() == 3, "a row without a vector has nothing to wait for"
    assert store.index_pending(2) == 2
    assert store.pending_rows() == 1
    assert store.index_pending(2) == 1
    assert store.index_pending(2) == 0
    assert store.pending_rows() == 0
    # A replay changes nothing, so nothing waits again; a changed vector waits again.
    assert store.upsert_chunks(repo, batch, defer_index=True) == 0
    assert store.pending_rows() == 0
    assert store.upsert_chunks(repo, [_stored("a.py", 2, "sa", seed=77)], defer_index=True) == 1
    assert store.pending_rows() == 1
    # A waiting row that is deleted no longer waits.
    store.delete_files(repo, ["a.py"])
    assert store.pending_rows() == 0
    assert store.index_pending(5) == 0
    with pytest.raises(InvalidInputError, match="limit: expected at least 1, got 0"):
        store.index_pending(0)


def test_duplicate_keys_in_one_batch_are_written_once_the_last_winning(
    backend: Backend, repo: RepoRef
) -> None:
    batch = [_stored("a.py", 1, "s", seed=1), _stored("a.py", 1, "s", seed=2)]
    assert backend.store.upsert_chunks(repo, batch) == 1
    got = backend.embedding(repo, "s", "a.py#1")
    assert got is not None and np.allclose(got, _vector(2))


def test_writing_to_an_unknown_repository_is_refused(backend: Backend) -> None:
    ghost = RepoRef("nobody", f"ghost-{uuid.uuid4().hex[:6]}")
    with pytest.raises(InvalidInputError, match=f"repository 'nobody/{ghost.name}' does not"):
        backend.store.upsert_chunks(ghost, _file("a.py", "s"))
    assert backend.store.chunk_keys(ghost) == set()
    assert backend.store.delete_files(ghost, ["a.py"]) == 0
    assert backend.store.retain_versions(ghost, {"a.py": set()}) == 0
    assert backend.store.upsert_chunks(ghost, []) == 0


def test_an_invalid_tenant_is_refused_naming_it(backend: Backend) -> None:
    with pytest.raises(InvalidInputError, match="tenant 'Bad Tenant' is invalid"):
        backend.store.ensure_repository(RepoRef("Bad Tenant", "repo"))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_sc(_chunk("x.py", 1, "a\x00b"), "s", "model-a", _vector(1)), "NUL byte"),
        (_sc(_chunk("x.py", 1), "s", "model-a", _vector(1)[:100]), r"shape \(100,\)"),
        (_sc(_chunk("x.py", 1), "s", "model-a", [float("inf")] * DIM), "infinite"),
    ],
    ids=["nul-in-text", "short-vector", "infinite-vector"],
)
def test_a_bad_payload_is_refused_naming_the_chunk_and_nothing_of_the_batch_is_written(
    backend: Backend, repo: RepoRef, bad: StoredChunk, message: str
) -> None:
    backend.store.upsert_chunks(repo, _file("a.py", "v1"))
    before = backend.store.chunk_keys(repo)
    batch = [*_file("a.py", "v2"), bad, *_file("b.py", "s")]
    with pytest.raises(PermanentError, match=rf"chunk 'x.py#1' of 'x.py'.*{message}"):
        backend.store.upsert_chunks(repo, batch)
    assert backend.store.chunk_keys(repo) == before


def test_embedding_cache_returns_hits_only_and_keeps_the_first_vector(
    cache: EmbeddingCache,
) -> None:
    model = f"m-{uuid.uuid4().hex[:6]}"
    assert cache.get_many(model, ["h1", "h2"]) == {}
    cache.put_many(model, {"h1": _vector(1), "h2": _vector(2)})
    cache.put_many(model, {"h1": _vector(9), "h3": _vector(3)})  # h1 already there: kept
    cache.put_many(model, {})
    got = cache.get_many(model, ["h1", "h2", "h3", "h4", "h1"])
    assert sorted(got) == ["h1", "h2", "h3"]
    for key, seed in (("h1", 1), ("h2", 2), ("h3", 3)):
        assert got[key].dtype == np.float32
        assert np.array_equal(got[key], _vector(seed))
    assert cache.get_many(model, []) == {}


def test_embedding_cache_is_scoped_by_model_id(cache: EmbeddingCache) -> None:
    tag = uuid.uuid4().hex[:6]
    cache.put_many(f"a-{tag}", {"h": _vector(1)})
    cache.put_many(f"b-{tag}", {"h": _vector(2)})
    assert np.array_equal(cache.get_many(f"a-{tag}", ["h"])["h"], _vector(1))
    assert np.array_equal(cache.get_many(f"b-{tag}", ["h"])["h"], _vector(2))
    assert cache.get_many(f"c-{tag}", ["h"]) == {}


def test_embedding_cache_refuses_a_vector_of_another_dimension_and_stores_none_of_it(
    cache: EmbeddingCache,
) -> None:
    model = f"m-{uuid.uuid4().hex[:6]}"
    with pytest.raises(InvalidInputError, match=rf"content 'bad' of '{model}'.*shape \(3,\)"):
        cache.put_many(model, {"good": _vector(1), "bad": np.ones(3, dtype=np.float32)})
    assert cache.get_many(model, ["good", "bad"]) == {}


# --- PostgreSQL only: the schema, the server and the tsvector -----------------------------


def test_tsvector_holds_identifiers_whole_and_split_into_words(pg_dsn: str) -> None:
    repo = RepoRef(f"t{uuid.uuid4().hex[:8]}", "lexical")
    text = "def getUserName(self):\n    return parse_http_header(HTTPServer.raw)\n"
    with PgVectorStore(pg_dsn, dimension=DIM) as store:
        store.ensure_repository(repo)
        store.upsert_chunks(repo, [_sc(_chunk("a.py", 1, text), "s", "m", None)])
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            "SELECT c.tsv::text, c.tsv @@ to_tsquery('simple', 'user & name & http & server'),"
            " c.tsv @@ to_tsquery('simple', 'parse <-> http <-> header')"
            " FROM chunks c JOIN repositories r ON r.id = c.repository_id"
            " WHERE r.tenant_id = %s",
            (repo.tenant,),
        ).fetchone()
    assert row is not None
    lexemes = {item.split(":")[0].strip("'") for item in row[0].split()}
    assert {"getusername", "get", "user", "name", "httpserver", "http", "server"} <= lexemes
    assert {"parse", "header", "raw", "self"} <= lexemes
    assert row[1] is True and row[2] is True


def test_a_dimension_other_than_the_schemas_is_a_config_error_naming_both(pg_dsn: str) -> None:
    with pytest.raises(ConfigError, match=r"is vector\(384\) in .* the embedding dimension is 768"):
        PgVectorStore(pg_dsn, dimension=768)


def test_the_embedding_cache_holds_vectors_of_any_dimension_per_model(pg_dsn: str) -> None:
    """Migration 0019: each registered model caches its own dimension."""
    model = f"m{uuid.uuid4().hex[:8]}"
    vector = np.full(768, 1 / np.sqrt(768), dtype=np.float32)
    with PgEmbeddingCache(pg_dsn) as cache:
        cache.put_many(model, {"h768": vector})
        assert cache.get_many(model, ["h768"])["h768"].shape == (768,)


def test_an_unreachable_server_is_store_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreUnavailableError, match="postgres unavailable"):
        PgVectorStore(f"postgresql://postgres@127.0.0.1:{port}/x", dimension=DIM, timeout_s=1)
    with pytest.raises(StoreUnavailableError):
        PgEmbeddingCache(f"postgresql://postgres@127.0.0.1:{port}/x", dimension=DIM, timeout_s=1)


def test_a_closed_store_is_store_unavailable(pg_dsn: str) -> None:
    store = PgVectorStore(pg_dsn, dimension=DIM)
    store.close()
    with pytest.raises(StoreUnavailableError):
        store.chunk_keys(RepoRef("acme", "web"))


def test_a_repository_deleted_by_another_process_refuses_writes_then_recovers(
    pg_dsn: str,
) -> None:
    repo = RepoRef(f"t{uuid.uuid4().hex[:8]}", "shared")
    with (
        PgVectorStore(pg_dsn, dimension=DIM) as writer,
        PgVectorStore(pg_dsn, dimension=DIM) as other,
    ):
        writer.ensure_repository(repo)
        writer.upsert_chunks(repo, _file("a.py", "s"))  # caches the repository id
        other.delete_repository(repo)
        with pytest.raises(InvalidInputError, match="does not exist"):
            writer.upsert_chunks(repo, _file("a.py", "s"))
        other.ensure_repository(repo)
        assert writer.upsert_chunks(repo, _file("a.py", "s")) == 2
        assert other.chunk_keys(repo) == {("a.py", "s", "a.py#1"), ("a.py", "s", "a.py#2")}


def test_a_database_rejection_rolls_the_whole_batch_back(pg_dsn: str) -> None:
    repo = RepoRef(f"t{uuid.uuid4().hex[:8]}", "atomic")
    with PgVectorStore(pg_dsn, dimension=DIM) as store:
        store.ensure_repository(repo)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                "ALTER TABLE chunks ADD CONSTRAINT contract_no_poison"
                " CHECK (content <> 'poison') NOT VALID"
            )
        try:
            batch = [*_file("a.py", "s"), _stored("b.py", 1, "s", text="poison")]
            with pytest.raises(InvalidInputError, match="postgres rejected the data"):
                store.upsert_chunks(repo, batch)
        finally:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute("ALTER TABLE chunks DROP CONSTRAINT contract_no_poison")
        assert store.chunk_keys(repo) == set()


def test_concurrent_overlapping_batches_all_land_without_deadlock(
    backend: Backend, repo: RepoRef
) -> None:
    forward = [_stored(f"f{n % 7}.py", n, "s", seed=n) for n in range(1, 61)]
    backward = list(reversed(forward))
    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            list(pool.map(lambda b: backend.store.upsert_chunks(repo, b), [forward, backward]))
    assert len(backend.store.chunk_keys(repo)) == 60

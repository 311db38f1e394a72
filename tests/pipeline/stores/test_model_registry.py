"""The embedding-model registry on the real PostgreSQL: a switch to a model of another
dimension, backfilled into its own table, checked and switched in one step, the old
vectors dropped; writes during the backfill carry both models; the refusals."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

import psycopg
import pytest

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.fakes.embedder import InMemoryEmbedder
from pipeline.adapters.postgres.embedding_cache import PgEmbeddingCache
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.model_registry import SWITCH_LOCK_TIMEOUT_S, PgModelRegistry
from pipeline.adapters.postgres.search_index import PgSearchIndex
from pipeline.adapters.postgres.snapshot_store import PgSnapshotStore
from pipeline.adapters.postgres.vector_store import PgVectorStore
from pipeline.embedding_models import ModelSpec, RegisteredModel, check_loaded, check_switch
from pipeline.errors import ConflictError, InvalidInputError, StoreUnavailableError
from pipeline.models import Chunk, ChunkKind, FileVersion, RepoRef, Span, StoredChunk
from pipeline.search.query import SearchFilters, SearchRequest
from pipeline.stages.backfill import backfill_step, retire_step
from pipeline.stages.embedding import EmbeddingService
from tests.databases import fresh_pg_database

OLD = ModelSpec("model-a", "model-a", "torch", 384)
NEW = ModelSpec("model-b", "/models/model-b", "torch", 24)


@dataclass
class Stores:
    dsn: str
    registry: PgModelRegistry
    vectors: PgVectorStore
    snapshots: PgSnapshotStore
    index: PgSearchIndex
    cache: PgEmbeddingCache


@pytest.fixture
def stores(endpoints: Endpoints) -> Iterator[Stores]:
    """A fresh database per test: the registry is deployment-wide."""
    with fresh_pg_database(endpoints, "models") as dsn:
        run(PgMigrationTarget(dsn))
        with (
            PgModelRegistry(dsn) as registry,
            PgVectorStore(dsn, dimension=384) as vectors,
            PgSnapshotStore(dsn) as snapshots,
            PgSearchIndex(dsn, dimension=384) as index,
            PgEmbeddingCache(dsn) as cache,
        ):
            yield Stores(dsn, registry, vectors, snapshots, index, cache)


def service(stores: Stores, spec: ModelSpec) -> EmbeddingService:
    model = InMemoryEmbedder(dimension=spec.dimension, model_id=spec.model_id)
    return EmbeddingService(model, stores.cache, batch_tokens=4096, max_chunks=64)


def chunk(n: int, text: str) -> Chunk:
    return Chunk(f"f{n}.py#{n}", f"f{n}.py", "python", Span(1, 2, 0, 9), f"mod.f{n}",
                 ChunkKind.FUNCTION, f"h{n}-{text}", 3, text)  # fmt: skip


def write(
    stores: Stores, repo: RepoRef, texts: list[str], extra: list[ModelSpec] = (), first: int = 0
) -> None:
    """Chunks embedded by the active model (and ``extra``), published as one commit."""
    old = service(stores, OLD)
    pieces = [chunk(first + i, t) for i, t in enumerate(texts)]
    vectors = old.embedder.embed(texts)
    others = {spec.model_id: service(stores, spec).embedder.embed(texts) for spec in extra}
    rows = [
        StoredChunk(p, "v1", OLD.model_id, vectors[i], {m: v[i] for m, v in others.items()})
        for i, p in enumerate(pieces)
    ]
    stores.vectors.ensure_repository(repo)
    stores.vectors.upsert_chunks(repo, rows)
    files = [FileVersion(p.path, "v1", "python", 10) for p in pieces]
    snapshot = stores.snapshots.begin(repo, uuid.uuid4().hex, files)
    stores.snapshots.publish(repo, snapshot)


def search(
    stores: Stores,
    repo: RepoRef,
    spec: ModelSpec,
    text: str,
    index: PgSearchIndex | None = None,
    **filters: object,
) -> list[str]:
    vector = service(stores, spec).embedder.embed([text])[0]
    request = SearchRequest(tenant=repo.tenant, query=text, repos=(repo.name,),
                            filters=SearchFilters(**filters))  # type: ignore[arg-type]  # fmt: skip
    hits = (index or stores.index).vector_hits(request, vector, spec.model_id, 5)
    return [h.content for h in hits]


def dimension_of(stores: Stores, storage: str) -> int:
    with psycopg.connect(stores.dsn) as conn:
        row = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attname = 'embedding'",
            (storage,),
        ).fetchone()
    assert row is not None, storage
    return int(str(row[0]).split("(")[1].rstrip(")"))


TEXTS = ["def parse_header(line): pass", "def open_pool(dsn): pass", "def run_query(sql): pass"]


def test_a_switch_backfills_another_dimension_then_moves_search_in_one_step(
    stores: Stores,
) -> None:
    repo = RepoRef(f"t{uuid.uuid4().hex[:8]}", "app")
    active = stores.registry.ensure_active(OLD)
    assert (active.state, active.storage) == ("active", "chunks")
    write(stores, repo, TEXTS)
    assert search(stores, repo, OLD, TEXTS[1])[0] == TEXTS[1]

    new = stores.registry.start_backfill(NEW)
    assert (new.state, new.storage, dimension_of(stores, new.storage)) == (
        "backfilling", f"chunk_vectors_{new.id}", 24,
    )  # fmt: skip
    assert stores.registry.switch(new) == 3  # nothing covered: refused, nothing changed
    assert stores.registry.active() == active
    assert search(stores, repo, OLD, TEXTS[1])[0] == TEXTS[1]

    step = backfill_step(stores.registry, service(stores, NEW), NEW.model_id,
                         after=None, batch_rows=2, budget_s=30)  # fmt: skip
    assert step.switched and (step.done, step.total) == (3, 3)
    states = {m.model_id: (m.state, m.dropped) for m in stores.registry.models()}
    assert states == {"model-a": ("retired", False), "model-b": ("active", False)}
    assert search(stores, repo, NEW, TEXTS[1])[0] == TEXTS[1]
    # The HNSW plan on the model's own table (its index), the filters after the scan.
    with psycopg.connect(stores.dsn, autocommit=True) as conn:
        conn.execute("ANALYZE chunks")  # the planner's row count, which picks the plan
    with PgSearchIndex(stores.dsn, dimension=384, exact_max_rows=0, ef_search=2) as hnsw:
        assert search(stores, repo, NEW, TEXTS[1], hnsw)[0] == TEXTS[1]
        assert search(stores, repo, NEW, TEXTS[1], hnsw, languages=("rust",)) == []
        assert hnsw.plans["hnsw"] >= 1
    assert search(stores, repo, NEW, TEXTS[1], languages=("rust",)) == []
    # Until the drop, a search process that has not seen the switch yet still reads
    # the old model's vectors.
    assert search(stores, repo, OLD, TEXTS[1])[0] == TEXTS[1]

    # A stale writer's row without the new model's vector: the retire step fills it
    # before anything is dropped, and drops nothing while a row is still missing.
    new_storage = stores.registry.get(NEW.model_id).storage
    with psycopg.connect(stores.dsn) as conn:
        conn.execute(f"DELETE FROM {new_storage} WHERE id = (SELECT min(id) FROM {new_storage})")
    assert retire_step(stores.registry, service(stores, NEW), batch_rows=8, budget_s=0) == (0, None)
    assert search(stores, repo, OLD, TEXTS[1])[0] == TEXTS[1]  # nothing dropped yet
    written, dropped = retire_step(stores.registry, service(stores, NEW), batch_rows=8, budget_s=5)
    assert (written, dropped) == (1, ["model-a"])
    with psycopg.connect(stores.dsn) as conn:
        left = conn.execute("SELECT count(*) FROM chunks WHERE embedding IS NOT NULL").fetchone()
        index = conn.execute("SELECT to_regclass('chunks_embedding_hnsw')").fetchone()
    assert left == (0,) and index == (None,)  # the old vectors and their index are gone
    assert search(stores, repo, NEW, TEXTS[2])[0] == TEXTS[2]


def test_writes_during_a_backfill_carry_both_models_and_later_ones_only_the_new(
    stores: Stores,
) -> None:
    repo = RepoRef(f"t{uuid.uuid4().hex[:8]}", "app")
    stores.registry.ensure_active(OLD)
    write(stores, repo, TEXTS[:1])
    new = stores.registry.start_backfill(NEW)
    write(stores, repo, TEXTS[1:], extra=[NEW], first=1)  # an index job during the backfill
    assert stores.registry.switch(new) == 1  # only the chunk written before it is missing
    rows = stores.registry.missing(new, None, 10)
    assert [text for _, _, text in rows] == TEXTS[:1]
    step = backfill_step(stores.registry, service(stores, NEW), NEW.model_id,
                         after=None, batch_rows=10, budget_s=30)  # fmt: skip
    assert step.switched and step.written == 1
    # After the switch, writes carry the new model as their own: its table, not chunks'.
    later = "def later(): pass"
    vector = service(stores, NEW).embedder.embed([later])[0]
    newer = [StoredChunk(chunk(9, later), "v1", NEW.model_id, vector)]
    stores.vectors.upsert_chunks(repo, newer)
    assert stores.registry.missing(stores.registry.get(NEW.model_id), None, 10) == []


def test_a_blank_chunk_counts_as_covered_without_a_vector(stores: Stores) -> None:
    repo = RepoRef(f"t{uuid.uuid4().hex[:8]}", "app")
    stores.registry.ensure_active(OLD)
    write(stores, repo, ["   ", TEXTS[0]])
    stores.registry.start_backfill(NEW)
    step = backfill_step(stores.registry, service(stores, NEW), NEW.model_id,
                         after=None, batch_rows=10, budget_s=30)  # fmt: skip
    assert step.switched and (step.done, step.total) == (2, 2)


def test_the_refusals_name_the_model(stores: Stores) -> None:
    with pytest.raises(ConflictError, match="no model is active yet"):
        stores.registry.start_backfill(NEW)
    stores.registry.ensure_active(OLD)
    with pytest.raises(ConflictError, match="'model-a' is already the active model"):
        stores.registry.start_backfill(OLD)
    new = stores.registry.start_backfill(NEW)
    other = ModelSpec("model-c", "model-c", "torch", 16)
    with pytest.raises(ConflictError, match=r"a switch to 'model-b' is running \(0 of 0"):
        stores.registry.start_backfill(other)
    # Cancelled: retired, its table dropped; search never left the active model.
    assert stores.registry.cancel(new, "cancelled")
    assert stores.registry.drop_retired() == ["model-b"]
    with psycopg.connect(stores.dsn) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (new.storage,)).fetchone() == (None,)
    again = stores.registry.start_backfill(NEW)  # a retired model may be switched to again
    assert again.state == "backfilling" and dimension_of(stores, again.storage) == 24


def test_the_database_holds_one_active_and_one_backfilling_model(stores: Stores) -> None:
    stores.registry.ensure_active(OLD)
    with psycopg.connect(stores.dsn) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO embedding_models (model_id, name, backend, dimension, storage, state)"
            " VALUES ('x', 'x', 'torch', 3, 'chunk_vectors_99', 'active')"
        )


def _registered(model_id: str, state: str, dimension: int) -> RegisteredModel:
    return RegisteredModel(1, model_id, model_id, "torch", dimension, "", "chunks", state)  # type: ignore[arg-type]


def test_a_model_id_registered_with_another_dimension_is_refused_naming_both() -> None:
    with pytest.raises(InvalidInputError, match=r"gives 24-dimension .* registry holds it with 8"):
        check_switch(NEW, [_registered("model-b", "retired", 8)])
    with pytest.raises(InvalidInputError, match=r"'model-b' \(model-b\) gives 384-dimension"):
        check_loaded(_registered("model-b", "active", 24), 384)


def test_a_model_id_registered_with_other_weights_is_refused() -> None:
    """A folder trained again under the same name keeps its model id: switching to it
    would take the old weights' vectors from the embedding cache, so it is refused."""
    held = RegisteredModel(
        1, "model-b", "/models/model-b", "torch", 24, "aaaa" * 16, "chunk_vectors_1", "retired"
    )
    retrained = replace(NEW, fingerprint="bbbb" * 16)
    with pytest.raises(InvalidInputError, match=r"'model-b' .* other weights .* another folder"):
        check_switch(retrained, [held])
    check_switch(replace(NEW, fingerprint="aaaa" * 16), [held])  # the same weights again
    check_switch(retrained, [replace(held, fingerprint="")])  # 0019's row knows no weights


def test_a_vector_table_name_is_checked_before_it_reaches_sql() -> None:
    from pipeline.statements import model_sql

    with pytest.raises(InvalidInputError, match=r"'chunks; DROP TABLE x' is not"):
        model_sql.drop_vectors_table("chunks; DROP TABLE x")


def test_migration_0019_registers_the_vectors_already_stored_as_the_active_model(
    endpoints: Endpoints,
) -> None:
    from migrations.runner import discover

    with fresh_pg_database(endpoints, "models0019") as dsn:
        before = [m for m in discover("sql") if m.version < 19]
        run(PgMigrationTarget(dsn), before)
        repo = RepoRef(f"t{uuid.uuid4().hex[:8]}", "app")
        with PgVectorStore(dsn, dimension=384) as vectors:
            vectors.ensure_repository(repo)
        with psycopg.connect(dsn) as conn:  # chunks as the code before 0019 wrote them
            conn.execute(
                "INSERT INTO chunks (repository_id, id, path, file_sha256, start_line, end_line,"
                " start_byte, end_byte, kind, language, content, content_sha256, model_id,"
                " embedding, tsv) SELECT r.id, 'a.py#1', 'a.py', 'v1', 1, 2, 0, 9, 'function',"
                " 'python', 'def f(): pass', 'h1', 'all-MiniLM-L6-v2+onnx-int8',"
                " array_fill(0.05, ARRAY[384])::vector, to_tsvector('simple', 'f')"
                " FROM repositories r WHERE r.name = %s",
                (repo.name,),
            )
        run(PgMigrationTarget(dsn))
        with PgModelRegistry(dsn) as registry:
            (model,) = registry.models()
            assert (model.model_id, model.name, model.backend, model.dimension) == (
                "all-MiniLM-L6-v2+onnx-int8", "all-MiniLM-L6-v2", "onnx-int8", 384
            )  # fmt: skip
            assert (model.state, model.storage) == ("active", "chunks")
            # A worker configured with another model does not take the index over.
            assert registry.ensure_active(OLD) == model
        with psycopg.connect(dsn) as conn:
            cache_type = conn.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = 'embedding_cache'::regclass AND attname = 'embedding'"
            ).fetchone()
        assert cache_type == ("vector",)


def test_a_file_sent_twice_in_one_grouped_write_stages_its_side_rows_once(
    stores: Stores,
) -> None:
    """A redelivered message can put one file's chunks twice into a grouped write: the
    per-model table's merge would refuse a row staged twice (and with it every file of
    the write), so the rows are staged once, the last given winning, as chunks' are."""
    repo = RepoRef(f"t{uuid.uuid4().hex[:8]}", "app")
    stores.registry.ensure_active(OLD)
    new = stores.registry.start_backfill(NEW)
    text = TEXTS[0]
    old_vector = service(stores, OLD).embedder.embed([text])[0]
    new_vector = service(stores, NEW).embedder.embed([text])[0]
    row = StoredChunk(chunk(0, text), "v1", OLD.model_id, old_vector, {NEW.model_id: new_vector})
    stores.vectors.ensure_repository(repo)
    assert stores.vectors.upsert_chunks(repo, [row, row], whole_versions=True) == 1
    with psycopg.connect(stores.dsn) as conn:
        got = conn.execute(f"SELECT count(*) FROM {new.storage}").fetchone()
    assert got == (1,)


def test_a_switch_takes_every_backend_the_workers_take_and_names_a_bad_one() -> None:
    from pipeline.embedding_models import check_backend

    for backend in ("auto", "torch", "onnx-fp32", "onnx-int8", "onnx-int8-smooth"):
        assert check_backend(backend) == backend
    with pytest.raises(InvalidInputError, match=r"backend 'cuda' is not one of auto, torch"):
        check_backend("cuda")


def test_a_switch_waits_for_a_write_under_way_at_most_its_lock_timeout(stores: Stores) -> None:
    """A write holds the live rows shared; the switch gives up after its lock timeout
    (a transient error: the next backfill step tries again) instead of queueing every
    later write behind it, and switches once the write has ended."""
    stores.registry.ensure_active(OLD)
    new = stores.registry.start_backfill(NEW)  # no chunk rows: nothing missing
    with psycopg.connect(stores.dsn) as writer:
        writer.execute("SELECT id FROM embedding_models WHERE state <> 'retired' FOR SHARE")
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            stores.registry.switch(new)
        assert time.monotonic() - started < SWITCH_LOCK_TIMEOUT_S + 3
        writer.rollback()
    assert stores.registry.switch(new) == 0
    assert stores.registry.get(NEW.model_id).state == "active"

"""SQL of the embedding-model registry and of each model's vector table.

Owns the statement texts of ``PgModelRegistry`` (``embedding_models``, migration 0019)
and of a model's own vector table ``chunk_vectors_<id>``: one row per chunk row
(repository id, file sha256, chunk id; deleted with it by the foreign key's cascade),
its vector of the model's dimension (NULL for a blank chunk: such a row still counts
as covered) and an HNSW index of its own. Table names cannot be bound parameters:
they are checked by :func:`pipeline.embedding_models.check_storage` first.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

from pipeline.embedding_models import ModelSpec, check_storage
from pipeline.statements.sql import Query

MODEL_COLUMNS = (
    "id, model_id, name, backend, dimension, fingerprint, storage, state, chunks_total,"
    " chunks_done, error, dropped_at IS NOT NULL"
)
# Each chunk row's key, in the order of the chunks' primary key (keyset pagination).
KEY_COLUMNS = ("repository_id", "file_sha256", "id")
HNSW_WITH = "WITH (m = 32, ef_construction = 200)"  # as chunks_embedding_hnsw (0018)


def models() -> Query:
    return Query(f"SELECT {MODEL_COLUMNS} FROM embedding_models ORDER BY id", {})


def live_models(lock: str = "") -> Query:
    """The active and backfilling models; ``lock`` ``SHARE`` for a write (a switch
    waits for it, and a write begun after the switch sees the new state), ``UPDATE``
    for the switch."""
    if lock not in ("", "SHARE", "UPDATE"):
        raise ValueError(f"lock {lock!r}")
    text = (
        f"SELECT {MODEL_COLUMNS} FROM embedding_models"
        " WHERE state IN ('active', 'backfilling') ORDER BY id"
    )
    return Query(text + (f" FOR {lock}" if lock else ""), {})


def set_lock_timeout(seconds: float) -> Query:
    """This transaction's lock waits end after ``seconds`` (an error, not a queue)."""
    return Query(f"SET LOCAL lock_timeout = '{int(seconds * 1000)}ms'", {})


def lock_registry() -> Query:
    """Serialises registrations and switches (rows may not exist yet to lock)."""
    return Query("LOCK TABLE embedding_models IN SHARE ROW EXCLUSIVE MODE", {})


def next_id() -> Query:
    return Query("SELECT nextval(pg_get_serial_sequence('embedding_models', 'id'))", {})


def register(spec: ModelSpec, state: str, row_id: int, storage: str) -> Query:
    """Insert ``spec`` in ``state`` as row ``row_id`` with ``storage``, or take over a
    retired row of the same model id (its own table, ``chunk_vectors_<its id>``)."""
    text = f"""
INSERT INTO embedding_models AS m (id, model_id, name, backend, dimension, fingerprint,
                                   storage, state, switched_at)
VALUES (%(id)s, %(model_id)s, %(name)s, %(backend)s, %(dimension)s, %(fingerprint)s,
        %(storage)s, %(state)s, CASE WHEN %(state)s = 'active' THEN now() END)
ON CONFLICT (model_id) DO UPDATE SET
    name = EXCLUDED.name, backend = EXCLUDED.backend, dimension = EXCLUDED.dimension,
    fingerprint = EXCLUDED.fingerprint, state = EXCLUDED.state,
    storage = 'chunk_vectors_' || m.id, chunks_total = 0, chunks_done = 0, error = NULL,
    created_at = now(), switched_at = EXCLUDED.switched_at, retired_at = NULL,
    dropped_at = NULL
WHERE m.state = 'retired'
RETURNING {MODEL_COLUMNS}"""
    params = {
        "id": row_id,
        "model_id": spec.model_id,
        "name": spec.name,
        "backend": spec.backend,
        "dimension": spec.dimension,
        "fingerprint": spec.fingerprint,
        "state": state,
        "storage": check_storage(storage),
    }
    return Query(text, params)


def create_vectors_table(storage: str, dimension: int) -> list[Query]:
    table = check_storage(storage)
    return [
        Query(
            f"""
CREATE TABLE IF NOT EXISTS {table} (
    repository_id   bigint NOT NULL,
    file_sha256     text NOT NULL,
    id              text NOT NULL,
    embedding       vector({int(dimension)}),
    PRIMARY KEY (repository_id, file_sha256, id),
    FOREIGN KEY (repository_id, file_sha256, id)
        REFERENCES chunks (repository_id, file_sha256, id) ON DELETE CASCADE
)""",
            {},
        ),
        Query(
            f"CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table}"
            f" USING hnsw (embedding vector_cosine_ops) {HNSW_WITH}",
            {},
        ),
    ]


def drop_vectors_table(storage: str) -> Query:
    return Query(f"DROP TABLE IF EXISTS {check_storage(storage)}", {})


def clear_chunk_vectors(model_id: str, limit: int) -> Query:
    """Drop at most ``limit`` of a retired model's vectors held in chunks.embedding
    (batched: one long UPDATE would hold every row's lock at once)."""
    text = """
UPDATE chunks AS c SET embedding = NULL
FROM (SELECT repository_id, file_sha256, id FROM chunks
      WHERE model_id = %(model_id)s AND embedding IS NOT NULL LIMIT %(limit)s) AS k
WHERE (c.repository_id, c.file_sha256, c.id) = (k.repository_id, k.file_sha256, k.id)"""
    return Query(text, {"model_id": model_id, "limit": limit})


# The first model's HNSW index (0003, rebuilt by 0018): once that model is retired no
# model is ever stored in chunks.embedding again (the registry gives each new one a table).
DROP_CHUNKS_INDEX = Query("DROP INDEX CONCURRENTLY IF EXISTS chunks_embedding_hnsw", {})


def missing_rows(storage: str, after: tuple[int, str, str] | None, limit: int) -> Query:
    """Up to ``limit`` chunk rows (key, content hash, text) without a row of the model's
    table, in key order after ``after``."""
    table = check_storage(storage)
    keyset = "AND (c.repository_id, c.file_sha256, c.id) > (%(r)s, %(f)s, %(i)s)" if after else ""
    text = f"""
SELECT c.repository_id, c.file_sha256, c.id, c.content_sha256, c.content
FROM chunks c
WHERE NOT EXISTS (SELECT 1 FROM {table} v WHERE v.repository_id = c.repository_id
                  AND v.file_sha256 = c.file_sha256 AND v.id = c.id) {keyset}
ORDER BY c.repository_id, c.file_sha256, c.id
LIMIT %(limit)s"""
    params: dict[str, object] = {"limit": limit}
    if after:
        params |= {"r": after[0], "f": after[1], "i": after[2]}
    return Query(text, params)


def count_missing(storage: str) -> Query:
    table = check_storage(storage)
    text = f"""
SELECT count(*) FROM chunks c
WHERE NOT EXISTS (SELECT 1 FROM {table} v WHERE v.repository_id = c.repository_id
                  AND v.file_sha256 = c.file_sha256 AND v.id = c.id)"""
    return Query(text, {})


def progress(storage: str, row_id: int) -> Query:
    """Count a backfill's progress into its row; returns (done, total)."""
    table = check_storage(storage)
    text = f"""
UPDATE embedding_models SET
    chunks_done = (SELECT count(*) FROM {table}),
    chunks_total = (SELECT count(*) FROM chunks)
WHERE id = %(id)s
RETURNING chunks_done, chunks_total"""
    return Query(text, {"id": row_id})


CREATE_VECTOR_STAGING = """
CREATE TEMP TABLE quarry_vector_staging (
    repository_id   int8 NOT NULL,
    file_sha256     text NOT NULL,
    id              text NOT NULL,
    embedding       vector
) ON COMMIT DROP
"""
COPY_VECTOR_STAGING = (
    "COPY quarry_vector_staging (repository_id, file_sha256, id, embedding)"
    " FROM STDIN (FORMAT BINARY)"
)
VECTOR_STAGING_TYPES = ("int8", "text", "text", "vector")


def merge_vectors(storage: str) -> Query:
    """Staged vectors into the model's table, for chunk rows that still exist (a row
    deleted meanwhile is skipped, not a foreign-key failure); rows already there are
    kept, unless the staged one is a newer vector of the same row."""
    table = check_storage(storage)
    text = f"""
INSERT INTO {table} AS v (repository_id, file_sha256, id, embedding)
SELECT s.repository_id, s.file_sha256, s.id, s.embedding
FROM quarry_vector_staging s
JOIN chunks c ON c.repository_id = s.repository_id AND c.file_sha256 = s.file_sha256
     AND c.id = s.id
ORDER BY s.repository_id, s.file_sha256, s.id
ON CONFLICT (repository_id, file_sha256, id) DO UPDATE SET embedding = EXCLUDED.embedding
WHERE v.embedding IS DISTINCT FROM EXCLUDED.embedding"""
    return Query(text, {})


def switch(new_id: int) -> Query:
    """The switch itself: one statement, the new model active and the active retired."""
    text = """
UPDATE embedding_models SET
    state = CASE WHEN id = %(id)s THEN 'active' ELSE 'retired' END,
    switched_at = CASE WHEN id = %(id)s THEN now() ELSE switched_at END,
    retired_at = CASE WHEN id = %(id)s THEN retired_at ELSE now() END
WHERE id = %(id)s AND state = 'backfilling' OR state = 'active'
RETURNING id, state"""
    return Query(text, {"id": new_id})


def retire(row_id: int, error: str | None) -> Query:
    text = (
        "UPDATE embedding_models SET state = 'retired', retired_at = now(), error = %(error)s"
        " WHERE id = %(id)s AND state = 'backfilling' RETURNING id"
    )
    return Query(text, {"id": row_id, "error": error})


def mark_dropped(row_id: int) -> Query:
    return Query(
        "UPDATE embedding_models SET dropped_at = now() WHERE id = %(id)s AND state = 'retired'",
        {"id": row_id},
    )

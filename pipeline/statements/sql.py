"""SQL of the PostgreSQL stores, and the rows they copy in, as plain strings and tuples.

Owns the statement texts of the vector store and the embedding cache (staging tables,
binary COPY, the one ``INSERT ... SELECT ... ON CONFLICT`` per batch, deletes, lookups)
and the checks that turn a payload into rows, naming the input that is wrong before any
of it reaches the database. Every chunk statement is scoped by ``repository_id``.
The in-memory fakes use the same checks, so that both stores refuse the same input.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from pipeline.errors import InvalidInputError
from pipeline.models import RepoRef, StoredChunk
from pipeline.search.lexical import lexical_text

Vector = npt.NDArray[np.float32]
# A chunk as staged: the columns of CHUNK_STAGING_COLUMNS, in that order.
ChunkRow = tuple[
    str, str, str, int, int, int, int, str, str, str, str, str, str, Vector | None, str
]
CacheRow = tuple[str, Vector]

INT4_MAX = 2**31 - 1
# The CHECK constraints of migrations/sql/0002_core.sql, checked here to name the input.
TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
REPOSITORY_NAME_MAX_CHARS = 200
VECTOR_DIMENSION = 384  # chunks.embedding is vector(384) (migration 0003)


class Query(NamedTuple):
    """One statement and its named parameters (psycopg ``%(name)s`` style)."""

    text: str
    params: dict[str, Any]


# Column order of the staging table, of COPY and of ChunkRow.
CHUNK_STAGING_COLUMNS: tuple[str, ...] = (
    "id",
    "path",
    "file_sha256",
    "start_line",
    "end_line",
    "start_byte",
    "end_byte",
    "symbol",
    "kind",
    "language",
    "content",
    "content_sha256",
    "model_id",
    "embedding",
    "lexical",
)
CHUNK_STAGING_TYPES: tuple[str, ...] = (
    *("text",) * 3,
    *("int4",) * 4,
    *("text",) * 6,
    "vector",
    "text",
)
# The dimension is left to chunks.embedding, which checks it at the INSERT.
CREATE_CHUNK_STAGING = """
CREATE TEMP TABLE quarry_chunk_staging (
    id              text NOT NULL,
    path            text NOT NULL,
    file_sha256     text NOT NULL,
    start_line      int4 NOT NULL,
    end_line        int4 NOT NULL,
    start_byte      int4 NOT NULL,
    end_byte        int4 NOT NULL,
    symbol          text NOT NULL,
    kind            text NOT NULL,
    language        text NOT NULL,
    content         text NOT NULL,
    content_sha256  text NOT NULL,
    model_id        text,
    embedding       vector,
    lexical         text NOT NULL
) ON COMMIT DROP
"""
COPY_CHUNK_STAGING = """
COPY quarry_chunk_staging (
    id, path, file_sha256, start_line, end_line, start_byte, end_byte, symbol, kind,
    language, content, content_sha256, model_id, embedding, lexical
) FROM STDIN (FORMAT BINARY)
"""
# A replayed row that changes nothing is skipped by the WHERE, so a retried batch leaves
# no dead tuples and no new HNSW/GIN entries behind; rowcount is the rows really written.
# Rows go in key order, so two batches that overlap lock their rows in the same order
# instead of deadlocking. With ``defer``, a row written with a vector is not yet in the
# HNSW index (``indexed`` false, migration 0021): INDEX_PENDING adds it after the job,
# and search scans such rows exactly meanwhile.
MERGE_CHUNKS = """
INSERT INTO chunks AS c (
    repository_id, id, path, file_sha256, start_line, end_line, start_byte, end_byte,
    symbol, kind, language, content, content_sha256, model_id, embedding, tsv, indexed
)
SELECT %(repository_id)s::bigint, id, path, file_sha256, start_line, end_line, start_byte,
       end_byte, symbol, kind, language, content, content_sha256, model_id, embedding,
       to_tsvector('simple', lexical), embedding IS NULL OR NOT %(defer)s::boolean
FROM quarry_chunk_staging
ORDER BY file_sha256, id
ON CONFLICT (repository_id, file_sha256, id) DO UPDATE SET
    path = EXCLUDED.path,
    start_line = EXCLUDED.start_line,
    end_line = EXCLUDED.end_line,
    start_byte = EXCLUDED.start_byte,
    end_byte = EXCLUDED.end_byte,
    symbol = EXCLUDED.symbol,
    kind = EXCLUDED.kind,
    language = EXCLUDED.language,
    content = EXCLUDED.content,
    content_sha256 = EXCLUDED.content_sha256,
    model_id = EXCLUDED.model_id,
    embedding = EXCLUDED.embedding,
    tsv = EXCLUDED.tsv,
    indexed = EXCLUDED.indexed
WHERE (c.path, c.start_line, c.end_line, c.start_byte, c.end_byte, c.symbol, c.kind,
       c.language, c.content, c.content_sha256, c.model_id, c.embedding, c.tsv)
      IS DISTINCT FROM
      (EXCLUDED.path, EXCLUDED.start_line, EXCLUDED.end_line, EXCLUDED.start_byte,
       EXCLUDED.end_byte, EXCLUDED.symbol, EXCLUDED.kind, EXCLUDED.language,
       EXCLUDED.content, EXCLUDED.content_sha256, EXCLUDED.model_id, EXCLUDED.embedding,
       EXCLUDED.tsv)
"""

# Up to ``limit`` rows not yet in the HNSW index go in, oldest first; rows another
# transaction holds (a write, another batch of this) are left to the next batch.
INDEX_PENDING = """
WITH picked AS (
    SELECT repository_id, file_sha256, id FROM chunks
    WHERE NOT indexed
    ORDER BY repository_id, seq
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE chunks AS c SET indexed = true
FROM picked AS p
WHERE c.repository_id = p.repository_id AND c.file_sha256 = p.file_sha256 AND c.id = p.id
"""
PENDING_ROWS = "SELECT count(*) FROM chunks WHERE NOT indexed"

CACHE_STAGING_COLUMNS: tuple[str, ...] = ("content_sha256", "embedding")
CACHE_STAGING_TYPES: tuple[str, ...] = ("text", "vector")
CREATE_CACHE_STAGING = """
CREATE TEMP TABLE quarry_embedding_staging (
    content_sha256  text NOT NULL,
    embedding       vector NOT NULL
) ON COMMIT DROP
"""
COPY_CACHE_STAGING = """
COPY quarry_embedding_staging (content_sha256, embedding) FROM STDIN (FORMAT BINARY)
"""
MERGE_CACHE = """
INSERT INTO embedding_cache (model_id, content_sha256, embedding)
SELECT %(model_id)s, content_sha256, embedding FROM quarry_embedding_staging
ON CONFLICT (model_id, content_sha256) DO NOTHING
"""


def ensure_tenant(repo: RepoRef) -> Query:
    return Query(
        "INSERT INTO tenants (id) VALUES (%(tenant)s) ON CONFLICT (id) DO NOTHING",
        {"tenant": repo.tenant},
    )


def ensure_repository(repo: RepoRef, default_ref: str | None = None) -> Query:
    """The repository's row, created if absent with ``default_ref`` (else "main") as its
    default ref; an existing row is left as it is."""
    return Query(
        "INSERT INTO repositories (tenant_id, name, default_ref)"
        " VALUES (%(tenant)s, %(name)s, coalesce(%(default_ref)s::text, 'main'))"
        " ON CONFLICT (tenant_id, name) DO NOTHING",
        {"tenant": repo.tenant, "name": repo.name, "default_ref": default_ref},
    )


def repository_id(repo: RepoRef) -> Query:
    return Query(
        "SELECT id FROM repositories WHERE tenant_id = %(tenant)s AND name = %(name)s",
        {"tenant": repo.tenant, "name": repo.name},
    )


def merge_chunks(repo_id: int, *, defer_index: bool = False) -> Query:
    """The staged rows merged into ``chunks``; ``defer_index``: rows with a vector wait
    for INDEX_PENDING (``indexed`` false) instead of entering the HNSW index now."""
    return Query(MERGE_CHUNKS, {"repository_id": repo_id, "defer": defer_index})


def delete_other_chunks_of_staged_versions(repo_id: int) -> Query:
    """Rows of the staged file versions (path, file sha256) whose id was not staged."""
    return Query(
        "DELETE FROM chunks AS c USING (SELECT DISTINCT path, file_sha256"
        " FROM quarry_chunk_staging) AS v"
        " WHERE c.repository_id = %(repository_id)s AND c.path = v.path"
        " AND c.file_sha256 = v.file_sha256 AND NOT EXISTS (SELECT 1 FROM"
        " quarry_chunk_staging AS s WHERE s.file_sha256 = c.file_sha256 AND s.id = c.id)",
        {"repository_id": repo_id},
    )


def delete_files(repo_id: int, paths: Sequence[str]) -> Query:
    return Query(
        "DELETE FROM chunks WHERE repository_id = %(repository_id)s"
        " AND path = ANY(%(paths)s::text[])",
        {"repository_id": repo_id, "paths": sorted(set(paths))},
    )


def retain_versions(repo_id: int, keep: Mapping[str, Collection[str]]) -> Query:
    """Delete the chunks of the paths of ``keep`` whose version is not one it keeps."""
    pairs = sorted((path, sha) for path, shas in keep.items() for sha in shas)
    return Query(
        "DELETE FROM chunks AS c WHERE c.repository_id = %(repository_id)s"
        " AND c.path = ANY(%(paths)s::text[]) AND NOT EXISTS ("
        "SELECT 1 FROM unnest(%(kept_paths)s::text[], %(kept_shas)s::text[])"
        " AS kept (path, file_sha256)"
        " WHERE kept.path = c.path AND kept.file_sha256 = c.file_sha256)",
        {
            "repository_id": repo_id,
            "paths": sorted(keep),
            "kept_paths": [p for p, _ in pairs],
            "kept_shas": [s for _, s in pairs],
        },
    )


def file_versions(repo_id: int) -> Query:
    return Query(
        "SELECT path, file_sha256 FROM chunks WHERE repository_id = %(repository_id)s"
        " GROUP BY path, file_sha256",
        {"repository_id": repo_id},
    )


def chunk_keys(repo_id: int) -> Query:
    return Query(
        "SELECT path, file_sha256, id FROM chunks WHERE repository_id = %(repository_id)s",
        {"repository_id": repo_id},
    )


def delete_repository(repo_id: int) -> list[Query]:
    """The chunks first (explicitly, not only by cascade), then the repository row."""
    params = {"repository_id": repo_id}
    return [
        Query("DELETE FROM chunks WHERE repository_id = %(repository_id)s", params),
        Query("DELETE FROM repositories WHERE id = %(repository_id)s", params),
    ]


def vector_column(table: str, column: str) -> Query:
    """The declared type of a vector column: (dimension typmod, ``vector(384)``)."""
    return Query(
        "SELECT a.atttypmod, format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a"
        " WHERE a.attrelid = to_regclass(%(table)s) AND a.attname = %(column)s"
        " AND NOT a.attisdropped",
        {"table": table, "column": column},
    )


def cached_embeddings(model_id: str, content_hashes: Sequence[str]) -> Query:
    return Query(
        "SELECT content_sha256, embedding FROM embedding_cache"
        " WHERE model_id = %(model_id)s AND content_sha256 = ANY(%(hashes)s::text[])",
        {"model_id": model_id, "hashes": sorted(set(content_hashes))},
    )


def merge_cache(model_id: str) -> Query:
    return Query(MERGE_CACHE, {"model_id": model_id})


# --- rows: the payload checked and shaped for COPY ----------------------------------


def check_repo(repo: RepoRef) -> None:
    """Refuse a tenant or repository name the schema would refuse, naming it."""
    if not TENANT_PATTERN.fullmatch(repo.tenant):
        raise InvalidInputError(
            f"tenant {repo.tenant!r} is invalid: expected lower-case letters, digits, '_' or"
            " '-', at most 63 characters, starting with a letter or digit"
        )
    if not 1 <= len(repo.name) <= REPOSITORY_NAME_MAX_CHARS or _text_problem(repo.name):
        raise InvalidInputError(
            f"repository name {repo.name!r} of tenant {repo.tenant!r} is invalid: expected"
            f" 1 to {REPOSITORY_NAME_MAX_CHARS} characters without NUL bytes"
        )


def chunk_rows(chunks: Sequence[StoredChunk], dimension: int | None) -> list[ChunkRow]:
    """Checked rows for COPY, one per (file sha256, chunk id); a later duplicate wins.
    ``dimension`` None: vectors of any one dimension (checked against their table later)."""
    rows: dict[tuple[str, str], ChunkRow] = {}
    for stored in chunks:
        rows[(stored.file_sha256, stored.chunk.chunk_id)] = chunk_row(stored, dimension)
    return list(rows.values())


def chunk_row(stored: StoredChunk, dimension: int | None) -> ChunkRow:
    chunk, span = stored.chunk, stored.chunk.span
    what = f"chunk {chunk.chunk_id!r} of {chunk.path!r}"
    texts = {
        "chunk id": chunk.chunk_id,
        "path": chunk.path,
        "file sha256": stored.file_sha256,
        "symbol": chunk.symbol,
        "kind": str(chunk.kind),
        "language": chunk.language,
        "text": chunk.text,
        "content hash": chunk.content_hash,
        "model id": stored.model_id,
    }
    for field, value in texts.items():
        problem = _text_problem(value)
        if problem:
            raise InvalidInputError(f"{what}: its {field} holds {problem}")
    for field in ("chunk id", "path", "file sha256"):
        if not texts[field]:
            raise InvalidInputError(f"{what}: its {field} is empty")
    if not 1 <= span.start_line <= span.end_line <= INT4_MAX or not (
        0 <= span.start_byte <= span.end_byte <= INT4_MAX
    ):
        raise InvalidInputError(f"{what}: its span {span} is not a valid region")
    embedding = None
    if stored.embedding is not None:
        embedding = check_vector(stored.embedding, dimension, what)
    return (
        chunk.chunk_id,
        chunk.path,
        stored.file_sha256,
        span.start_line,
        span.end_line,
        span.start_byte,
        span.end_byte,
        chunk.symbol,
        texts["kind"],
        chunk.language,
        chunk.text,
        chunk.content_hash,
        stored.model_id,
        embedding,
        lexical_text(chunk.text),
    )


def cache_rows(
    model_id: str,
    vectors: Mapping[str, Sequence[float] | npt.NDArray[Any]],
    dimension: int | None,
) -> list[CacheRow]:
    """Checked (content hash, vector) rows for COPY into the embedding cache."""
    check_texts("embedding cache model id", [model_id], allow_empty=False)
    check_texts(f"content hash cached for model {model_id!r}", vectors, allow_empty=False)
    return [
        (content_hash, check_vector(vector, dimension, f"content {content_hash!r} of {model_id!r}"))
        for content_hash, vector in vectors.items()
    ]


def check_limit(limit: int) -> None:
    """A batch size of at least one row (InvalidInputError naming it otherwise)."""
    if limit < 1:
        raise InvalidInputError(f"limit: expected at least 1, got {limit}")


def check_texts(what: str, values: Iterable[str], *, allow_empty: bool = True) -> None:
    """Refuse a key the database cannot hold (NUL byte, lone surrogate), naming it."""
    for value in values:
        if not value and not allow_empty:
            raise InvalidInputError(f"{what} is empty")
        problem = _text_problem(value)
        if problem:
            raise InvalidInputError(f"{what} {value!r} holds {problem}")


def unknown_repository(repo: RepoRef) -> InvalidInputError:
    return InvalidInputError(
        f"repository {repo.key!r} does not exist: ensure_repository() it before writing"
    )


def check_vector(
    value: Sequence[float] | npt.NDArray[Any], dimension: int | None, what: str
) -> Vector:
    """A new float32 row (never the caller's array) of ``dimension`` finite values
    (``dimension`` None: any length but 0)."""
    try:
        vector = np.array(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what}: its embedding is not a vector of floats") from exc
    if dimension is None and vector.ndim == 1 and vector.size:
        dimension = vector.size
    if vector.shape != (dimension,):
        raise InvalidInputError(
            f"{what}: its embedding has shape {vector.shape}, expected ({dimension},)"
        )
    if not np.isfinite(vector).all():
        raise InvalidInputError(f"{what}: its embedding holds NaN or infinite values")
    return vector


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "a NUL byte"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone surrogate (not encodable as UTF-8)"
    return None


def vector_extension_version() -> Query:
    """The installed pgvector version (no row when the extension is missing)."""
    return Query("SELECT extversion FROM pg_extension WHERE extname = 'vector'", {})

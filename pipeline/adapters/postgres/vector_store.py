"""PgVectorStore: the VectorStore port on PostgreSQL + pgvector, and its connection pool.

A batch of chunks goes in with one binary COPY into a temporary staging table (dropped
at commit) and one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``, in one transaction:
never row by row. The tsvector is computed by PostgreSQL from the staged lexical text
(``pipeline.search.lexical``). Every statement is scoped by the repository id, looked up from
(tenant, name) and cached per instance. The statement texts live in ``pipeline.statements.sql``.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import psycopg

from pipeline.adapters.postgres.base import (
    PooledStore,
    check_vector_column,
    copy_rows,
    open_pool,
)
from pipeline.adapters.postgres.connect import map_psycopg_errors
from pipeline.adapters.postgres.model_registry import live_for_write, write_staged
from pipeline.embedding_models import RegisteredModel
from pipeline.errors import InvalidInputError
from pipeline.models import RepoRef, StoredChunk
from pipeline.statements import sql


class PgVectorStore(PooledStore):
    """Chunks of tenants' repositories in the ``chunks`` table.

    ``dimension`` must match ``chunks.embedding`` (checked here, :class:`ConfigError`
    naming both otherwise); ``pool_size`` bounds the connections; ``timeout_s`` bounds
    connecting and waiting for a pooled connection. Call :meth:`close` when done.

    ``upsert_chunks`` returns the rows inserted or changed: a replayed batch returns 0
    and rewrites nothing. Writing to a repository that was never ensured (or was deleted)
    raises :class:`InvalidInputError`; reading one gives empty results.
    """

    def __init__(
        self, dsn: str, *, dimension: int, pool_size: int = 4, timeout_s: float = 5.0
    ) -> None:
        check_vector_column(dsn, "chunks", "embedding", dimension, timeout_s=timeout_s)
        self._dimension = dimension
        self._pool = open_pool(
            dsn, pool_size=pool_size, timeout_s=timeout_s, name="quarry-vector-store"
        )
        self._ids: dict[RepoRef, int] = {}
        self._ids_lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return self._dimension

    def ensure_repository(self, repo: RepoRef) -> None:
        sql.check_repo(repo)
        self._forget(repo)  # look it up again: another process may have re-created it
        with self._transaction() as conn:
            for query in (sql.ensure_tenant(repo), sql.ensure_repository(repo)):
                conn.execute(query.text, query.params)
            repo_id = self._lookup(conn, repo)
        if repo_id is None:  # pragma: no cover - the row was inserted or existed
            raise sql.unknown_repository(repo)

    def upsert_chunks(
        self,
        repo: RepoRef,
        chunks: Sequence[StoredChunk],
        *,
        whole_versions: bool = False,
        defer_index: bool = False,
    ) -> int:
        sql.check_repo(repo)
        sql.chunk_rows(chunks, None)  # the input checked before any of it is written
        if not chunks:
            return 0
        try:
            with self._transaction() as conn:
                repo_id = self._lookup(conn, repo)
                if repo_id is None:
                    raise sql.unknown_repository(repo)
                live = live_for_write(conn)
                rows = sql.chunk_rows(in_chunks_table(chunks, live), self._dimension)
                conn.execute(sql.CREATE_CHUNK_STAGING)
                with conn.cursor() as cur:
                    copy_rows(cur, sql.COPY_CHUNK_STAGING, sql.CHUNK_STAGING_TYPES, rows)
                    merge = sql.merge_chunks(repo_id, defer_index=defer_index)
                    cur.execute(merge.text, merge.params)
                    written: int = cur.rowcount
                    if whole_versions:
                        other = sql.delete_other_chunks_of_staged_versions(repo_id)
                        cur.execute(other.text, other.params)
                conn.execute("DROP TABLE quarry_chunk_staging")
                for model in live:
                    staged = side_rows(repo_id, chunks, model)
                    if staged:
                        write_staged(conn, model.storage, staged)
                return written
        except InvalidInputError as exc:
            if isinstance(exc.__cause__, psycopg.errors.ForeignKeyViolation):
                # Deleted by another process since its id was cached here.
                self._forget(repo)
                raise sql.unknown_repository(repo) from exc.__cause__
            raise

    def index_pending(self, limit: int) -> int:
        """Up to ``limit`` rows that the write stage wrote out of the HNSW index go in
        (migration 0021), in one transaction; how many. Rows a concurrent transaction
        holds are skipped, so two callers never wait on each other."""
        sql.check_limit(limit)
        with self._transaction() as conn:
            return conn.execute(sql.INDEX_PENDING, {"limit": limit}).rowcount

    def pending_rows(self) -> int:
        """How many rows wait for :meth:`index_pending` (``indexed`` false; all tenants)."""
        with self._transaction() as conn:
            row = conn.execute(sql.PENDING_ROWS).fetchone()
        return int(row[0]) if row else 0

    def delete_files(self, repo: RepoRef, paths: Sequence[str]) -> int:
        sql.check_repo(repo)
        sql.check_texts("path", paths)
        if not paths:
            return 0
        with self._transaction() as conn:
            repo_id = self._lookup(conn, repo)
            if repo_id is None:
                return 0
            query = sql.delete_files(repo_id, paths)
            return conn.execute(query.text, query.params).rowcount

    def retain_versions(self, repo: RepoRef, keep: Mapping[str, Collection[str]]) -> int:
        sql.check_repo(repo)
        sql.check_texts("path", keep.keys())
        sql.check_texts("file sha256", [sha for shas in keep.values() for sha in shas])
        if not keep:
            return 0
        with self._transaction() as conn:
            repo_id = self._lookup(conn, repo)
            if repo_id is None:
                return 0
            query = sql.retain_versions(repo_id, keep)
            return conn.execute(query.text, query.params).rowcount

    def file_versions(self, repo: RepoRef) -> dict[str, frozenset[str]]:
        sql.check_repo(repo)
        found: dict[str, set[str]] = {}
        with self._transaction() as conn:
            repo_id = self._lookup(conn, repo)
            if repo_id is not None:
                query = sql.file_versions(repo_id)
                for path, sha in conn.execute(query.text, query.params):
                    found.setdefault(path, set()).add(sha)
        return {path: frozenset(shas) for path, shas in found.items()}

    def chunk_keys(self, repo: RepoRef) -> set[tuple[str, str, str]]:
        sql.check_repo(repo)
        with self._transaction() as conn:
            repo_id = self._lookup(conn, repo)
            if repo_id is None:
                return set()
            query = sql.chunk_keys(repo_id)
            return {(p, s, i) for p, s, i in conn.execute(query.text, query.params)}

    def delete_repository(self, repo: RepoRef) -> None:
        sql.check_repo(repo)
        self._forget(repo)
        with self._transaction() as conn:
            repo_id = self._lookup(conn, repo)
            if repo_id is None:
                return
            for query in sql.delete_repository(repo_id):
                conn.execute(query.text, query.params)
        self._forget(repo)

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with map_psycopg_errors(), self._pool.connection() as conn, conn.transaction():
            yield conn

    def _lookup(self, conn: psycopg.Connection[Any], repo: RepoRef) -> int | None:
        with self._ids_lock:
            cached = self._ids.get(repo)
        if cached is not None:
            return cached
        query = sql.repository_id(repo)
        row = conn.execute(query.text, query.params).fetchone()
        if row is None:
            return None
        with self._ids_lock:
            self._ids[repo] = int(row[0])
        return int(row[0])

    def _forget(self, repo: RepoRef) -> None:
        with self._ids_lock:
            self._ids.pop(repo, None)


def in_chunks_table(
    chunks: Sequence[StoredChunk], live: Sequence[RegisteredModel]
) -> list[StoredChunk]:
    """The chunks as chunks.embedding takes them: a vector there only when its model is
    the live model stored there (or no model is registered yet: an index that predates
    the registry's first use); another model's vector goes to its own table."""
    if not live:
        return list(chunks)
    there = {m.model_id for m in live if m.in_chunks_table}
    return [c if c.model_id in there else replace(c, embedding=None) for c in chunks]


def side_rows(
    repo_id: int, chunks: Sequence[StoredChunk], model: RegisteredModel
) -> list[tuple[Any, ...]]:
    """The rows of ``model``'s own table: each chunk's vector of that model, when the
    write carries one (None for a blank chunk); none when the model is stored in
    chunks.embedding or the write carries none of its vectors (the backfill fills those)."""
    if model.in_chunks_table:
        return []
    staged: dict[tuple[str, str], tuple[Any, ...]] = {}
    for stored in chunks:
        if stored.model_id == model.model_id:
            vector = stored.embedding
        elif model.model_id in stored.extra:
            vector = stored.extra[model.model_id]
        else:
            continue
        checked = None
        if vector is not None:
            checked = sql.check_vector(vector, model.dimension, f"chunk {stored.chunk.chunk_id!r}")
        # One row per (file version, chunk), the last one given winning, as chunk_rows
        # keeps them: a file sent twice in one grouped write (a redelivered message)
        # would otherwise stage a row twice, which the merge refuses for the whole write.
        key = (stored.file_sha256, stored.chunk.chunk_id)
        staged[key] = (repo_id, stored.file_sha256, stored.chunk.chunk_id, checked)
    return list(staged.values())

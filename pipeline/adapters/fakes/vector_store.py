"""InMemoryVectorStore and InMemoryEmbeddingCache: behaving fakes of the PostgreSQL ports.

They refuse the same input as the real stores (the checks of ``pipeline.statements.sql``), write a
batch all or nothing, count only rows that changed, and keep tenants apart. Vectors are
copied in and out as float32, so callers cannot alias what is stored.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from pipeline.models import RepoRef, StoredChunk
from pipeline.statements import sql

_Key = tuple[str, str]  # (file sha256, chunk id), the row key within a repository
_EMBEDDING: Final = 13  # ChunkRow index of the vector; the lexical text after it is derived
_RowTest = Callable[[sql.ChunkRow], bool]


class InMemoryVectorStore:
    """Chunks of repositories in a dict; ``dimension`` plays the embedding column's."""

    def __init__(self, *, dimension: int = 384) -> None:
        self._dimension = dimension
        self._repos: dict[RepoRef, dict[_Key, sql.ChunkRow]] = {}
        # Rows written with a vector and not yet "indexed", oldest first, as the real
        # store's chunks.indexed (migration 0021); a deleted row is skipped when met.
        self._pending: dict[tuple[RepoRef, _Key], None] = {}
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return self._dimension

    def close(self) -> None:
        """Nothing to release; here for parity with the real store."""

    def ensure_repository(self, repo: RepoRef) -> None:
        sql.check_repo(repo)
        with self._lock:
            self._repos.setdefault(repo, {})

    def upsert_chunks(
        self,
        repo: RepoRef,
        chunks: Sequence[StoredChunk],
        *,
        whole_versions: bool = False,
        defer_index: bool = False,
    ) -> int:
        sql.check_repo(repo)
        rows = sql.chunk_rows(chunks, self._dimension)
        if not rows:
            return 0
        with self._lock:
            stored = self._repos.get(repo)
            if stored is None:
                raise sql.unknown_repository(repo)
            written = 0
            for row in rows:
                key = (row[2], row[0])
                old = stored.get(key)
                if old is None or not _same(old, row):
                    stored[key] = row  # its vector is a copy (sql.check_vector)
                    written += 1
                    self._pending.pop((repo, key), None)
                    if defer_index and row[_EMBEDDING] is not None:
                        self._pending[(repo, key)] = None
            if whole_versions:
                versions = {(row[1], row[2]) for row in rows}
                staged = {(row[2], row[0]) for row in rows}
                for key in [
                    k for k, r in stored.items() if (r[1], r[2]) in versions and k not in staged
                ]:
                    del stored[key]
            return written

    def index_pending(self, limit: int) -> int:
        sql.check_limit(limit)
        with self._lock:
            done = 0
            for repo, key in list(self._pending):
                if done == limit:
                    break
                del self._pending[(repo, key)]
                done += key in self._repos.get(repo, {})
            return done

    def pending_rows(self) -> int:
        with self._lock:
            return sum(key in self._repos.get(repo, {}) for repo, key in self._pending)

    def delete_files(self, repo: RepoRef, paths: Sequence[str]) -> int:
        sql.check_repo(repo)
        sql.check_texts("path", paths)
        doomed = set(paths)
        return self._delete(repo, lambda row: row[1] in doomed)

    def retain_versions(self, repo: RepoRef, keep: Mapping[str, Collection[str]]) -> int:
        sql.check_repo(repo)
        sql.check_texts("path", keep.keys())
        sql.check_texts("file sha256", [sha for shas in keep.values() for sha in shas])
        return self._delete(repo, lambda row: row[1] in keep and row[2] not in keep[row[1]])

    def file_versions(self, repo: RepoRef) -> dict[str, frozenset[str]]:
        sql.check_repo(repo)
        found: dict[str, set[str]] = {}
        with self._lock:
            for row in self._repos.get(repo, {}).values():
                found.setdefault(row[1], set()).add(row[2])
        return {path: frozenset(shas) for path, shas in found.items()}

    def chunk_keys(self, repo: RepoRef) -> set[tuple[str, str, str]]:
        sql.check_repo(repo)
        with self._lock:
            return {(row[1], row[2], row[0]) for row in self._repos.get(repo, {}).values()}

    def delete_repository(self, repo: RepoRef) -> None:
        sql.check_repo(repo)
        with self._lock:
            self._repos.pop(repo, None)

    def embedding(
        self, repo: RepoRef, file_sha256: str, chunk_id: str
    ) -> npt.NDArray[np.float32] | None:
        """The stored vector of one chunk (None without one); for tests, not in the port."""
        with self._lock:
            row = self._repos.get(repo, {}).get((file_sha256, chunk_id))
        if row is None or row[_EMBEDDING] is None:
            return None
        return row[_EMBEDDING].copy()

    def rows(self, repo: RepoRef) -> list[sql.ChunkRow]:
        """Every stored row of the repository, for the in-memory search index."""
        with self._lock:
            return list(self._repos.get(repo, {}).values())

    def _delete(self, repo: RepoRef, doomed: _RowTest) -> int:
        with self._lock:
            stored = self._repos.get(repo)
            if stored is None:
                return 0
            keys = [key for key, row in stored.items() if doomed(row)]
            for key in keys:
                del stored[key]
            return len(keys)


class InMemoryEmbeddingCache:
    """Vectors by (model id, content hash) in a dict; the first vector stored stays."""

    def __init__(self, *, dimension: int = 384) -> None:
        self._dimension = dimension
        self._vectors: dict[tuple[str, str], npt.NDArray[np.float32]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Nothing to release; here for parity with the real cache."""

    def get_many(
        self, model_id: str, content_hashes: Sequence[str]
    ) -> dict[str, npt.NDArray[np.float32]]:
        sql.check_texts("embedding cache model id", [model_id])
        sql.check_texts("content hash", content_hashes)
        with self._lock:
            found = {h: self._vectors.get((model_id, h)) for h in content_hashes}
        return {h: v.copy() for h, v in found.items() if v is not None}

    def put_many(self, model_id: str, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None:
        rows = sql.cache_rows(model_id, vectors, self._dimension)
        with self._lock:
            for content_hash, vector in rows:
                self._vectors.setdefault((model_id, content_hash), vector.copy())


def _same(old: sql.ChunkRow, new: sql.ChunkRow) -> bool:
    """Whether ``new`` would change nothing: every stored column equal (the real store's
    ``IS DISTINCT FROM``); the lexical text is derived from the content."""
    if old[:_EMBEDDING] != new[:_EMBEDDING]:
        return False
    a, b = old[_EMBEDDING], new[_EMBEDDING]
    if a is None or b is None:
        return a is b
    return bool(np.array_equal(a, b))

"""Stores behind their circuit breakers: the same ports, every call through the breaker.

Owns which calls a breaker guards: all of them, reads and writes, so that a store that
is down is recognised by every caller at once. The breaker itself decides what counts
as a failure (transient errors only; bad data never opens it).

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from pipeline.models import FileGraph, RepoRef, StoredChunk
from pipeline.ports import CircuitBreaker, EmbeddingCache, GraphStore, VectorStore


class GuardedVectorStore:
    """A :class:`VectorStore` whose every call goes through ``breaker``."""

    def __init__(self, inner: VectorStore, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker

    def ensure_repository(self, repo: RepoRef) -> None:
        self.breaker.call(lambda: self.inner.ensure_repository(repo))

    def upsert_chunks(self, repo: RepoRef, chunks: Sequence[StoredChunk]) -> int:
        return self.breaker.call(lambda: self.inner.upsert_chunks(repo, chunks))

    def delete_files(self, repo: RepoRef, paths: Sequence[str]) -> int:
        return self.breaker.call(lambda: self.inner.delete_files(repo, paths))

    def retain_versions(self, repo: RepoRef, current: Mapping[str, str]) -> int:
        return self.breaker.call(lambda: self.inner.retain_versions(repo, current))

    def file_versions(self, repo: RepoRef) -> dict[str, frozenset[str]]:
        return self.breaker.call(lambda: self.inner.file_versions(repo))

    def chunk_keys(self, repo: RepoRef) -> set[tuple[str, str, str]]:
        return self.breaker.call(lambda: self.inner.chunk_keys(repo))

    def delete_repository(self, repo: RepoRef) -> None:
        self.breaker.call(lambda: self.inner.delete_repository(repo))


class GuardedGraphStore:
    """A :class:`GraphStore` whose every call goes through ``breaker``."""

    def __init__(self, inner: GraphStore, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker

    def write_files(self, repo: RepoRef, files: Sequence[FileGraph]) -> int:
        return self.breaker.call(lambda: self.inner.write_files(repo, files))

    def delete_files(self, repo: RepoRef, paths: Sequence[str]) -> int:
        return self.breaker.call(lambda: self.inner.delete_files(repo, paths))

    def file_versions(self, repo: RepoRef) -> dict[str, str]:
        return self.breaker.call(lambda: self.inner.file_versions(repo))

    def chunk_ids(self, repo: RepoRef) -> set[str]:
        return self.breaker.call(lambda: self.inner.chunk_ids(repo))

    def delete_repository(self, repo: RepoRef) -> None:
        self.breaker.call(lambda: self.inner.delete_repository(repo))


class GuardedEmbeddingCache:
    """An :class:`EmbeddingCache` (kept in PostgreSQL) behind the PostgreSQL breaker."""

    def __init__(self, inner: EmbeddingCache, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker

    def get_many(
        self, model_id: str, content_hashes: Sequence[str]
    ) -> dict[str, npt.NDArray[np.float32]]:
        return self.breaker.call(lambda: self.inner.get_many(model_id, content_hashes))

    def put_many(self, model_id: str, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None:
        self.breaker.call(lambda: self.inner.put_many(model_id, vectors))

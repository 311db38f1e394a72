"""Stores behind their circuit breakers: the same ports, every call through the breaker.

Owns which calls a breaker guards: all of them, reads and writes, so that a store that
is down is recognised by every caller at once. The breaker itself decides what counts
as a failure (transient errors only; bad data never opens it). The store is built on
its first call, inside the breaker, so that a worker starts while a store is down and
the failure to connect counts like any other.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from pipeline.models import FileGraph, GraphSymbol, RepoRef, StoredChunk, SymbolLink
from pipeline.ports import CircuitBreaker, EmbeddingCache, GraphStore, VectorStore

S = TypeVar("S")


class Deferred(Generic[S]):
    """Builds a store once, on first use, under a lock; :meth:`close` closes it if built."""

    def __init__(self, factory: Callable[[], S]) -> None:
        self._factory = factory
        self._value: S | None = None
        self._lock = threading.Lock()

    def get(self) -> S:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
                value = self._value
        return value

    def close(self) -> None:
        with self._lock:
            value, self._value = self._value, None
        close = getattr(value, "close", None)
        if callable(close):
            close()


class GuardedVectorStore:
    """A :class:`VectorStore` whose every call goes through ``breaker``."""

    def __init__(self, inner: Deferred[VectorStore], breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker

    def ensure_repository(self, repo: RepoRef) -> None:
        self.breaker.call(lambda: self.inner.get().ensure_repository(repo))

    def upsert_chunks(self, repo: RepoRef, chunks: Sequence[StoredChunk]) -> int:
        return self.breaker.call(lambda: self.inner.get().upsert_chunks(repo, chunks))

    def delete_files(self, repo: RepoRef, paths: Sequence[str]) -> int:
        return self.breaker.call(lambda: self.inner.get().delete_files(repo, paths))

    def retain_versions(self, repo: RepoRef, current: Mapping[str, str]) -> int:
        return self.breaker.call(lambda: self.inner.get().retain_versions(repo, current))

    def file_versions(self, repo: RepoRef) -> dict[str, frozenset[str]]:
        return self.breaker.call(lambda: self.inner.get().file_versions(repo))

    def chunk_keys(self, repo: RepoRef) -> set[tuple[str, str, str]]:
        return self.breaker.call(lambda: self.inner.get().chunk_keys(repo))

    def delete_repository(self, repo: RepoRef) -> None:
        self.breaker.call(lambda: self.inner.get().delete_repository(repo))


class GuardedGraphStore:
    """A :class:`GraphStore` whose every call goes through ``breaker``."""

    def __init__(self, inner: Deferred[GraphStore], breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker

    def write_files(self, repo: RepoRef, files: Sequence[FileGraph]) -> int:
        return self.breaker.call(lambda: self.inner.get().write_files(repo, files))

    def delete_files(self, repo: RepoRef, paths: Sequence[str]) -> int:
        return self.breaker.call(lambda: self.inner.get().delete_files(repo, paths))

    def file_versions(self, repo: RepoRef) -> dict[str, str]:
        return self.breaker.call(lambda: self.inner.get().file_versions(repo))

    def chunk_ids(self, repo: RepoRef) -> set[str]:
        return self.breaker.call(lambda: self.inner.get().chunk_ids(repo))

    def chunk_keys(self, repo: RepoRef) -> set[tuple[str, str]]:
        return self.breaker.call(lambda: self.inner.get().chunk_keys(repo))

    def delete_repository(self, repo: RepoRef) -> None:
        self.breaker.call(lambda: self.inner.get().delete_repository(repo))

    def find_symbols(self, repo: RepoRef, name: str, limit: int) -> list[GraphSymbol]:
        return self.breaker.call(lambda: self.inner.get().find_symbols(repo, name, limit))

    def symbol_links(self, repo: RepoRef, qualified_names: Sequence[str]) -> list[SymbolLink]:
        return self.breaker.call(lambda: self.inner.get().symbol_links(repo, qualified_names))


class GuardedEmbeddingCache:
    """An :class:`EmbeddingCache` (kept in PostgreSQL) behind the PostgreSQL breaker."""

    def __init__(self, inner: Deferred[EmbeddingCache], breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker

    def get_many(
        self, model_id: str, content_hashes: Sequence[str]
    ) -> dict[str, npt.NDArray[np.float32]]:
        return self.breaker.call(lambda: self.inner.get().get_many(model_id, content_hashes))

    def put_many(self, model_id: str, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None:
        self.breaker.call(lambda: self.inner.get().put_many(model_id, vectors))


class GuardedProxy:
    """Any store (jobs, snapshots) built lazily, every method call through ``breaker``:
    while the store is known to be down, callers get BreakerOpenError at once."""

    def __init__(self, inner: Deferred[Any], breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self.breaker.call(lambda: getattr(self.inner.get(), name)(*args, **kwargs))

        return call

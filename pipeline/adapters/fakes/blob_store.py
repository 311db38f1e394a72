"""The in-memory fake of the source blob store: the same contract as PgBlobStore
(pipeline.adapters.postgres.blob_store) without its server; the contract tests run both.

``referenced`` says which hashes some snapshot's files still hold (the real store asks
its ``files`` table); ``clock`` is injectable.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

from pipeline.sources.blobs import check_blob, pack, unpack
from pipeline.statements.blob_sql import check_hashes


class InMemoryBlobStore:
    def __init__(
        self,
        *,
        referenced: Callable[[], set[str]] = set,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._blobs: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()
        self._referenced = referenced
        self._clock = clock

    def missing(self, hashes: Sequence[str]) -> set[str]:
        wanted = set(check_hashes(hashes))
        with self._lock:
            return wanted - set(self._blobs)

    def put_many(self, blobs: Mapping[str, bytes]) -> int:
        for sha256, data in blobs.items():
            check_blob(sha256, data)
        now, new = self._clock(), 0
        with self._lock:
            for sha256, data in blobs.items():
                if sha256 not in self._blobs:
                    self._blobs[sha256] = (now, pack(data))
                    new += 1
        return new

    def get_many(self, hashes: Sequence[str]) -> dict[str, bytes]:
        wanted = set(check_hashes(hashes))
        with self._lock:
            found = {h: self._blobs[h][1] for h in wanted if h in self._blobs}
        return {h: unpack(h, packed) for h, packed in found.items()}

    def collect(self, *, older_than_s: float, limit: int) -> int:
        held, cutoff = self._referenced(), self._clock() - older_than_s
        with self._lock:
            doomed = [h for h, (at, _) in self._blobs.items() if at < cutoff and h not in held]
            for sha256 in doomed[:limit]:
                del self._blobs[sha256]
        return min(len(doomed), limit)

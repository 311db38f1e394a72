"""The in-memory fake of the query cache: InMemoryQueryEmbeddingCache, the same contract
as the real adapter (pipeline.adapters.redis.query_cache) without its server; the
contract tests run both.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from pipeline.adapters.redis.query_cache import (
    query_key,
)


class InMemoryQueryEmbeddingCache:
    """The fake: the same keys and lifetime, in a dict; ``clock`` is injectable."""

    def __init__(self, *, ttl_s: int, clock: Callable[[], float] | None = None) -> None:
        self._ttl_s = ttl_s
        self._clock = clock or time.monotonic
        self._items: dict[str, tuple[float, bytes]] = {}

    def get(self, model_id: str, query: str) -> npt.NDArray[np.float32] | None:
        if self._ttl_s <= 0:
            return None
        item = self._items.get(query_key(model_id, query))
        if item is None or item[0] <= self._clock():
            return None
        return np.frombuffer(item[1], dtype=np.float32).copy()

    def put(self, model_id: str, query: str, vector: npt.NDArray[np.float32]) -> None:
        if self._ttl_s <= 0:
            return
        data = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        self._items[query_key(model_id, query)] = (self._clock() + self._ttl_s, data)

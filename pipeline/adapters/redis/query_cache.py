"""Query embeddings cached in Redis with a lifetime (the fake: adapters/fakes/query_cache.py).

A key is the sha256 of (model id, query), so a query's text is never stored and a
model change misses; the value is the raw float32 bytes of the vector. A Redis that
cannot be reached makes the cache miss (and the model answer), never the search fail.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import numpy.typing as npt
import redis

log = logging.getLogger("quarry.embed")

KEY_PREFIX = "quarry:qvec:"


def query_key(model_id: str, query: str) -> str:
    digest = hashlib.sha256(f"{model_id}\x00{query}".encode()).hexdigest()
    return KEY_PREFIX + digest


class RedisQueryEmbeddingCache:
    """A :class:`~pipeline.ports.QueryEmbeddingCache` in Redis; ``ttl_s`` 0 disables it."""

    def __init__(self, client: redis.Redis[Any], *, ttl_s: int) -> None:
        self._client = client
        self._ttl_s = ttl_s

    def get(self, model_id: str, query: str) -> npt.NDArray[np.float32] | None:
        if self._ttl_s <= 0:
            return None
        try:
            raw = self._client.get(query_key(model_id, query))
        except redis.RedisError as exc:
            log.warning("query cache unavailable, embedding instead: %s", exc)
            return None
        if not isinstance(raw, bytes) or len(raw) % 4:
            return None
        return np.frombuffer(raw, dtype=np.float32).copy()

    def put(self, model_id: str, query: str, vector: npt.NDArray[np.float32]) -> None:
        if self._ttl_s <= 0:
            return
        data = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        try:
            self._client.set(query_key(model_id, query), data, ex=self._ttl_s)
        except redis.RedisError as exc:
            log.warning("query cache unavailable, vector not kept: %s", exc)

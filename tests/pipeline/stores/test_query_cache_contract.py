"""One contract over the query-embedding caches: Redis (real) and the in-memory fake."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import numpy as np
import pytest

from config.endpoints import Endpoints
from pipeline.adapters.fakes.query_cache import InMemoryQueryEmbeddingCache
from pipeline.adapters.redis.client import connect_redis
from pipeline.adapters.redis.query_cache import RedisQueryEmbeddingCache
from pipeline.ports import QueryEmbeddingCache

Factory = Callable[[int], QueryEmbeddingCache]


@pytest.fixture(params=["memory", "redis"])
def make_cache(request: pytest.FixtureRequest) -> Factory:
    if request.param == "memory":
        return lambda ttl_s: InMemoryQueryEmbeddingCache(ttl_s=ttl_s)
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    client = connect_redis(endpoints.redis_url)
    return lambda ttl_s: RedisQueryEmbeddingCache(client, ttl_s=ttl_s)


def _vector(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    return vector / np.linalg.norm(vector)


def test_a_stored_query_vector_comes_back_unchanged(make_cache: Factory) -> None:
    cache = make_cache(60)
    query = f"parse headers {uuid.uuid4()}"
    assert cache.get("m", query) is None
    cache.put("m", query, _vector(1))
    hit = cache.get("m", query)
    assert hit is not None and hit.dtype == np.float32
    np.testing.assert_array_equal(hit, _vector(1))


def test_the_model_id_is_part_of_the_key(make_cache: Factory) -> None:
    cache = make_cache(60)
    query = f"open a session {uuid.uuid4()}"
    cache.put("model-a", query, _vector(2))
    assert cache.get("model-b", query) is None


def test_an_entry_expires_after_its_lifetime(make_cache: Factory) -> None:
    cache = make_cache(1)
    query = f"retry with backoff {uuid.uuid4()}"
    cache.put("m", query, _vector(3))
    assert cache.get("m", query) is not None
    time.sleep(1.2)
    assert cache.get("m", query) is None


def test_a_zero_lifetime_disables_the_cache(make_cache: Factory) -> None:
    cache = make_cache(0)
    cache.put("m", "q", _vector(4))
    assert cache.get("m", "q") is None


def test_an_unreachable_redis_misses_instead_of_failing() -> None:
    cache = RedisQueryEmbeddingCache(connect_redis("redis://127.0.0.1:1/0"), ttl_s=60)
    cache.put("m", "q", _vector(5))
    assert cache.get("m", "q") is None

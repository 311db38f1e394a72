"""The API in-process on the session stack's PostgreSQL with its Redis pointed at a
database no worker consumes: what it enqueues stays queued until the test ends it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from fastapi.testclient import TestClient

from config.endpoints import resolve_endpoints
from devstack.stack import Stack


@contextmanager
def idle_api(
    stack: Stack, *, db: int, queue_bound_ingest: int, **overrides: object
) -> Iterator[TestClient]:
    """A client of that API, sending the stack's token; Redis database ``db`` (its own
    per test module) is emptied before and after. ``overrides``: more settings."""
    from api.app import create_app

    endpoints = resolve_endpoints(stack.settings)
    url = endpoints.redis_url.rsplit("/", 1)[0] + f"/{db}"
    settings = stack.settings.model_copy(
        update={"redis_url": url, "queue_bound_ingest": queue_bound_ingest, **overrides}
    )
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        with TestClient(create_app(settings)) as api:
            api.headers["Authorization"] = f"Bearer {endpoints.api_token}"
            yield api
    finally:
        client.flushdb()
        client.close()

"""The API in-process on the session stack's PostgreSQL with its Redis pointed at a
database no worker consumes: what it enqueues stays queued until the test ends it.
``idle_api`` drives it through Starlette's test client; ``served_api`` serves it with
uvicorn on a loopback port, for what only a real connection shows (a client that
leaves)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
import uvicorn
from fastapi import FastAPI
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

    with (
        _idle_settings(stack, db, queue_bound_ingest, overrides) as (settings, token),
        TestClient(create_app(settings)) as api,
    ):
        api.headers["Authorization"] = f"Bearer {token}"
        yield api


@contextmanager
def served_api(
    stack: Stack, *, db: int, queue_bound_ingest: int, **overrides: object
) -> Iterator[tuple[str, FastAPI]]:
    """(base URL, app) of that API served by uvicorn in a thread on 127.0.0.1 (a free
    port); stopped after."""
    from api.app import create_app

    with _idle_settings(stack, db, queue_bound_ingest, overrides) as (settings, _token):
        app = create_app(settings)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, name="served-api", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        try:
            port = server.servers[0].sockets[0].getsockname()[1]
            yield f"http://127.0.0.1:{port}", app
        finally:
            server.should_exit = True
            thread.join(30)


@contextmanager
def _idle_settings(
    stack: Stack, db: int, queue_bound_ingest: int, overrides: dict[str, object]
) -> Iterator[tuple[Any, str]]:
    endpoints = resolve_endpoints(stack.settings)
    url = endpoints.redis_url.rsplit("/", 1)[0] + f"/{db}"
    settings = stack.settings.model_copy(
        update={"redis_url": url, "queue_bound_ingest": queue_bound_ingest, **overrides}
    )
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield settings, endpoints.api_token
    finally:
        client.flushdb()
        client.close()

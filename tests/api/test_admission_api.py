"""A full ingest queue answers 429 with Retry-After, and the refused job is not kept.

The API runs in-process on the session stack's PostgreSQL, with its Redis pointed at a
database no worker consumes, so that the queue stays as full as the test makes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from config.endpoints import resolve_endpoints
from devstack.stack import Stack

IDLE_DB = 14


@pytest.fixture
def idle_api(stack: Stack) -> Iterator[TestClient]:
    from api.app import create_app

    endpoints = resolve_endpoints(stack.settings)
    url = endpoints.redis_url.rsplit("/", 1)[0] + f"/{IDLE_DB}"
    settings = stack.settings.model_copy(update={"redis_url": url, "queue_bound_ingest": 1})
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        with TestClient(create_app(settings)) as api:
            api.headers["Authorization"] = f"Bearer {endpoints.api_token}"
            yield api
    finally:
        client.flushdb()
        client.close()


def test_full_ingest_queue_answers_429_with_retry_after(
    idle_api: TestClient, tmp_path: Path
) -> None:
    (tmp_path / "a.py").write_text("def a():\n    return 1\n")
    first = idle_api.post(
        "/v1/jobs", json={"source": str(tmp_path), "repo": f"q-{uuid.uuid4().hex[:8]}"}
    )
    assert first.status_code == 202, first.text
    refused_repo = f"q-{uuid.uuid4().hex[:8]}"
    refused = idle_api.post("/v1/jobs", json={"source": str(tmp_path), "repo": refused_repo})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "quarry.ingest" in refused.json()["detail"]
    # The refused job was discarded: a retry creates it anew instead of finding a job
    # that never ran.
    assert idle_api.get("/v1/jobs", params={"repo": refused_repo}).json()["jobs"] == []

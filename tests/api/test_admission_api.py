"""A full ingest queue answers 429 with Retry-After, and the refused job is not kept.

The API runs in-process on the session stack's PostgreSQL, with its Redis pointed at a
database no worker consumes, so that the queue stays as full as the test makes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from devstack.stack import Stack
from tests.api.idle import idle_api as idle

IDLE_DB = 14


@pytest.fixture
def idle_api(stack: Stack) -> Iterator[TestClient]:
    with idle(stack, db=IDLE_DB, queue_bound_ingest=1) as api:
        yield api


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

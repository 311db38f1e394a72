"""Flower on the session stack: authenticated, and it shows every stage queue."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from config.endpoints import Endpoints
from config.queues import ALL_QUEUES

pytestmark = pytest.mark.timeout(120)


def test_flower_needs_its_password_and_shows_every_queue_with_its_workers(
    endpoints: Endpoints,
) -> None:
    url = f"{endpoints.flower_url}/api/queues/length"
    anonymous = httpx.get(url, timeout=10)
    assert anonymous.status_code == 401
    wrong = httpx.get(url, auth=(endpoints.flower_user, "not-the-password"), timeout=10)
    assert wrong.status_code == 401
    auth = (endpoints.flower_user, endpoints.flower_password)
    # Flower learns the queues from the workers' events: give them a moment after start.
    deadline = time.monotonic() + 90
    names: set[str] = set()
    while time.monotonic() < deadline:
        response = httpx.get(url, auth=auth, timeout=10)
        assert response.status_code == 200, response.text
        queues: list[dict[str, Any]] = response.json()["active_queues"]
        names = {q["name"] for q in queues}
        if names >= set(ALL_QUEUES):
            break
        time.sleep(1)
    assert names >= set(ALL_QUEUES), names
    # Every queue is consumed by a live worker Flower inspects (not only configured).
    workers = httpx.get(
        f"{endpoints.flower_url}/api/workers", params={"refresh": "true"}, auth=auth, timeout=60
    )
    assert workers.status_code == 200, workers.text
    consumed = {
        q["name"] for info in workers.json().values() for q in info.get("active_queues") or []
    }
    assert consumed == set(ALL_QUEUES), workers.json().keys()

"""Fixtures of the worker end-to-end tests: an API client on the session stack."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from config.endpoints import Endpoints


@pytest.fixture(scope="module")
def api(endpoints: Endpoints) -> Iterator[httpx.Client]:
    """The session stack's API, with its development token."""
    headers = {"Authorization": f"Bearer {endpoints.api_token}"}
    with httpx.Client(base_url=endpoints.api_url, headers=headers, timeout=30) as client:
        yield client

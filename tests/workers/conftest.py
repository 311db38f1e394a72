"""Fixtures of the worker end-to-end tests: an API client on the session stack, and a
copy of the corpus to index."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from config.endpoints import Endpoints
from tests.workers.jobs_api import corpus


@pytest.fixture(scope="module")
def api(endpoints: Endpoints) -> Iterator[httpx.Client]:
    """The session stack's API, with its development token."""
    headers = {"Authorization": f"Bearer {endpoints.api_token}"}
    with httpx.Client(base_url=endpoints.api_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "pathspec"
    shutil.copytree(corpus(), root, ignore=shutil.ignore_patterns("__pycache__"))
    return root

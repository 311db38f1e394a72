"""Fixtures of the worker end-to-end tests: an API client on the session stack, a
Celery app and a Redis client on its broker, and a copy of the corpus to index."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from celery import Celery

from config.endpoints import Endpoints
from devstack.stack import Stack
from pipeline.adapters.redis.client import connect_redis
from tasks.app import create_app
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


@pytest.fixture(scope="module")
def app(stack: Stack) -> Celery:
    """A Celery app on the session stack's broker (control, inspect, send)."""
    return create_app(stack.settings)


@pytest.fixture(scope="module")
def broker(endpoints: Endpoints) -> Iterator[redis.Redis[Any]]:
    """A Redis client on the session stack's broker."""
    client = connect_redis(endpoints.redis_url)
    yield client
    client.close()

"""Celery apps for the task tests: one never connected, one on Redis database 15.

Database 15 of the session stack's Redis is the task tests' alone (the stack's own
workers use database 0): it is emptied before and after each module that uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from celery import Celery

from config.endpoints import Endpoints
from config.settings import QuarrySettings, load_settings, settings_as_env
from tasks.app import create_app


@pytest.fixture(scope="module")
def offline_app() -> Celery:
    # Building messages needs no broker: this app is never connected.
    return create_app(load_settings(env={}))


@pytest.fixture(scope="module")
def settings15(stack_settings: QuarrySettings, endpoints: Endpoints) -> QuarrySettings:
    url = urlsplit(endpoints.redis_url)._replace(path="/15").geturl()
    return load_settings(env=settings_as_env(stack_settings), redis_url=url)


@pytest.fixture(scope="module")
def redis15(settings15: QuarrySettings) -> Iterator[redis.Redis[Any]]:
    assert settings15.redis_url is not None
    client: redis.Redis[Any] = redis.Redis.from_url(settings15.redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(scope="module")
def app15(settings15: QuarrySettings) -> Iterator[Celery]:
    app = create_app(settings15)
    try:
        yield app
    finally:
        app.close()

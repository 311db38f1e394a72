"""Redis clients for Quarry's own keys (breakers, dead letters, query cache, counters).

Short timeouts and no long retry loops: a caller that cannot reach Redis learns it in
about a second and decides what to do (a breaker keeps a local state, a cache misses).

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from typing import Any

import redis

from pipeline.errors import ConfigError


def connect_redis(url: str, *, timeout_s: float = 1.0) -> redis.Redis[Any]:
    """A client for ``url`` (nothing is sent until first use); a bad URL is a ConfigError."""
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
    except ValueError as exc:
        raise ConfigError(f"redis URL is not valid: {exc}") from exc

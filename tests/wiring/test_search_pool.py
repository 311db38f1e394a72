"""The API's search index takes its connection pool's size from the settings
(``search_pool_size``), on the session stack's PostgreSQL."""

from __future__ import annotations

from config.endpoints import resolve_endpoints
from devstack.stack import Stack
from wiring import stores


def test_the_search_pool_has_the_size_the_settings_give(stack: Stack) -> None:
    for size in (2, 7):
        settings = stack.settings.model_copy(update={"search_pool_size": size})
        index = stores.search_index(settings, resolve_endpoints(settings))
        try:
            assert index._pool.max_size == size
        finally:
            index.close()

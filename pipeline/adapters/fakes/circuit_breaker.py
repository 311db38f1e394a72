"""The in-memory fake of a store's circuit breaker: InMemoryCircuitBreaker, the same
contract as the real adapter (pipeline.adapters.redis.breakers) without its server; the
contract tests run both.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.adapters.redis.breakers import (
    LocalStorage,
    StoreBreaker,
)


class InMemoryCircuitBreaker(StoreBreaker):
    """The fake: the same behaviour with the state in this process only."""

    def __init__(
        self,
        store: str,
        *,
        fail_max: int = 5,
        reset_timeout_s: float = 30.0,
        on_state_change: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__(
            store,
            LocalStorage(),
            fail_max=fail_max,
            reset_timeout_s=reset_timeout_s,
            on_state_change=on_state_change,
        )

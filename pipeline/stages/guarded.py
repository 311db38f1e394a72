"""Stores behind their circuit breakers: the same ports, every call through the breaker.

Owns which calls a breaker guards: all of them, reads and writes, so that a store that
is down is recognised by every caller at once. The breaker itself decides what counts
as a failure (transient errors only; bad data never opens it). The store is built on
its first call, inside the breaker, so that a worker starts while a store is down and
the failure to connect counts like any other.

:func:`guarded` is the one way a store is put behind its breaker: it returns the store's
own port type (every port's members are methods, so a proxy serves them all).

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from pipeline.ports import CircuitBreaker

S = TypeVar("S")


class Deferred(Generic[S]):
    """Builds a store once, on first use, under a lock; :meth:`close` closes it if built."""

    def __init__(self, factory: Callable[[], S]) -> None:
        self._factory = factory
        self._value: S | None = None
        self._lock = threading.Lock()

    def get(self) -> S:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
                value = self._value
        return value

    def close(self) -> None:
        with self._lock:
            value, self._value = self._value, None
        close = getattr(value, "close", None)
        if callable(close):
            close()


class GuardedProxy:
    """A store built lazily, every method call through ``breaker``: while the store is
    known to be down, callers get BreakerOpenError at once."""

    def __init__(self, inner: Deferred[Any], breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self.breaker.call(lambda: getattr(self.inner.get(), name)(*args, **kwargs))

        return call


def guarded(store: Deferred[S], breaker: CircuitBreaker) -> S:
    """``store`` (built on first use) behind ``breaker``, as its own port type."""
    return cast(S, GuardedProxy(store, breaker))

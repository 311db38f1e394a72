"""Circuit breakers per store on pybreaker: state shared through Redis, or in process memory.

Only :class:`~pipeline.errors.TransientError` counts as a failure; anything else (a
:class:`~pipeline.errors.PermanentError`, a bug) is re-raised unchanged and leaves the
counters alone (pybreaker's ``exclude`` would reset them and close a half-open breaker,
so such errors bypass its accounting). While open, ``call`` raises
:class:`~pipeline.errors.BreakerOpenError` with the time left until a trial, computed
from the shared ``opened_at``. Then one trial call runs (a lease in the shared state
refuses the others); success closes the breaker, a transient failure re-opens it.

Observers: each change of state an instance makes or notices is logged once on
``quarry.breaker`` (``breaker <store>: <old> -> <new>``, old being the state it last
saw) and passed to ``on_state_change(store, state)``; an observer that raises is logged
and ignored. A change made by another process is noticed when this instance next reads
the state (``state`` or ``call``); a process that does not look between two changes
never observes the first. Pybreaker runs calls through one instance one at a time (it
holds its lock for the call), except the Redis breaker's calls inside its window after a
success (:class:`RedisCircuitBreaker`), which take no lock: build one breaker per worker
process, after the fork.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pybreaker
import redis

from pipeline.errors import BreakerOpenError, TransientError

T = TypeVar("T")
log = logging.getLogger("quarry.breaker")

KEY_PREFIX = "quarry:breaker"
CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN
_STATES = (CLOSED, OPEN, HALF_OPEN)
_MIN_RETRY_AFTER_S = 0.01
_MAX_STORED = 1e11  # seconds since 1970 until the year 5138; larger is corruption
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


def breaker_namespace(store: str) -> str:
    """The pybreaker namespace of a store's breaker in Redis: ``quarry:breaker:<store>``."""
    return f"{KEY_PREFIX}:{store}"


class LocalStorage(pybreaker.CircuitMemoryStorage):
    """Pybreaker's memory storage plus the trial lease, for one process."""

    def __init__(self) -> None:
        super().__init__(CLOSED)
        self._trial_until = 0.0

    def acquire_trial(self, lease_s: float) -> bool:
        now = time.monotonic()
        if now < self._trial_until:
            return False
        self._trial_until = now + lease_s
        return True

    def release_trial(self) -> None:
        self._trial_until = 0.0

    def trial_left_s(self) -> float:
        return max(0.0, self._trial_until - time.monotonic())


def _nothing() -> None:
    return None


def _number(raw: object) -> float | None:
    """A stored number, or None when absent or unreadable (never fail the store call)."""
    try:
        value = float(raw.decode() if isinstance(raw, bytes) else str(raw))
    except (ValueError, UnicodeDecodeError):
        return None
    return value if math.isfinite(value) and abs(value) < _MAX_STORED else None


class _SharedStorage(pybreaker.CircuitRedisStorage):
    """Pybreaker's Redis storage (same keys: ``<namespace>:pybreaker:<key>``), reworked.

    Its 1.4 I/O is replaced because it keeps ``opened_at`` in whole seconds (a retry
    hint off by up to 1 s), calls ``bytes.decode`` (fails on a decoding client), writes
    to Redis in its constructor, and logs a traceback per failed command. Here every
    command falls back to a process-local mirror when Redis fails: the first failure is
    logged once, Redis is tried again after ``retry_interval_s`` and its recovery is
    logged once. Missing keys read as a closed breaker with zero counts.
    """

    def __init__(self, store: str, client: redis.Redis[Any], *, retry_interval_s: float) -> None:
        self._store = store
        self._local = LocalStorage()
        self._retry_interval_s = retry_interval_s
        self._retry_at: float | None = None  # set while Redis is unreachable
        self._token = uuid.uuid4().hex
        super().__init__(CLOSED, client, namespace=breaker_namespace(store))

    def _initialize_redis_state(self, state: str) -> None:
        """No write at construction: missing keys already mean closed, zero counts."""

    def _io(self, op: Callable[[], T], fallback: Callable[[], T]) -> T:
        if self._retry_at is not None and time.monotonic() < self._retry_at:
            return fallback()
        try:
            result = op()
        except redis.RedisError as exc:
            if self._retry_at is None:
                log.warning(
                    "breaker %s: Redis unreachable (%s); using process-local state",
                    self._store,
                    exc,
                )
            self._retry_at = time.monotonic() + self._retry_interval_s
            return fallback()
        if self._retry_at is not None:
            self._retry_at = None
            log.warning("breaker %s: Redis answers again; using the shared state", self._store)
        return result

    @property
    def answering(self) -> bool:
        """Whether the last command reached Redis (not the process-local copy)."""
        return self._retry_at is None

    def _write(self, op: Callable[[], object]) -> None:
        self._io(op, _nothing)

    @property
    def state(self) -> str:
        def read() -> str:
            raw = self._redis.get(self._namespace("state"))
            value = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
            self._local.state = value if value in _STATES else CLOSED
            return str(self._local.state)

        return self._io(read, lambda: self._local.state)

    @state.setter
    def state(self, state: str) -> None:
        self._local.state = state
        self._write(lambda: self._redis.set(self._namespace("state"), state))

    def increment_counter(self) -> None:
        self._local.increment_counter()
        self._write(lambda: self._redis.incr(self._namespace("fail_counter")))

    def reset_counter(self) -> None:
        self._local.reset_counter()
        self._write(lambda: self._redis.set(self._namespace("fail_counter"), 0))

    def increment_success_counter(self) -> None:
        self._local.increment_success_counter()
        self._write(lambda: self._redis.incr(self._namespace("success_counter")))

    def reset_success_counter(self) -> None:
        self._local.reset_success_counter()
        self._write(lambda: self._redis.set(self._namespace("success_counter"), 0))

    def _count(self, name: str) -> int:
        return int(_number(self._redis.get(self._namespace(name))) or 0)

    @property
    def counter(self) -> int:
        return self._io(lambda: self._count("fail_counter"), lambda: self._local.counter)

    @property
    def success_counter(self) -> int:
        return self._io(lambda: self._count("success_counter"), lambda: self._local.success_counter)

    @property
    def opened_at(self) -> datetime | None:
        def read() -> datetime | None:
            seconds = _number(self._redis.get(self._namespace("opened_at")))
            if seconds is None:
                return None
            self._local.opened_at = datetime.fromtimestamp(seconds, UTC)
            return self._local.opened_at

        return self._io(read, lambda: self._local.opened_at)

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        self._local.opened_at = now
        self._write(lambda: self._redis.set(self._namespace("opened_at"), repr(now.timestamp())))

    def acquire_trial(self, lease_s: float) -> bool:
        def take() -> bool:
            key, lease_ms = self._namespace("trial"), max(1, round(lease_s * 1000))
            return bool(self._redis.set(key, self._token, nx=True, px=lease_ms))

        return self._io(take, lambda: self._local.acquire_trial(lease_s))

    def release_trial(self) -> None:
        self._local.release_trial()
        key = self._namespace("trial")
        self._write(lambda: self._redis.eval(_RELEASE, 1, key, self._token))  # type: ignore[no-untyped-call]

    def trial_left_s(self) -> float:
        def read() -> float:
            left_ms = int(self._redis.pttl(self._namespace("trial")))
            return max(0.0, left_ms / 1000)

        return self._io(read, self._local.trial_left_s)


_Storage = LocalStorage | _SharedStorage


class _TransientOnly(pybreaker.CircuitBreakerState):
    """Counts TransientError only; anything else is re-raised with the counters untouched."""

    def _handle_error(self, exc: BaseException, reraise: bool = True) -> None:  # type: ignore[override]
        if isinstance(exc, TransientError):
            super()._handle_error(exc, reraise=False)
        if reraise:
            raise exc


class _ClosedState(_TransientOnly, pybreaker.CircuitClosedState):
    pass


class _HalfOpenState(_TransientOnly, pybreaker.CircuitHalfOpenState):
    pass


class _Breaker(pybreaker.CircuitBreaker):
    def _create_new_state(
        self,
        new_state: str,
        prev_state: pybreaker.CircuitBreakerState | None = None,
        notify: bool = False,
    ) -> pybreaker.CBStateType:
        states: dict[str, type[pybreaker.CBStateType]] = {
            CLOSED: _ClosedState,
            OPEN: pybreaker.CircuitOpenState,
            HALF_OPEN: _HalfOpenState,
        }
        if new_state not in states:
            raise ValueError(f"unknown breaker state {new_state!r}")
        return states[new_state](self, prev_state=prev_state, notify=notify)


class _Observer(pybreaker.CircuitBreakerListener):
    def __init__(self, store: str, on_state_change: Callable[[str, str], None] | None) -> None:
        self._store = store
        self._on_state_change = on_state_change

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old = old_state.name if old_state is not None else "unknown"
        level = logging.WARNING if new_state.name == OPEN else logging.INFO
        log.log(level, "breaker %s: %s -> %s", self._store, old, new_state.name)
        if self._on_state_change is None:
            return
        try:
            self._on_state_change(self._store, new_state.name)
        except Exception:
            log.exception("breaker %s: state observer failed (ignored)", self._store)


class StoreBreaker:
    def __init__(
        self,
        store: str,
        storage: _Storage,
        *,
        fail_max: int,
        reset_timeout_s: float,
        on_state_change: Callable[[str, str], None] | None,
    ) -> None:
        if not store:
            raise ValueError("store must not be empty")
        if fail_max < 1 or reset_timeout_s <= 0:
            raise ValueError(f"need fail_max >= 1 and reset_timeout_s > 0 (store {store!r})")
        self._store = store
        self._storage = storage
        self._reset_timeout_s = reset_timeout_s
        self._breaker = _Breaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout_s,
            listeners=[_Observer(store, on_state_change)],
            state_storage=storage,
            name=store,
            throw_new_error_on_trip=True,
        )

    @property
    def store(self) -> str:
        return self._store

    @property
    def state(self) -> str:
        """The shared state, read now; a change seen for the first time is observed."""
        return str(self._breaker.state.name)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, or raise BreakerOpenError without running it.

        The call whose transient failure opens the breaker raises BreakerOpenError too,
        with the original error as its ``__cause__``.
        """
        state = self.state
        if state == OPEN and (left_s := self._open_left_s()) > 0:
            raise BreakerOpenError(self._store, left_s)
        trial = state != CLOSED
        if trial and not self._storage.acquire_trial(self._reset_timeout_s):
            left_s = max(self._storage.trial_left_s(), _MIN_RETRY_AFTER_S)
            raise BreakerOpenError(self._store, min(left_s, self._reset_timeout_s))
        try:
            return self._breaker.call(fn)
        except pybreaker.CircuitBreakerError as exc:
            cause = exc.__context__ if isinstance(exc.__context__, TransientError) else None
            left_s = max(self._open_left_s(), _MIN_RETRY_AFTER_S)
            raise BreakerOpenError(self._store, left_s) from cause
        finally:
            if trial:
                self._storage.release_trial()

    def _open_left_s(self) -> float:
        opened_at = self._storage.opened_at
        if opened_at is None:
            return 0.0
        elapsed_s = (datetime.now(UTC) - opened_at).total_seconds()
        # Clocks of other hosts may run ahead: never promise more than one timeout.
        return min(self._reset_timeout_s - elapsed_s, self._reset_timeout_s)


class RedisCircuitBreaker(StoreBreaker):
    """A :class:`~pipeline.ports.CircuitBreaker` whose state every process shares in Redis.

    Keys live under ``quarry:breaker:<store>:pybreaker:``; the client may or may not
    decode responses. ``opened_at`` is each writer's wall clock, so hosts should keep
    their clocks in sync. If Redis cannot be reached, the store call is not failed for
    it: the breaker goes on with a process-local copy of the state it last saw, logs
    that once, and tries Redis again every ``redis_retry_interval_s``. Give the client
    short socket timeouts and few retries (redis-py's default retries take about 5 s
    to give up on a refused connection), since that wait is added to the store call.

    A call that goes through the shared state costs three Redis round trips (the state,
    read twice, and the reset of the failure count). For ``refresh_s`` after a call that
    succeeded that way, the breaker is known closed with no failure counted, and calls
    run the store at once, with no round trip: a store call of a job costs what the store
    costs. What that changes: a breaker another process opened is seen here at most
    ``refresh_s`` late (the calls in between reach the store; one that fails transiently
    is counted through the shared state, which refuses it if open), and a success here
    resets another process's failures at most ``refresh_s`` late (a process failing fast
    may reach ``fail_max`` before the others' successes reset its count). Any transient
    failure ends the window, so this process's own failures count as before. The window
    is at most half of ``reset_timeout_s``. ``refresh_s`` 0: every call goes through the
    shared state.
    """

    def __init__(
        self,
        store: str,
        client: redis.Redis[Any],
        *,
        fail_max: int = 5,
        reset_timeout_s: float = 30.0,
        on_state_change: Callable[[str, str], None] | None = None,
        redis_retry_interval_s: float = 5.0,
        refresh_s: float = 0.5,
    ) -> None:
        if refresh_s < 0:
            raise ValueError(f"refresh_s must be >= 0 (store {store!r})")
        storage = _SharedStorage(store, client, retry_interval_s=redis_retry_interval_s)
        self._shared_storage = storage
        super().__init__(
            store,
            storage,
            fail_max=fail_max,
            reset_timeout_s=reset_timeout_s,
            on_state_change=on_state_change,
        )
        # Never trusted for half an open period or more: a breaker another process opened
        # is seen here well before it lets a trial through.
        self._refresh_s = min(refresh_s, reset_timeout_s / 2)
        self._closed_until = 0.0  # monotonic: known closed with no failure until then
        self.shared_calls = 0  # calls that went through the shared state (tests read it)

    def call(self, fn: Callable[[], T]) -> T:
        if time.monotonic() < self._closed_until:
            try:
                return fn()
            except TransientError as exc:
                # Counted as the shared state counts it: the count grows, the breaker
                # may open (BreakerOpenError), or it was opened elsewhere meanwhile.
                self._closed_until = 0.0
                self._shared_call(_raising(exc))
                raise  # not reached: the shared call raises exc or BreakerOpenError
        return self._shared_call(fn)

    def _shared_call(self, fn: Callable[[], T]) -> T:
        self.shared_calls += 1
        started = time.monotonic()
        try:
            result = super().call(fn)
        except BaseException:
            self._closed_until = 0.0
            raise
        # It ran, so the breaker was closed (or a trial closed it) and the success reset
        # the shared failure count; unless Redis did not answer (then the state was this
        # process's copy, and the next call looks again).
        if self._refresh_s > 0 and self._shared_storage.answering:
            self._closed_until = started + self._refresh_s
        return result

    @property
    def state(self) -> str:
        state = super().state
        if state != CLOSED:
            self._closed_until = 0.0
        return state


def _raising(exc: BaseException) -> Callable[[], None]:
    def again() -> None:
        raise exc

    return again

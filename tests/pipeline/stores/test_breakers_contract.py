"""One contract for every CircuitBreaker: the in-memory fake and the Redis-shared breaker.

The Redis cases use the session stack's real Redis; each test takes its own store
name, so their keys never meet. Reset timeouts are short (0.3-1 s) to keep it fast.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest
import redis

from config.endpoints import Endpoints
from pipeline.adapters.fakes.circuit_breaker import InMemoryCircuitBreaker
from pipeline.adapters.redis.breakers import RedisCircuitBreaker, breaker_namespace
from pipeline.errors import BreakerOpenError, InvalidInputError, StoreUnavailableError
from pipeline.ports import CircuitBreaker
from tests.stackutil import free_ports

RESET_S = 0.3


class MakeBreaker(Protocol):
    def __call__(
        self,
        *,
        fail_max: int = 3,
        reset_timeout_s: float = RESET_S,
        on_state_change: Callable[[str, str], None] | None = None,
    ) -> CircuitBreaker: ...


@pytest.fixture
def store() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_client(endpoints: Endpoints, store: str) -> Iterator[redis.Redis[Any]]:
    client: redis.Redis[Any] = redis.Redis.from_url(endpoints.redis_url)
    yield client
    keys = list(client.scan_iter(f"{breaker_namespace(store)}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["memory", "redis"])
def make_breaker(request: pytest.FixtureRequest, store: str) -> MakeBreaker:
    client = request.getfixturevalue("redis_client") if request.param == "redis" else None

    def make(
        *,
        fail_max: int = 3,
        reset_timeout_s: float = RESET_S,
        on_state_change: Callable[[str, str], None] | None = None,
    ) -> CircuitBreaker:
        if client is None:
            return InMemoryCircuitBreaker(
                store,
                fail_max=fail_max,
                reset_timeout_s=reset_timeout_s,
                on_state_change=on_state_change,
            )
        return RedisCircuitBreaker(
            store,
            client,
            fail_max=fail_max,
            reset_timeout_s=reset_timeout_s,
            on_state_change=on_state_change,
        )

    return make


def _unavailable() -> None:
    raise StoreUnavailableError("test", "connection refused")


def _trip(breaker: CircuitBreaker, fail_max: int = 3) -> None:
    for _ in range(fail_max):
        with pytest.raises(StoreUnavailableError):
            breaker.call(_unavailable)
    assert breaker.state == "open"


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return "ok"


def test_breaker_opens_after_fail_max_transient_failures(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(fail_max=3)
    for _ in range(2):
        with pytest.raises(StoreUnavailableError) as caught:
            breaker.call(_unavailable)
        assert type(caught.value) is StoreUnavailableError
        assert breaker.state == "closed"
    with pytest.raises(BreakerOpenError) as tripped:
        breaker.call(_unavailable)
    assert isinstance(tripped.value.__cause__, StoreUnavailableError)
    assert breaker.state == "open"
    work = Counter()
    with pytest.raises(BreakerOpenError):
        breaker.call(work)
    assert work.calls == 0


def test_success_resets_the_count_of_consecutive_failures(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(fail_max=2)
    for _ in range(3):
        with pytest.raises(StoreUnavailableError):
            breaker.call(_unavailable)
        assert breaker.call(Counter()) == "ok"
    assert breaker.state == "closed"


def test_permanent_error_never_opens_and_is_reraised_unchanged(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(fail_max=2)
    error = InvalidInputError("bad payload")

    def bad_input() -> None:
        raise error

    for _ in range(5):
        with pytest.raises(InvalidInputError) as caught:
            breaker.call(bad_input)
        assert caught.value is error
    empty: dict[str, int] = {}
    with pytest.raises(KeyError):
        breaker.call(lambda: empty["missing"])
    assert breaker.state == "closed"


def test_permanent_error_leaves_the_failure_count_alone(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(fail_max=2)
    with pytest.raises(StoreUnavailableError):
        breaker.call(_unavailable)

    def bad_input() -> None:
        raise InvalidInputError("bad payload")

    with pytest.raises(InvalidInputError):
        breaker.call(bad_input)
    with pytest.raises(BreakerOpenError):
        breaker.call(_unavailable)
    assert breaker.state == "open"


def test_open_breaker_refuses_with_the_remaining_time(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(reset_timeout_s=1.0)
    _trip(breaker)
    work = Counter()
    with pytest.raises(BreakerOpenError) as first:
        breaker.call(work)
    time.sleep(0.2)
    with pytest.raises(BreakerOpenError) as second:
        breaker.call(work)
    assert 0 < second.value.retry_after_s < first.value.retry_after_s <= 1.0
    assert first.value.retry_after_s - second.value.retry_after_s >= 0.15
    assert second.value.store == breaker.store
    assert work.calls == 0


def test_successful_trial_after_the_reset_timeout_closes(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(fail_max=2)
    _trip(breaker, fail_max=2)
    time.sleep(RESET_S + 0.05)
    assert breaker.call(Counter()) == "ok"
    assert breaker.state == "closed"
    with pytest.raises(StoreUnavailableError) as caught:
        breaker.call(_unavailable)
    assert type(caught.value) is StoreUnavailableError
    assert breaker.state == "closed"


def test_failing_trial_reopens_for_a_full_timeout(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(reset_timeout_s=0.5)
    _trip(breaker)
    time.sleep(0.55)
    with pytest.raises(BreakerOpenError) as reopened:
        breaker.call(_unavailable)
    assert isinstance(reopened.value.__cause__, StoreUnavailableError)
    assert 0.3 < reopened.value.retry_after_s <= 0.5
    assert breaker.state == "open"
    work = Counter()
    with pytest.raises(BreakerOpenError):
        breaker.call(work)
    assert work.calls == 0


def test_half_open_breaker_lets_one_trial_call_through(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    _trip(breaker)
    time.sleep(RESET_S + 0.05)
    refused: list[BreakerOpenError] = []
    work = Counter()

    def trial() -> str:
        assert breaker.state == "half-open"
        try:
            breaker.call(work)
        except BreakerOpenError as exc:
            refused.append(exc)
        return "trial"

    assert breaker.call(trial) == "trial"
    assert len(refused) == 1
    assert 0 < refused[0].retry_after_s <= RESET_S
    assert work.calls == 0
    assert breaker.state == "closed"


def test_permanent_error_in_a_trial_keeps_it_half_open(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    _trip(breaker)
    time.sleep(RESET_S + 0.05)

    def bad_input() -> None:
        raise InvalidInputError("bad payload")

    with pytest.raises(InvalidInputError):
        breaker.call(bad_input)
    assert breaker.state == "half-open"
    assert breaker.call(Counter()) == "ok"
    assert breaker.state == "closed"


def test_observers_fire_once_per_state_change(make_breaker: MakeBreaker) -> None:
    seen: list[tuple[str, str]] = []
    breaker = make_breaker(on_state_change=lambda store, state: seen.append((store, state)))
    _trip(breaker)
    for _ in range(3):
        with pytest.raises(BreakerOpenError):
            breaker.call(Counter())
        assert breaker.state == "open"
    time.sleep(RESET_S + 0.05)
    breaker.call(Counter())
    breaker.call(Counter())
    store = breaker.store
    assert seen == [(store, "open"), (store, "half-open"), (store, "closed")]


def test_raising_observer_is_logged_and_does_not_fail_the_call(
    make_breaker: MakeBreaker, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(store: str, state: str) -> None:
        raise RuntimeError(f"gauge exploded on {state}")

    breaker = make_breaker(on_state_change=broken)
    with caplog.at_level(logging.INFO, logger="quarry.breaker"):
        _trip(breaker)
        time.sleep(RESET_S + 0.05)
        assert breaker.call(Counter()) == "ok"
    assert breaker.state == "closed"
    failures = [r for r in caplog.records if "observer failed" in r.getMessage()]
    assert len(failures) == 3
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in failures)


def test_each_state_change_logs_one_line(
    make_breaker: MakeBreaker, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = make_breaker()
    with caplog.at_level(logging.INFO, logger="quarry.breaker"):
        _trip(breaker)
        with pytest.raises(BreakerOpenError):
            breaker.call(Counter())
        time.sleep(RESET_S + 0.05)
        breaker.call(Counter())
        breaker.call(Counter())
    lines = [r.getMessage() for r in caplog.records if r.name == "quarry.breaker"]
    store = breaker.store
    assert lines == [
        f"breaker {store}: closed -> open",
        f"breaker {store}: open -> half-open",
        f"breaker {store}: half-open -> closed",
    ]
    assert caplog.records[0].levelno == logging.WARNING


def test_fail_max_and_reset_timeout_are_checked(make_breaker: MakeBreaker) -> None:
    with pytest.raises(ValueError, match="fail_max"):
        make_breaker(fail_max=0)
    with pytest.raises(ValueError, match="reset_timeout_s"):
        make_breaker(reset_timeout_s=0)


# --- Redis only: the state is shared between processes -------------------------------


def test_state_is_shared_between_worker_processes(
    redis_client: redis.Redis[Any], store: str
) -> None:
    seen_a: list[str] = []
    seen_b: list[str] = []
    worker_a = RedisCircuitBreaker(
        store,
        redis_client,
        fail_max=2,
        reset_timeout_s=1.0,
        on_state_change=lambda _, state: seen_a.append(state),
    )
    worker_b = RedisCircuitBreaker(
        store,
        redis_client,
        fail_max=2,
        reset_timeout_s=1.0,
        on_state_change=lambda _, state: seen_b.append(state),
    )
    with pytest.raises(StoreUnavailableError):
        worker_a.call(_unavailable)
    with pytest.raises(BreakerOpenError):
        worker_b.call(_unavailable)
    assert worker_a.state == "open"
    assert worker_a.state == "open"
    work = Counter()
    with pytest.raises(BreakerOpenError) as refused:
        worker_a.call(work)
    assert 0 < refused.value.retry_after_s <= 1.0
    assert work.calls == 0
    assert seen_a == ["open"]
    assert seen_b == ["open"]


def test_one_trial_across_worker_processes(redis_client: redis.Redis[Any], store: str) -> None:
    worker_a = RedisCircuitBreaker(store, redis_client, fail_max=1, reset_timeout_s=RESET_S)
    worker_b = RedisCircuitBreaker(store, redis_client, fail_max=1, reset_timeout_s=RESET_S)
    _trip(worker_a, fail_max=1)
    time.sleep(RESET_S + 0.05)
    work = Counter()

    def trial() -> str:
        with pytest.raises(BreakerOpenError):
            worker_b.call(work)
        return "trial"

    assert worker_a.call(trial) == "trial"
    assert work.calls == 0
    assert worker_b.state == "closed"
    assert worker_b.call(work) == "ok"


def test_trial_after_another_process_opened_it(redis_client: redis.Redis[Any], store: str) -> None:
    worker_a = RedisCircuitBreaker(store, redis_client, fail_max=2, reset_timeout_s=RESET_S)
    worker_b = RedisCircuitBreaker(store, redis_client, fail_max=2, reset_timeout_s=RESET_S)
    _trip(worker_a, fail_max=2)
    time.sleep(RESET_S + 0.05)
    assert worker_b.call(Counter()) == "ok"
    assert worker_a.state == "closed"


def test_breaker_works_with_a_decoding_client(endpoints: Endpoints, store: str) -> None:
    client: redis.Redis[Any] = redis.Redis.from_url(endpoints.redis_url, decode_responses=True)
    try:
        breaker = RedisCircuitBreaker(store, client, fail_max=1, reset_timeout_s=RESET_S)
        _trip(breaker, fail_max=1)
        with pytest.raises(BreakerOpenError) as refused:
            breaker.call(Counter())
        assert 0 < refused.value.retry_after_s <= RESET_S
        time.sleep(RESET_S + 0.05)
        assert breaker.call(Counter()) == "ok"
        assert breaker.state == "closed"
    finally:
        client.delete(*client.scan_iter(f"{breaker_namespace(store)}:*"))
        client.close()


def test_unreachable_redis_degrades_to_process_local_state(
    store: str, caplog: pytest.LogCaptureFixture
) -> None:
    (port,) = free_ports(1)
    dead = redis.Redis(host="127.0.0.1", port=port, retry=None, socket_connect_timeout=0.5)
    with caplog.at_level(logging.INFO, logger="quarry.breaker"):
        breaker = RedisCircuitBreaker(store, dead, fail_max=2, reset_timeout_s=RESET_S)
        assert breaker.call(Counter()) == "ok"
        _trip(breaker, fail_max=2)
        with pytest.raises(BreakerOpenError):
            breaker.call(Counter())
        time.sleep(RESET_S + 0.05)
        assert breaker.call(Counter()) == "ok"
        assert breaker.state == "closed"
    unreachable = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(unreachable) == 1


def test_breaker_returns_to_the_shared_state_when_redis_answers_again(
    redis_client: redis.Redis[Any], store: str, caplog: pytest.LogCaptureFixture
) -> None:
    shared = RedisCircuitBreaker(store, redis_client, fail_max=1, reset_timeout_s=5.0)
    flaky_client: redis.Redis[Any] = redis.Redis(connection_pool=redis_client.connection_pool)
    flaky = RedisCircuitBreaker(
        store, flaky_client, fail_max=1, reset_timeout_s=5.0, redis_retry_interval_s=0.2
    )
    assert flaky.state == "closed"

    def refuse(*args: object, **kwargs: object) -> object:
        raise redis.ConnectionError("connection refused")

    with caplog.at_level(logging.INFO, logger="quarry.breaker"):
        setattr(flaky_client, "execute_command", refuse)  # noqa: B010
        _trip(shared, fail_max=1)
        assert flaky.call(Counter()) == "ok"
        assert flaky.state == "closed"
        del flaky_client.execute_command
        time.sleep(0.25)
        assert flaky.state == "open"
        with pytest.raises(BreakerOpenError):
            flaky.call(Counter())
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Redis unreachable" in m for m in messages) == 1
    assert sum("Redis answers again" in m for m in messages) == 1


# --- Redis only: calls inside the window after a success skip the shared state ---------


class _CountingRedis(redis.Redis):  # type: ignore[type-arg]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands += 1
        return super().execute_command(*args, **options)


def test_after_a_success_calls_make_no_redis_round_trip_and_failures_still_count(
    endpoints: Endpoints, store: str
) -> None:
    client = _CountingRedis.from_url(endpoints.redis_url)
    try:
        breaker = RedisCircuitBreaker(
            store, client, fail_max=3, reset_timeout_s=RESET_S, refresh_s=60.0
        )
        work = Counter()
        assert breaker.call(work) == "ok"
        first = client.commands
        assert first >= 1
        for _ in range(50):
            assert breaker.call(work) == "ok"
        assert work.calls == 51
        assert client.commands == first  # 50 calls, not one command
        assert breaker.shared_calls == 1
        # A transient failure inside the window is counted through the shared state,
        # and consecutive failures open the breaker as ever.
        for _ in range(2):
            with pytest.raises(StoreUnavailableError):
                breaker.call(_unavailable)
        assert int(client.get(f"{breaker_namespace(store)}:pybreaker:fail_counter") or 0) == 2
        with pytest.raises(BreakerOpenError):
            breaker.call(_unavailable)
        assert breaker.state == "open"
        with pytest.raises(BreakerOpenError):
            breaker.call(work)
        assert work.calls == 51
    finally:
        client.delete(*client.scan_iter(f"{breaker_namespace(store)}:*"))
        client.close()


def test_a_breaker_opened_by_another_process_is_seen_within_refresh_s(
    redis_client: redis.Redis[Any], store: str
) -> None:
    refresh_s = 0.4
    fast = RedisCircuitBreaker(
        store, redis_client, fail_max=1, reset_timeout_s=30.0, refresh_s=refresh_s
    )
    other = RedisCircuitBreaker(store, redis_client, fail_max=1, reset_timeout_s=30.0)
    assert fast.call(Counter()) == "ok"
    _trip(other, fail_max=1)
    # Inside the window a failing call is counted through the shared state: refused as
    # open, not reported as one more store failure.
    with pytest.raises(BreakerOpenError):
        fast.call(_unavailable)
    time.sleep(refresh_s + 0.05)
    work = Counter()
    with pytest.raises(BreakerOpenError):
        fast.call(work)
    assert work.calls == 0


def test_refresh_s_zero_reads_the_shared_state_on_every_call(
    redis_client: redis.Redis[Any], store: str
) -> None:
    breaker = RedisCircuitBreaker(store, redis_client, fail_max=1, refresh_s=0)
    for _ in range(3):
        assert breaker.call(Counter()) == "ok"
    assert breaker.shared_calls == 3
    with pytest.raises(ValueError, match="refresh_s"):
        RedisCircuitBreaker(store, redis_client, refresh_s=-1)

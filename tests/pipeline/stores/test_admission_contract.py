"""One contract for every Admission (the in-memory fake and Redis), and the shared policy.

Each Redis case uses queue names of its own on the session stack's Redis and deletes
them afterwards; "taking" a message is an RPOP, as kombu's consumer does.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from config.endpoints import Endpoints
from pipeline.adapters.fakes.admission import InMemoryAdmission
from pipeline.adapters.redis.admission import RedisAdmission
from pipeline.errors import ConfigError, InvalidInputError, QueueFullError, StoreUnavailableError
from pipeline.stages.admission import RETRY_AFTER_MAX_S, default_retry_after_s
from tests.stackutil import free_ports

AnyAdmission = InMemoryAdmission | RedisAdmission


@dataclass
class Harness:
    """Builds admissions of one kind and takes messages as a worker would."""

    kind: str
    client: redis.Redis[Any] | None
    used: list[str] = field(default_factory=list)

    def queue(self, name: str = "q") -> str:
        queue = f"quarry.test.{name}.{uuid.uuid4().hex[:12]}"
        self.used.append(queue)
        return queue

    def admission(
        self,
        bounds: Mapping[str, int] | None = None,
        *,
        default_bound: int = 10,
        retry_after_s: Callable[[str, int, int], float] | None = None,
    ) -> AnyAdmission:
        if self.client is None:
            return InMemoryAdmission(
                bounds, default_bound=default_bound, retry_after_s=retry_after_s
            )
        return RedisAdmission(
            self.client, bounds or {}, default_bound=default_bound, retry_after_s=retry_after_s
        )

    def take(self, admission: AnyAdmission, queue: str) -> bytes | None:
        if isinstance(admission, InMemoryAdmission):
            return admission.pop(queue)
        assert self.client is not None
        item: bytes | None = self.client.rpop(queue)
        return item


@pytest.fixture(params=["memory", "redis"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "memory":
        yield Harness("memory", None)
        return
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    client: redis.Redis[Any] = redis.Redis.from_url(endpoints.redis_url)
    running = Harness("redis", client)
    try:
        yield running
    finally:
        if running.used:
            client.delete(*running.used)
        client.close()


def test_pushes_up_to_the_bound_return_the_depth_then_refuse(harness: Harness) -> None:
    queue = harness.queue()
    admission = harness.admission({queue: 3})
    assert [admission.push(queue, f"m{i}".encode()) for i in range(3)] == [1, 2, 3]
    with pytest.raises(QueueFullError) as refused:
        admission.push(queue, b"one too many")
    assert (refused.value.queue, refused.value.depth, refused.value.bound) == (queue, 3, 3)
    assert refused.value.retry_after_s > 0
    assert queue in str(refused.value)
    assert admission.depth(queue) == 3


def test_messages_come_out_oldest_first_and_unchanged(harness: Harness) -> None:
    queue = harness.queue()
    admission = harness.admission()
    messages = [b"first", b"\x00\xff binary \xfe", "naïve ✓".encode()]
    for message in messages:
        admission.push(queue, message)
    assert [harness.take(admission, queue) for _ in range(4)] == [*messages, None]


def test_after_a_message_is_taken_there_is_room_again(harness: Harness) -> None:
    queue = harness.queue()
    admission = harness.admission({queue: 2})
    admission.push(queue, b"a")
    admission.push(queue, b"b")
    with pytest.raises(QueueFullError):
        admission.push(queue, b"c")
    assert harness.take(admission, queue) == b"a"
    assert admission.push(queue, b"c") == 2
    assert [harness.take(admission, queue) for _ in range(2)] == [b"b", b"c"]


def test_push_many_is_all_or_nothing(harness: Harness) -> None:
    queue = harness.queue()
    admission = harness.admission({queue: 5})
    admission.push(queue, b"s1")
    admission.push(queue, b"s2")
    with pytest.raises(QueueFullError) as refused:
        admission.push_many(queue, [b"b1", b"b2", b"b3", b"b4"])
    assert (refused.value.depth, refused.value.bound) == (2, 5)
    assert admission.depth(queue) == 2
    assert admission.push_many(queue, [b"b1", b"b2", b"b3"]) == 5
    taken = [harness.take(admission, queue) for _ in range(6)]
    assert taken == [b"s1", b"s2", b"b1", b"b2", b"b3", None]


def test_push_many_of_an_empty_batch_changes_nothing(harness: Harness) -> None:
    queue = harness.queue()
    admission = harness.admission({queue: 1})
    admission.push(queue, b"a")
    assert admission.push_many(queue, []) == 1
    assert admission.depth(queue) == 1


def test_a_batch_larger_than_the_bound_is_refused_for_good(harness: Harness) -> None:
    queue = harness.queue()
    admission = harness.admission({queue: 3})
    with pytest.raises(InvalidInputError, match=rf"batch of 4 messages.*{queue}.*bound 3"):
        admission.push_many(queue, [b"x"] * 4)
    assert admission.depth(queue) == 0


def test_a_large_batch_is_pushed_whole_and_in_order(harness: Harness) -> None:
    queue = harness.queue()
    admission = harness.admission({queue: 5000})
    messages = [str(i).encode() for i in range(2500)]  # more than one LPUSH slice
    assert admission.push_many(queue, messages) == 2500
    assert [harness.take(admission, queue) for _ in range(2500)] == messages


def test_bounds_per_queue_and_the_default(harness: Harness) -> None:
    small, other = harness.queue("small"), harness.queue("other")
    admission = harness.admission({small: 1}, default_bound=2)
    assert (admission.bound(small), admission.bound(other)) == (1, 2)
    admission.push(small, b"a")
    with pytest.raises(QueueFullError):
        admission.push(small, b"b")
    assert admission.push(other, b"a") == 1
    assert admission.push(other, b"b") == 2
    with pytest.raises(QueueFullError) as refused:
        admission.push(other, b"c")
    assert refused.value.bound == 2


def test_fill_ratio_is_depth_over_bound(harness: Harness) -> None:
    queue = harness.queue()
    admission = harness.admission({queue: 4})
    assert admission.fill_ratio(queue) == 0.0
    admission.push_many(queue, [b"a", b"b", b"c"])
    assert admission.fill_ratio(queue) == 0.75


def test_retry_after_comes_from_the_given_policy(harness: Harness) -> None:
    seen: list[tuple[str, int, int]] = []

    def policy(queue: str, depth: int, bound: int) -> float:
        seen.append((queue, depth, bound))
        return 7.5

    queue = harness.queue()
    admission = harness.admission({queue: 1}, retry_after_s=policy)
    admission.push(queue, b"a")
    with pytest.raises(QueueFullError) as refused:
        admission.push(queue, b"b")
    assert refused.value.retry_after_s == 7.5
    assert seen == [(queue, 1, 1)]


def test_the_default_retry_after_at_the_bound_is_one_second(harness: Harness) -> None:
    queue = harness.queue()
    admission = harness.admission({queue: 2})
    admission.push_many(queue, [b"a", b"b"])
    with pytest.raises(QueueFullError) as refused:
        admission.push(queue, b"c")
    assert refused.value.retry_after_s == 1.0


@pytest.mark.parametrize(
    ("bounds", "default_bound", "message"),
    [
        ({"quarry.chunk": 0}, 10, "queue_bounds['quarry.chunk'] must be an integer >= 1, got 0"),
        ({}, -1, "queue_default_bound must be an integer >= 1, got -1"),
        ({"q": "5"}, 10, "queue_bounds['q'] must be an integer >= 1, got '5'"),
        ({"q": True}, 10, "queue_bounds['q'] must be an integer >= 1, got True"),
    ],
    ids=["zero", "negative-default", "text", "bool"],
)
def test_a_bound_that_is_not_a_positive_int_is_a_config_error(
    harness: Harness, bounds: Any, default_bound: int, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        harness.admission(bounds, default_bound=default_bound)


@pytest.mark.timeout(120)
def test_concurrent_producers_never_pass_the_bound(harness: Harness) -> None:
    queue = harness.queue()
    admission = harness.admission({queue: 500})
    admitted, refused = [0] * 8, [0] * 8
    start = threading.Barrier(8)

    def produce(worker: int) -> None:
        start.wait()
        for i in range(200):
            try:
                admission.push(queue, f"{worker}:{i}".encode())
                admitted[worker] += 1
            except QueueFullError as exc:
                assert exc.depth == 500
                refused[worker] += 1

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (sum(admitted), sum(refused)) == (500, 1100)
    assert admission.depth(queue) == 500


# --- Redis only -----------------------------------------------------------------------


def test_redis_admission_pushes_to_the_list_kombu_consumes(endpoints: Endpoints) -> None:
    client: redis.Redis[Any] = redis.Redis.from_url(endpoints.redis_url)
    queue = f"quarry.test.kombu.{uuid.uuid4().hex[:12]}"
    try:
        admission = RedisAdmission(client, {}, default_bound=10)
        admission.push(queue, b'{"m": 1}')
        assert client.type(queue) == b"list"
        assert client.lrange(queue, 0, -1) == [b'{"m": 1}']
        # A message pushed around admission (a retry Celery publishes itself) counts.
        client.lpush(queue, b'{"m": 2}')
        assert admission.depth(queue) == 2
    finally:
        client.delete(queue)
        client.close()


def test_unreachable_redis_is_a_transient_error() -> None:
    (port,) = free_ports(1)
    admission = RedisAdmission(
        redis.Redis(host="127.0.0.1", port=port, retry=None), {}, default_bound=10
    )
    with pytest.raises(StoreUnavailableError, match="redis"):
        admission.push("quarry.chunk", b"m")
    with pytest.raises(StoreUnavailableError, match="redis"):
        admission.push_many("quarry.chunk", [b"m"])
    with pytest.raises(StoreUnavailableError, match="redis"):
        admission.depth("quarry.chunk")


# --- the policy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "bound", "expected_s"),
    [(10, 10, 1.0), (0, 10, 1.0), (25, 10, 2.5), (10_000, 10, RETRY_AFTER_MAX_S)],
)
def test_default_retry_after_scales_with_fill(depth: int, bound: int, expected_s: float) -> None:
    assert default_retry_after_s("quarry.chunk", depth, bound) == expected_s

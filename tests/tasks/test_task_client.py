"""TaskClient: routing, batches, gauges, waiting for room; a real worker runs what it sends.

The integration cases run on the session stack's Redis, in database 15 (see
conftest.py; the stack's own workers consume database 0), with a worker subprocess of
tests/tasks/ping_app.py consuming ``quarry.webhook`` there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from prometheus_client import REGISTRY

from config.queues import EMBED, EMBED_CHUNKS_TASK, WEBHOOK, WRITE
from config.settings import QuarrySettings, child_environment
from pipeline.adapters.fakes.admission import InMemoryAdmission
from pipeline.adapters.redis.admission import RedisAdmission
from pipeline.errors import QueueFullError
from tasks.client import TaskClient

REPO = Path(__file__).resolve().parents[2]
PING_TASK = "quarry.webhook.testping"  # tests/tasks/ping_app.py
RECORDS_KEY = "quarry:test:ping:{token}"
WRITE_PROBE_TASK = "quarry.write.testprobe"  # routed to quarry.write, which no test worker reads
PAYLOAD = {
    "repo": {"tenant": "acme", "name": "naïve-tools"},
    "paths": ["src/a.py", "docs/it's ✓.md"],
    "sha256": "ab" * 32,
    "vector": [0.5, -1.25e-7, 3.0],
    "flags": {"force": True, "dry_run": False, "note": None},
}


def _wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


# --- without a broker ----------------------------------------------------------------


def test_send_routes_by_task_name(offline_app: Celery) -> None:
    admission = InMemoryAdmission(default_bound=10)
    client = TaskClient(offline_app, admission)
    task_id = client.send(EMBED_CHUNKS_TASK, {"batch": "x"})
    message = json.loads(admission.pop(EMBED) or b"")
    assert message["headers"]["task"] == EMBED_CHUNKS_TASK
    assert message["headers"]["id"] == task_id
    assert message["properties"]["delivery_info"] == {"exchange": "", "routing_key": EMBED}
    assert client.queue_for("quarry.webhook.deliver") == WEBHOOK


def test_send_many_is_all_or_nothing_and_in_order(offline_app: Celery) -> None:
    admission = InMemoryAdmission({WEBHOOK: 3}, default_bound=10)
    client = TaskClient(offline_app, admission)
    admission.push(WEBHOOK, b"already there")
    with pytest.raises(QueueFullError):
        client.send_many(PING_TASK, [{"n": 1}, {"n": 2}, {"n": 3}])
    assert admission.depth(WEBHOOK) == 1
    ids = client.send_many(PING_TASK, [{"n": 1}, {"n": 2}])
    assert admission.pop(WEBHOOK) == b"already there"
    sent = [json.loads(admission.pop(WEBHOOK) or b"") for _ in ids]
    assert [m["headers"]["id"] for m in sent] == ids
    assert [m["headers"]["kwargsrepr"] for m in sent] == ["{'n': 1}", "{'n': 2}"]
    assert client.send_many(PING_TASK, []) == []


def _gauge(name: str, queue: str) -> float | None:
    value: float | None = REGISTRY.get_sample_value(name, {"queue": queue})
    return value


def test_gauges_follow_each_push(offline_app: Celery) -> None:
    admission = InMemoryAdmission({WEBHOOK: 4}, default_bound=10)
    client = TaskClient(offline_app, admission)
    client.send(PING_TASK, {"n": 1})
    assert _gauge("quarry_queue_depth", WEBHOOK) == 1
    assert _gauge("quarry_queue_fill_ratio", WEBHOOK) == 0.25
    client.send_many(PING_TASK, [{"n": 2}, {"n": 3}, {"n": 4}])
    with pytest.raises(QueueFullError):
        client.send(PING_TASK, {"n": 5})
    assert _gauge("quarry_queue_depth", WEBHOOK) == 4
    assert _gauge("quarry_queue_fill_ratio", WEBHOOK) == 1.0


class FakeTime:
    """A clock that moves only when slept on; a hook runs on each sleep."""

    def __init__(self, on_sleep: Callable[[], None] = lambda: None) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep()


def test_send_blocking_waits_for_room_with_jitter(offline_app: Celery) -> None:
    admission = InMemoryAdmission({WEBHOOK: 1}, default_bound=10, retry_after_s=lambda *_: 2.0)
    admission.push(WEBHOOK, b"old")
    fake = FakeTime()

    def worker_takes_one_during_the_second_wait() -> None:
        if len(fake.sleeps) == 2:
            assert admission.pop(WEBHOOK) == b"old"

    fake.on_sleep = worker_takes_one_during_the_second_wait
    client = TaskClient(offline_app, admission, sleep=fake.sleep, clock=fake.clock, rng=lambda: 0.5)
    task_id = client.send_blocking(PING_TASK, {"n": 1}, timeout_s=60, task_id="blocked-1")
    assert task_id == "blocked-1"
    assert fake.sleeps == [2.5, 2.5]  # retry_after_s x (1 + 0.5 x rng)
    assert json.loads(admission.pop(WEBHOOK) or b"")["headers"]["id"] == "blocked-1"


def test_send_blocking_gives_up_after_the_timeout(offline_app: Celery) -> None:
    admission = InMemoryAdmission({WEBHOOK: 1}, default_bound=10, retry_after_s=lambda *_: 2.0)
    admission.push(WEBHOOK, b"stuck")
    fake = FakeTime()
    client = TaskClient(offline_app, admission, sleep=fake.sleep, clock=fake.clock, rng=lambda: 1.0)
    with pytest.raises(QueueFullError) as refused:
        client.send_blocking(PING_TASK, {"n": 1}, timeout_s=7.0)
    assert (refused.value.depth, refused.value.bound) == (1, 1)
    assert fake.sleeps == [3.0, 3.0, 1.0]  # the last wait is cut to the deadline
    assert admission.depth(WEBHOOK) == 1


def test_sender_pushes_a_batch_at_once_or_waits_for_room_one_by_one(
    offline_app: Celery,
) -> None:
    admission = InMemoryAdmission({WEBHOOK: 3}, default_bound=10, retry_after_s=lambda *_: 2.0)
    calls: list[int] = []
    push_many = admission.push_many

    def counted(queue: str, messages: list[bytes]) -> int:
        calls.append(len(messages))
        return push_many(queue, messages)

    admission.push_many = counted  # type: ignore[method-assign]
    fake = FakeTime()
    fake.on_sleep = lambda: admission.pop(WEBHOOK)  # a worker takes one per wait
    client = TaskClient(offline_app, admission, sleep=fake.sleep, clock=fake.clock, rng=lambda: 0.0)
    send = client.sender(timeout_s=60)
    send(PING_TASK, [{"n": 1}, {"n": 2}])
    assert calls == [2] and fake.sleeps == []  # it fit: one admission call
    send(PING_TASK, [{"n": 3}, {"n": 4}])  # 2 + 2 > 3: refused whole, then one by one
    assert calls == [2, 2]
    assert fake.sleeps == [2.0]
    sent = []
    while (raw := admission.pop(WEBHOOK)) is not None:
        sent.append(json.loads(raw)["headers"]["id"])
    assert len(sent) == 3 and admission.depth(WEBHOOK) == 0  # one was taken by the "worker"


# --- on the stack: a real worker -----------------------------------------------------


@pytest.fixture(scope="module")
def worker(
    settings15: QuarrySettings, redis15: redis.Redis[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A real worker of tests/tasks/ping_app.py on ``quarry.webhook``; yields its log."""
    log = tmp_path_factory.mktemp("ping-worker") / "worker.log"
    env = child_environment(settings15, PYTHONPATH=str(REPO))
    argv = [sys.executable, "-m", "celery", "-A", "tests.tasks.ping_app", "worker"]
    argv += ["--queues", WEBHOOK, "--pool", "prefork", "--concurrency", "1"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    argv += ["--hostname", f"ping-{uuid.uuid4().hex[:8]}@%h", "--loglevel", "INFO"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: only its pool children
            process.wait(timeout=10)


@pytest.fixture
def client15(app15: Celery, redis15: redis.Redis[Any]) -> TaskClient:
    return TaskClient(app15, RedisAdmission(redis15, {WRITE: 2}, default_bound=100))


def _records(redis15: redis.Redis[Any], token: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in redis15.lrange(RECORDS_KEY.format(token=token), 0, -1)]


def _settled(redis15: redis.Redis[Any]) -> bool:
    # Nothing waiting, nothing delivered but unacknowledged (acks_late acks after the run).
    return redis15.llen(WEBHOOK) == 0 and redis15.hlen("unacked") == 0


@pytest.mark.timeout(180)
def test_a_real_worker_runs_the_task_exactly_once(
    worker: Path, client15: TaskClient, redis15: redis.Redis[Any]
) -> None:
    token = uuid.uuid4().hex
    task_id = client15.send(PING_TASK, {"token": token, **PAYLOAD})
    try:
        _wait_for(lambda: bool(_records(redis15, token)), 120, "the worker to run the task")
    except AssertionError:
        raise AssertionError(worker.read_text(errors="replace")[-4000:]) from None
    _wait_for(lambda: _settled(redis15), 30, "the message to be acknowledged")
    time.sleep(1.0)
    (record,) = _records(redis15, token)
    assert record["task_id"] == task_id == record["root_id"]
    assert record["kwargs"] == {"token": token, **PAYLOAD}
    assert record["delivery_info"]["routing_key"] == WEBHOOK
    assert record["eta"] is None


@pytest.mark.timeout(120)
def test_a_countdown_delays_the_run(
    worker: Path, client15: TaskClient, redis15: redis.Redis[Any]
) -> None:
    token = uuid.uuid4().hex
    sent_at = time.time()
    client15.send(PING_TASK, {"token": token}, countdown=3.0)
    _wait_for(lambda: bool(_records(redis15, token)), 60, "the delayed task to run")
    (record,) = _records(redis15, token)
    assert record["ran_at"] >= sent_at + 2.9
    assert record["eta"] is not None
    _wait_for(lambda: _settled(redis15), 30, "the message to be acknowledged")


@pytest.mark.timeout(120)
def test_a_batch_sent_together_runs_each_task_once(
    worker: Path, client15: TaskClient, redis15: redis.Redis[Any]
) -> None:
    tokens = [uuid.uuid4().hex for _ in range(5)]
    ids = client15.send_many(PING_TASK, [{"token": t, "n": i} for i, t in enumerate(tokens)])
    for token in tokens:
        _wait_for(lambda t=token: bool(_records(redis15, t)), 60, f"task {token}")
    _wait_for(lambda: _settled(redis15), 30, "the messages to be acknowledged")
    time.sleep(1.0)
    runs = [_records(redis15, t) for t in tokens]
    assert [len(r) for r in runs] == [1] * 5
    assert [r[0]["task_id"] for r in runs] == ids
    assert [r[0]["kwargs"]["n"] for r in runs] == list(range(5))


def test_a_full_queue_refuses_and_pushes_nothing(
    client15: TaskClient, redis15: redis.Redis[Any]
) -> None:
    redis15.delete(WRITE)
    try:
        client15.send(WRITE_PROBE_TASK, {"n": 1})
        client15.send(WRITE_PROBE_TASK, {"n": 2})
        with pytest.raises(QueueFullError) as refused:
            client15.send(WRITE_PROBE_TASK, {"n": 3})
        assert (refused.value.queue, refused.value.depth, refused.value.bound) == (WRITE, 2, 2)
        with pytest.raises(QueueFullError):
            client15.send_many(WRITE_PROBE_TASK, [{"n": 4}])
        assert redis15.llen(WRITE) == 2
        kept = [json.loads(raw)["headers"]["kwargsrepr"] for raw in redis15.lrange(WRITE, 0, -1)]
        assert sorted(kept) == ["{'n': 1}", "{'n': 2}"]
    finally:
        redis15.delete(WRITE)

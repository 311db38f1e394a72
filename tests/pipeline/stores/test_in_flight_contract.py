"""One contract for InFlight (the fake and the broker's Redis): a job is held while a
message of it waits on a queue or awaits acknowledgement, and no longer once acked.

The Redis case publishes real Celery messages (the product's own app and routing) on a
database of the session's Redis that no worker consumes, and takes them the way a
worker does (kombu's basic_get without ack: the message moves to ``unacked``).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from kombu import Queue

from config.endpoints import Endpoints
from config.queues import (
    ALL_QUEUES,
    CHUNK_FILES_TASK,
    EMBED_CHUNKS_TASK,
    INGEST_JOB_TASK,
)
from pipeline.adapters.fakes.in_flight import InMemoryInFlight
from pipeline.adapters.redis.in_flight import RedisInFlight, job_ids_in
from pipeline.errors import StoreUnavailableError
from pipeline.ports import InFlight
from tasks.app import create_app
from tests.stackutil import free_ports

BROKER_DB = 11  # no worker of the session stack reads this database


@dataclass
class Broker:
    in_flight: InFlight
    publish: Callable[[str, dict[str, Any]], None]  # task name, kwargs
    deliver: Callable[[], Callable[[], None]]  # take one message unacked; returns its ack


@pytest.fixture(params=["memory", "redis"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    if request.param == "memory":
        fake = InMemoryInFlight()
        held: list[str] = []

        def publish(_task: str, kwargs: dict[str, Any]) -> None:
            job_id = kwargs.get("job_id") or kwargs["message"]["job_id"]
            held.append(job_id)
            fake.hold(job_id)

        def deliver() -> Callable[[], None]:
            job_id = held.pop(0)
            return lambda: fake.release(job_id)

        yield Broker(fake, publish, deliver)
        return
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    url = f"{endpoints.redis_url.rsplit('/', 1)[0]}/{BROKER_DB}"
    settings = request.getfixturevalue("stack_settings")
    app = create_app(settings)
    app.conf.broker_url = url
    client: redis.Redis[Any] = redis.Redis.from_url(url)
    client.flushdb()
    queues = ALL_QUEUES
    with app.connection_for_write() as conn:

        def publish(task: str, kwargs: dict[str, Any]) -> None:
            app.send_task(task, kwargs=kwargs, connection=conn)

        def deliver() -> Callable[[], None]:
            for name in queues:
                message = Queue(name).bind(conn.default_channel).get(no_ack=False)
                if message is not None:
                    return message.ack  # type: ignore[no-any-return]
            raise AssertionError("no message to deliver")

        yield Broker(RedisInFlight(client, queues), publish, deliver)
    client.flushdb()
    client.close()


def test_nothing_published_holds_nothing(broker: Broker) -> None:
    assert broker.in_flight.job_ids() == set()


def test_a_job_is_held_while_queued_and_delivered_and_released_by_the_ack(
    broker: Broker,
) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    broker.publish(INGEST_JOB_TASK, {"job_id": a})
    broker.publish(CHUNK_FILES_TASK, {"job_id": b, "files": [{"path": "x y ü.py"}]})
    assert broker.in_flight.job_ids() == {a, b}
    ack = broker.deliver()
    assert broker.in_flight.job_ids() == {a, b}  # delivered, not yet acknowledged
    ack()
    assert broker.in_flight.job_ids() == {b}
    broker.deliver()()
    assert broker.in_flight.job_ids() == set()


def test_a_stage_message_names_its_job_inside_the_message(broker: Broker) -> None:
    job_id = str(uuid.uuid4())
    broker.publish(EMBED_CHUNKS_TASK, {"message": {"job_id": job_id, "chunks": ["x" * 5000]}})
    assert broker.in_flight.job_ids() == {job_id}


def test_job_ids_in_reads_queue_and_unacked_forms_and_ignores_garbage() -> None:
    job_id = str(uuid.uuid4())
    body = base64.b64encode(json.dumps([[], {"job_id": job_id}, {}]).encode()).decode()
    message = {"body": body, "headers": {}, "properties": {"body_encoding": "base64"}}
    assert job_ids_in(json.dumps(message)) == {job_id}
    assert job_ids_in(json.dumps([message, "quarry", "chunk"]).encode()) == {job_id}
    assert job_ids_in(b"\xff not json") == set()
    assert job_ids_in(json.dumps({"body": "%%%"})) == set()


def test_an_unreachable_broker_is_unavailable() -> None:
    (port,) = free_ports(1)
    client: redis.Redis[Any] = redis.Redis(port=port, socket_connect_timeout=0.5)
    with pytest.raises(StoreUnavailableError, match="broker"):
        RedisInFlight(client, ALL_QUEUES).job_ids()

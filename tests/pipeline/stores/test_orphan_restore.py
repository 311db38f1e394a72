"""A dead worker's messages go back to their queues at once, not after the visibility
timeout: the transport records which holder was delivered each message, the holder's
lease lapses with its process, and the sweeper's restore gives the messages back.

Run on the session stack's Redis (a database no worker reads) through Celery's own
connection with Quarry's transport, as a worker receives.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Queue

from config.endpoints import Endpoints
from config.queues import (
    ALL_QUEUES,
    CHUNK,
    CHUNK_FILES_TASK,
    HELD_KEY_PREFIX,
    INGEST,
    INGEST_JOB_TASK,
    LEASE_KEY_PREFIX,
)
from config.settings import QuarrySettings
from pipeline.adapters.fakes.in_flight import InMemoryInFlight
from pipeline.adapters.redis.in_flight import RedisInFlight
from tasks import transport
from tasks.app import create_app

BROKER_DB = 12  # no worker of the session stack reads this database


@pytest.fixture
def broker(endpoints: Endpoints, stack_settings: QuarrySettings) -> Iterator[Any]:
    url = f"{endpoints.redis_url.rsplit('/', 1)[0]}/{BROKER_DB}"
    client: redis.Redis[Any] = redis.Redis.from_url(url)
    client.flushdb()
    app = create_app(stack_settings)
    app.conf.broker_url = url
    app.conf.broker_transport = transport.TRANSPORT
    with app.connection_for_write() as conn:
        yield app, conn, client
    transport.HOLDER = None
    client.flushdb()
    client.close()


def deliver_as(holder: str, conn: Any, queue: str) -> Any:
    transport.HOLDER = holder
    try:
        message = Queue(queue).bind(conn.default_channel).get(no_ack=False)
    finally:
        transport.HOLDER = None
    assert message is not None
    return message


def test_a_dead_holders_messages_go_back_and_a_live_ones_stay(broker: Any) -> None:
    app, conn, client = broker
    dead, alive = f"cpu@a:1:{uuid.uuid4().hex[:6]}", f"cpu@b:2:{uuid.uuid4().hex[:6]}"
    job_a, job_b = str(uuid.uuid4()), str(uuid.uuid4())
    app.send_task(INGEST_JOB_TASK, kwargs={"job_id": job_a}, connection=conn)
    app.send_task(CHUNK_FILES_TASK, kwargs={"job_id": job_b, "files": []}, connection=conn)
    taken = deliver_as(dead, conn, INGEST)
    kept = deliver_as(alive, conn, CHUNK)
    client.set(LEASE_KEY_PREFIX + alive, "1", ex=60)  # the live worker renews its lease
    assert client.hlen(HELD_KEY_PREFIX + dead) == 1
    assert client.llen(INGEST) == 0 and client.hlen("unacked") == 2

    in_flight = RedisInFlight(client, ALL_QUEUES)
    assert in_flight.restore_orphans() == 1
    assert client.llen(INGEST) == 1 and client.hlen("unacked") == 1
    assert client.exists(HELD_KEY_PREFIX + dead) == 0
    assert client.hlen(HELD_KEY_PREFIX + alive) == 1
    assert in_flight.job_ids() == {job_a, job_b}  # nothing lost on the way

    again = Queue(INGEST).bind(conn.default_channel).get(no_ack=False)
    assert again is not None and again.delivery_info.get("redelivered") is not False
    assert json.loads(again.body)[1] == {"job_id": job_a}
    again.ack()
    assert in_flight.restore_orphans() == 0  # restoring twice gives nothing twice
    taken.ack()  # the dead worker's ack, had it come: the tag is gone already, harmless
    transport.HOLDER = alive  # the live worker's process acknowledges its message
    kept.ack()
    assert client.hlen(HELD_KEY_PREFIX + alive) == 0  # an ack forgets the holder's tag
    assert in_flight.job_ids() == set()


def test_a_message_no_holder_claims_goes_back_once_it_is_older_than_the_lease(
    broker: Any,
) -> None:
    """A worker killed between kombu's write to ``unacked`` and the transport's record
    of its holder leaves a message no lease covers: once older than the lease's TTL it
    goes back (else the sweeper counted it in flight, and its job waited an hour for
    the visibility timeout). A fresh unclaimed one, and a live holder's old one, stay."""
    app, conn, client = broker
    alive = f"cpu@b:2:{uuid.uuid4().hex[:6]}"
    lost, fresh, kept = (str(uuid.uuid4()) for _ in range(3))
    for job in (lost, fresh):
        app.send_task(INGEST_JOB_TASK, kwargs={"job_id": job}, connection=conn)
    app.send_task(CHUNK_FILES_TASK, kwargs={"job_id": kept, "files": []}, connection=conn)
    unrecorded = Queue(INGEST).bind(conn.default_channel).get(no_ack=False)  # no holder
    recent = Queue(INGEST).bind(conn.default_channel).get(no_ack=False)  # no holder either
    held = deliver_as(alive, conn, CHUNK)
    client.set(LEASE_KEY_PREFIX + alive, "1", ex=60)
    assert unrecorded is not None and recent is not None and client.hlen("unacked") == 3
    old = time.time() - 60  # delivered a minute ago, as kombu's index records it
    for message in (unrecorded, held):
        client.zadd("unacked_index", {message.delivery_tag: old})

    in_flight = RedisInFlight(client, ALL_QUEUES)
    assert in_flight.restore_orphans() == 1
    back = Queue(INGEST).bind(conn.default_channel).get(no_ack=False)
    assert back is not None and json.loads(back.body)[1] == {
        "job_id": json.loads(unrecorded.body)[1]["job_id"]
    }
    assert client.hlen("unacked") == 3  # the fresh one, the live holder's, the one taken again
    assert in_flight.restore_orphans() == 0
    for message in (back, recent):
        message.ack()
    transport.HOLDER = alive
    held.ack()
    assert in_flight.job_ids() == set()


def test_the_fake_broker_has_nothing_to_give_back() -> None:
    assert InMemoryInFlight({str(uuid.uuid4())}).restore_orphans() == 0

"""A malformed entry on a queue is skipped and kept; the worker that pops it goes on
(issue 9: bad input never crashes a worker).

Without tasks.transport, kombu raises JSONDecodeError out of the
consumer's loop and Celery stops the worker.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from config.endpoints import Endpoints
from config.queues import CHUNK, EMBED, INGEST, WRITE
from devstack.oracle import assert_stores_match
from devstack.stack import Stack
from devstack.supervisor import read_state
from pipeline.models import RepoRef
from tasks.transport import MALFORMED_KEY, decode_envelope
from tests.workers.jobs_api import enqueue, wait

GARBAGE = (b"{not json", b"\xff\xfe\x00binary", b"[1, 2, 3]", b"", b'"a string"')


def test_decode_envelope_takes_only_kombus_json_objects() -> None:
    assert decode_envelope(b'{"body": "e30=", "headers": {}}') == {"body": "e30=", "headers": {}}
    for raw in GARBAGE:
        assert decode_envelope(raw) is None


@pytest.mark.timeout(180)
def test_malformed_entries_on_every_queue_are_kept_and_the_workers_go_on(
    broker: redis.Redis[Any],
    stack: Stack,
    api: httpx.Client,
    tree: Path,
    endpoints: Endpoints,
) -> None:
    before = read_state(stack.layout)
    broker.delete(MALFORMED_KEY)
    tag = uuid.uuid4().hex.encode()
    pushed = [raw + tag for raw in GARBAGE[:3]] + [tag]
    for queue in (INGEST, CHUNK, EMBED, WRITE):
        broker.lpush(queue, *pushed)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and broker.llen(MALFORMED_KEY) < 4 * len(pushed):
        time.sleep(0.1)
    kept = broker.lrange(MALFORMED_KEY, 0, -1)
    assert sorted(kept) == sorted(pushed * 4)
    after = read_state(stack.layout)
    for worker in ("worker-cpu", "worker-embed"):
        assert after[worker]["pid"] == before[worker]["pid"], f"{worker} was restarted"
    # ...and they still work: a job goes through every queue.
    repo = f"malformed-{uuid.uuid4().hex[:8]}"
    final = wait(api, enqueue(api, source=str(tree), repo=repo))
    assert final["status"] == "done", final
    assert_stores_match(tree, RepoRef("default", repo), stack.settings, endpoints)

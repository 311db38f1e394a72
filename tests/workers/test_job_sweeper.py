"""A job whose messages are lost is sent on by the sweeper and completes, with both
stores exactly as expected (issue 9; the loss a killed main process can cause, made
certain here).

A worker's consumer of one queue is stopped, the job's messages are taken off that
queue (what kombu's BRPOP-then-record window loses when a main process dies), and the
consumer starts again. Nothing of the job is left anywhere, so only the sweeper
(every second on the test stack, after 5 s without progress) can end it.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from celery import Celery

from config.endpoints import Endpoints
from config.queues import CHUNK, EMBED
from devstack.oracle import assert_stores_match
from devstack.stack import Stack
from pipeline.adapters.redis.in_flight import job_ids_in
from pipeline.models import RepoRef
from tests.workers.jobs_api import enqueue, new_content, wait
from workers.main import node_name


def _drop_job_messages(broker: redis.Redis[Any], queue: str, job_id: str) -> int:
    dropped = 0
    for raw in broker.lrange(queue, 0, -1):
        if job_id in job_ids_in(raw):
            dropped += int(broker.lrem(queue, 1, raw))
    return dropped


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("queue", "profile"), [(CHUNK, "cpu"), (EMBED, "embed")])
def test_a_job_whose_messages_were_lost_is_sent_on_and_completes_exactly(
    queue: str,
    profile: str,
    api: httpx.Client,
    tree: Path,
    app: Celery,
    broker: redis.Redis[Any],
    stack: Stack,
    endpoints: Endpoints,
) -> None:
    repo = f"lost-{profile}-{uuid.uuid4().hex[:8]}"
    new_content(tree, repo)  # every file goes through the embed queue
    node = node_name(profile)
    app.control.cancel_consumer(queue, destination=[node], reply=True, timeout=5)
    try:
        job_id = enqueue(api, source=str(tree), repo=repo)
        deadline, dropped = time.monotonic() + 60, 0
        while time.monotonic() < deadline:
            dropped += _drop_job_messages(broker, queue, job_id)
            status = api.get(f"/v1/jobs/{job_id}").json()
            pending = any(job_id in job_ids_in(m) for m in broker.lrange(queue, 0, -1))
            # Ingest (or the chunk stage) has sent everything it will: nothing is left.
            if dropped and not pending and status["stage"] != "ingest":
                time.sleep(1.0)
                if not any(job_id in job_ids_in(m) for m in broker.lrange(queue, 0, -1)):
                    break
            time.sleep(0.05)
        assert dropped > 0, f"no message of job {job_id} reached {queue}"
    finally:
        app.control.add_consumer(queue, destination=[node], reply=True, timeout=5)
    final = wait(api, job_id, timeout_s=180)
    assert final["status"] == "done", final
    assert final["recoveries"] >= 1, final
    assert any("sweeper: no work in flight" in e["message"] for e in final["errors"]), final
    assert final["files"]["failed"] == 0
    assert_stores_match(tree, RepoRef("default", repo), stack.settings, endpoints)

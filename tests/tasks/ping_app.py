"""Quarry's Celery app with one task that records each run, for a test worker subprocess.

``celery -A tests.tasks.ping_app worker`` in tests/tasks/test_task_client.py, with the
settings (QUARRY_* variables) pointing at a Redis database of its own. The app is
``tasks.app.create_app`` unchanged (queues, routing, acks_late, json), without the stage
task modules; ``quarry.webhook.testping`` routes to ``quarry.webhook`` like any
``quarry.webhook.*`` task.

Each run RPUSHes a JSON record to ``quarry:test:ping:<token>`` in the broker's database.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from celery import Task

from tasks.app import create_app

PING_TASK = "quarry.webhook.testping"
RECORDS_KEY = "quarry:test:ping:{token}"

app = create_app()
app.conf.include = []


@app.task(name=PING_TASK, bind=True)  # type: ignore[untyped-decorator]
def testping(self: Task, token: str, **kwargs: Any) -> None:
    request = self.request
    record = {
        "task_id": request.id,
        "kwargs": {"token": token, **kwargs},
        "ran_at": time.time(),
        "eta": request.eta,
        "delivery_info": request.delivery_info,
        "root_id": request.root_id,
    }
    with redis.Redis.from_url(app.conf.broker_url) as client:
        client.rpush(RECORDS_KEY.format(token=token), json.dumps(record))

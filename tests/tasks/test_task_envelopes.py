"""The message TaskEnvelopes builds is the one ``app.send_task`` publishes, byte for field.

The comparison publishes with Celery itself to Redis database 15 of the session stack
(see conftest.py), on ``quarry.write``, which no test worker consumes.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery import Celery
from celery.utils.saferepr import saferepr

from config.queues import WEBHOOK, WRITE
from pipeline.adapters.fakes.admission import InMemoryAdmission
from tasks.client import TaskClient
from tasks.envelopes import TaskEnvelopes
from tasks.kwargs_repr import kwargs_repr

PROBE_TASK = "quarry.write.testprobe"
PAYLOAD = {
    "repo": {"tenant": "acme", "name": "naïve-tools"},
    "paths": ["src/a.py", "docs/it's ✓.md", 'say "hi"\n'],
    "sha256": "ab" * 32,
    "vector": [0.5, -1.25e-7, 3.0],
    "flags": {"force": True, "dry_run": False, "note": None},
}


def test_message_carries_the_kwargs_base64_encoded(offline_app: Celery) -> None:
    admission = InMemoryAdmission(default_bound=10)
    client = TaskClient(offline_app, admission)
    task_id = client.send("quarry.webhook.deliver", PAYLOAD, task_id="fixed-id")
    message = json.loads(admission.pop(WEBHOOK) or b"")
    assert task_id == "fixed-id"
    assert message["properties"]["body_encoding"] == "base64"
    args, kwargs, embed = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([], PAYLOAD)
    assert embed == {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    assert message["headers"]["kwargsrepr"] == saferepr(PAYLOAD, 1024)


def test_a_task_sent_from_a_running_task_carries_its_root_and_parent(
    offline_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = SimpleNamespace(request=SimpleNamespace(id="parent-1", root_id="root-1"))
    monkeypatch.setattr(type(offline_app), "current_worker_task", property(lambda _: running))
    message = json.loads(TaskEnvelopes(offline_app).build(PROBE_TASK, {}, task_id="child").message)
    assert (message["headers"]["root_id"], message["headers"]["parent_id"]) == (
        "root-1",
        "parent-1",
    )


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 6 and roll < 0.25:
        keys = ["".join(rng.choices(string.printable + "é'", k=3)) for _ in range(3)]
        return {k: _random_value(rng, depth + 1) for k in keys}
    if depth < 6 and roll < 0.4:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 6 and roll < 0.45:
        return tuple(_random_value(rng, depth + 1) for _ in range(rng.randint(0, 2)))
    text = "".join(rng.choices(string.printable + "éü🦀'\"\\", k=rng.randint(0, 30)))
    scalars = [None, True, False, rng.randint(-(10**9), 10**9), rng.random() * 1e5]
    return rng.choice([*scalars, float("inf"), text])


@pytest.mark.parametrize("maxlen", [1024, 80, 12])
def test_kwargs_repr_is_celerys_saferepr(maxlen: int) -> None:
    rng = random.Random(maxlen)
    cases: list[dict[Any, Any]] = [
        {"a": _random_value(rng), "b": _random_value(rng)} for _ in range(2000)
    ]
    cases += [PAYLOAD, {}, {"t": (1,)}, {"deep": {"a": {"b": {"c": {"d": [1]}}}}}, {"s": {1, 2}}]
    cases += [{"k": "x" * 2000}, {"b": b"bytes"}, {1: "int key"}]
    for kwargs in cases:
        assert kwargs_repr(kwargs, maxlen) == saferepr(kwargs, maxlen), kwargs


def _without_tag(raw: bytes) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(raw)
    assert message["properties"].pop("delivery_tag")
    return message


@pytest.mark.timeout(60)
@pytest.mark.parametrize("countdown", [None, 30.0])
def test_message_is_what_send_task_publishes(
    app15: Celery, redis15: redis.Redis[Any], countdown: float | None
) -> None:
    task_id = f"same-{uuid.uuid4()}"
    app15.send_task(PROBE_TASK, kwargs=PAYLOAD, task_id=task_id, countdown=countdown)
    published = redis15.rpop(WRITE)
    assert published is not None
    ours = TaskEnvelopes(app15).build(PROBE_TASK, PAYLOAD, task_id=task_id, countdown=countdown)
    assert ours.queue == WRITE
    theirs, mine = _without_tag(published), _without_tag(ours.message)
    if countdown:
        # The ETA is now + countdown, taken a few milliseconds apart.
        eta_theirs = datetime.fromisoformat(theirs["headers"].pop("eta"))
        eta_mine = datetime.fromisoformat(mine["headers"].pop("eta"))
        assert abs((eta_mine - eta_theirs).total_seconds()) < 5
    assert mine == theirs
    assert list(mine) == list(theirs)
    assert list(mine["properties"]) == list(theirs["properties"])

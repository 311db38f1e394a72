"""Enqueue Celery tasks by name through admission: bounded queues, refused when full.

``TaskClient.send`` builds the exact message ``app.send_task`` would publish (see
tasks/envelopes.py) and pushes it with an :class:`~pipeline.ports.Admission`, which
checks the queue's bound and pushes in one atomic step. A full queue raises
:class:`~pipeline.errors.QueueFullError` (the API answers 429 / 503 with its
``retry_after_s``); ``send_blocking`` is for stage-to-stage sends inside workers, which
wait for room instead, up to a timeout.

Each push sets the gauges ``quarry_queue_depth`` and ``quarry_queue_fill_ratio`` of its
queue (tasks/metrics.py) to what it saw.

Must not import: workers/, api/, cli/, drivers (the admission adapter is injected).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from celery import Celery

from pipeline.errors import QueueFullError
from pipeline.ports import Admission
from tasks import recording
from tasks.envelopes import Envelope, TaskEnvelopes

log = logging.getLogger("quarry.tasks.client")

# send_blocking waits retry_after_s times 1.0-1.5, so that producers refused together
# do not all come back in the same instant.
BLOCKING_JITTER = 0.5


class TaskClient:
    """Sends tasks by name to their routed queue, through admission.

    ``sleep``, ``clock`` and ``rng`` are injectable for tests of ``send_blocking``.
    """

    def __init__(
        self,
        app: Celery,
        admission: Admission,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._envelopes = TaskEnvelopes(app)
        self._admission = admission
        self._sleep = sleep
        self._clock = clock
        self._rng = rng

    def queue_for(self, task_name: str) -> str:
        return self._envelopes.queue_for(task_name)

    def send(
        self,
        task_name: str,
        kwargs: dict[str, Any],
        *,
        countdown: float | None = None,
        task_id: str | None = None,
    ) -> str:
        """Enqueue one task; returns its id. QueueFullError when the queue is full."""
        envelope = self._envelopes.build(task_name, kwargs, countdown=countdown, task_id=task_id)
        self._push(envelope)
        return envelope.task_id

    def send_many(
        self,
        task_name: str,
        kwargs_list: Sequence[dict[str, Any]],
        *,
        countdown: float | None = None,
    ) -> list[str]:
        """Enqueue one task per kwargs, all or none (one admission call); returns the ids
        in order. QueueFullError when they do not all fit now."""
        if not kwargs_list:
            return []
        envelopes = [
            self._envelopes.build(task_name, kwargs, countdown=countdown) for kwargs in kwargs_list
        ]
        queue = envelopes[0].queue
        self._admit(queue, lambda: self._admission.push_many(queue, [e.message for e in envelopes]))
        return [e.task_id for e in envelopes]

    def send_blocking(
        self,
        task_name: str,
        kwargs: dict[str, Any],
        *,
        timeout_s: float,
        countdown: float | None = None,
        task_id: str | None = None,
    ) -> str:
        """``send``, but a full queue is waited on (its ``retry_after_s`` with jitter) and
        tried again until ``timeout_s`` has passed; then the last QueueFullError is raised.

        The message is built once: the same task id on every attempt, and a
        ``countdown`` counts from the first attempt.
        """
        envelope = self._envelopes.build(task_name, kwargs, countdown=countdown, task_id=task_id)
        deadline = self._clock() + timeout_s
        while True:
            try:
                self._push(envelope)
            except QueueFullError as exc:
                left_s = deadline - self._clock()
                if left_s <= 0:
                    raise
                wait_s = exc.retry_after_s * (1.0 + BLOCKING_JITTER * self._rng())
                log.debug("queue %s full, retrying in %.2f s", exc.queue, wait_s)
                self._sleep(min(wait_s, left_s))
            else:
                return envelope.task_id

    def sender(self, timeout_s: float) -> Callable[[str, Sequence[Mapping[str, Any]]], None]:
        """A stage's ``send``: the whole batch in one admission call when it fits now;
        else each task through ``send_blocking`` with ``timeout_s``."""

        def send(task_name: str, kwargs_list: Sequence[Mapping[str, Any]]) -> None:
            batch = [dict(kwargs) for kwargs in kwargs_list]
            if len(batch) > 1:
                try:
                    self.send_many(task_name, batch)
                    return
                except QueueFullError:
                    pass  # all or none: nothing was pushed; wait for room one by one
            for kwargs in batch:
                self.send_blocking(task_name, kwargs, timeout_s=timeout_s)

        return send

    def _push(self, envelope: Envelope) -> None:
        self._admit(envelope.queue, lambda: self._admission.push(envelope.queue, envelope.message))

    def _admit(self, queue: str, push: Callable[[], int]) -> None:
        """Push, and record the queue's depth as the push saw it (full or not)."""
        try:
            depth = push()
        except QueueFullError as exc:
            recording.record_queue(queue, exc.depth, exc.bound)
            raise
        recording.record_queue(queue, depth, self._admission.bound(queue))

"""Flower's view of a batch task: the events of each message, as for any other task.

celery-batches (the embed task) buffers messages and runs one flush for many of them.
It sends no task event for them: Flower showed the embed worker with nothing processed
while the worker's own metrics counted every flush. This module sends, under each
message's own task id, what Celery's strategy and tracer send for an ordinary task:

* ``task-received`` when the consumer buffers the message (the ``task_received`` signal,
  which celery-batches does send, through the request's own event dispatcher: it honours
  the worker's ``-E`` and the task's ``send_events``);
* ``task-started`` when a flush takes it, and ``task-succeeded``, ``task-failed`` (dead
  letter) or ``task-retried`` (sent again with a backoff) when the flush is done with it:
  :func:`reported`, around the flush.

So Flower's Processed (task-received) and Succeeded counts of the embed worker, and its
task list, show every embed message. Events go out only for requests a worker delivered
(they carry its node name) and only where the app sends task events. Observers never fail
the work: a send that fails is logged and the flush goes on.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from celery import Celery, signals
from celery_batches import Batches

log = logging.getLogger("quarry.tasks.batch_events")


def on_received(request: Any = None, **_: Any) -> None:
    """A batch task's message was buffered: ``task-received``, as Celery's strategy sends
    for an ordinary task (which does not reach here: it is not a Batches task)."""
    try:
        if request is None or not isinstance(getattr(request, "task", None), Batches):
            return
        request.send_event(
            "task-received",
            name=request.name,
            args=request.argsrepr,
            kwargs=request.kwargsrepr,
            root_id=request.root_id,
            parent_id=request.parent_id,
            retries=(request.request_dict or {}).get("retries", 0),
            eta=request.eta and request.eta.isoformat(),
            expires=request.expires and request.expires.isoformat(),
        )
    except Exception:
        log.exception("task-received event of a batched message failed")


class BatchEvents:
    """The per-message outcome of one flush: a message not marked failed or retried
    succeeded when the flush returns, and failed when it raises."""

    def __init__(self, app: Celery, requests: Sequence[Any]) -> None:
        self._app = app
        self._requests = [r for r in requests if _delivered(r)]
        self._outcomes: dict[str, tuple[str, dict[str, Any]]] = {}
        self._started = time.monotonic()

    def failed(self, request: Any, exc: BaseException) -> None:
        self._outcomes[request.id] = ("task-failed", _error(exc))

    def retried(self, request: Any, exc: BaseException) -> None:
        self._outcomes[request.id] = ("task-retried", _error(exc))

    def started(self) -> None:
        self._send([(r, "task-started", {}) for r in self._requests])

    def finished(self, error: BaseException | None = None) -> None:
        runtime = time.monotonic() - self._started
        default = ("task-succeeded", {"result": "None", "runtime": runtime})
        if error is not None:
            default = ("task-failed", _error(error))
        events = []
        for request in self._requests:
            kind, fields = self._outcomes.get(request.id, default)
            events.append((request, kind, fields))
        self._send(events)

    def _send(self, events: Sequence[tuple[Any, str, dict[str, Any]]]) -> None:
        if not events or not self._app.conf.worker_send_task_events:
            return
        try:
            hostname = events[0][0].hostname
            with self._app.events.default_dispatcher(hostname=hostname) as dispatcher:
                for request, kind, fields in events:
                    dispatcher.send(kind, uuid=request.id, **fields)
        except Exception:
            log.exception("task events of %d batched messages failed", len(events))


@contextmanager
def reported(app: Celery, requests: Sequence[Any]) -> Iterator[BatchEvents]:
    """Send each message's ``task-started`` now and its outcome when the block ends."""
    events = BatchEvents(app, requests)
    events.started()
    try:
        yield events
    except BaseException as exc:
        events.finished(exc)
        raise
    events.finished()


def _delivered(request: Any) -> bool:
    """Whether a worker delivered the request (not a direct or eager call)."""
    info = getattr(request, "delivery_info", None) or {}
    return bool(getattr(request, "hostname", None)) and not info.get("is_eager")


def _error(exc: BaseException) -> dict[str, Any]:
    return {"exception": repr(exc), "traceback": ""}


def connect() -> None:
    """Send the received events of every batch task this process consumes (idempotent)."""
    signals.task_received.connect(
        on_received, weak=False, dispatch_uid="quarry.batch_events.received"
    )

"""Celery signal handlers of every task: task metrics and the log context.

* ``task_prerun``: counts ``quarry_tasks_total{outcome="started"}``, notes the start
  time, and sets the log context (job id, repository, task id) from the task's
  keyword arguments, so that every line the task logs carries them.
* ``task_postrun``: counts the outcome from the task's final state (SUCCESS: succeeded,
  FAILURE: failed, RETRY: retried), observes ``quarry_task_seconds`` and resets the log
  context.

Outcomes come from task_postrun's ``state``, not from task_success / task_failure /
task_retry: celery-batches (the embed task) sends task_success but neither of the
others, while task_postrun carries the state for both kinds of task. The queue is the
routing key the message was delivered with (Quarry routes by queue name), else the
queue the task's name routes to. Observers never fail the work: a handler that raises
is logged and the task goes on.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from contextvars import Token
from dataclasses import dataclass
from typing import Any

from celery import signals

from config.logging import LogContext, reset_log_context, set_log_context
from config.queues import TASK_ROUTES
from tasks import recording
from tasks.log_fields import batch_requests, log_fields

log = logging.getLogger("quarry.tasks.observers")

OUTCOMES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}


@dataclass(frozen=True, slots=True)
class _Run:
    queue: str
    started: float
    token: Token[LogContext | None] | None


_runs: dict[str, _Run] = {}
_lock = threading.Lock()


def route_of(task_name: str) -> str:
    """The queue a task's name routes to (config.queues.TASK_ROUTES), "" if none."""
    for pattern, route in TASK_ROUTES.items():
        if fnmatch.fnmatchcase(task_name, pattern):
            return route["queue"]
    return ""


def queue_of(task: Any, args: Sequence[Any] | None) -> str:
    """The queue the task's message came from."""
    requests = batch_requests(args)
    info = getattr(requests[0], "delivery_info", None) if requests else None
    if info is None:
        info = getattr(getattr(task, "request", None), "delivery_info", None)
    queue = info.get("routing_key") if isinstance(info, Mapping) else None
    return queue if isinstance(queue, str) and queue else route_of(str(task.name))


def on_prerun(
    sender: Any = None,
    task_id: str = "",
    task: Any = None,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    **_: Any,
) -> None:
    try:
        task = task or sender
        queue = queue_of(task, args)
        token = set_log_context(**log_fields(task_id, args, kwargs))
        with _lock:
            _runs[task_id] = _Run(queue, time.perf_counter(), token)
        recording.record_task(task.name, queue, "started")
    except Exception:
        log.exception("task_prerun observer failed for %s", task_id)


def on_postrun(
    sender: Any = None,
    task_id: str = "",
    task: Any = None,
    args: Sequence[Any] | None = None,
    state: str | None = None,
    **_: Any,
) -> None:
    try:
        task = task or sender
        with _lock:
            run = _runs.pop(task_id, None)
        queue = run.queue if run else queue_of(task, args)
        outcome = OUTCOMES.get(str(state))
        if outcome:
            recording.record_task(task.name, queue, outcome)
        if run:
            recording.record_task_seconds(task.name, queue, time.perf_counter() - run.started)
        reset_log_context(run.token if run else None)
    except Exception:
        log.exception("task_postrun observer failed for %s", task_id)


def connect() -> None:
    """Observe every task this process runs (idempotent)."""
    signals.task_prerun.connect(on_prerun, weak=False, dispatch_uid="quarry.observers.prerun")
    signals.task_postrun.connect(on_postrun, weak=False, dispatch_uid="quarry.observers.postrun")

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
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextvars import Token
from dataclasses import dataclass
from typing import Any

from celery import signals

from config.logging import LogContext, reset_log_context, set_log_context
from config.queues import TASK_ROUTES
from tasks import metrics
from tasks.base import job_id_of
from tasks.context import current

log = logging.getLogger("quarry.tasks.observers")

OUTCOMES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}
_REPO_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class _Run:
    queue: str
    started: float
    token: Token[LogContext | None] | None


_runs: dict[str, _Run] = {}
_repos: OrderedDict[str, str] = OrderedDict()  # job id -> "tenant/name", this process
_lock = threading.Lock()


def route_of(task_name: str) -> str:
    """The queue a task's name routes to (config.queues.TASK_ROUTES), "" if none."""
    for pattern, route in TASK_ROUTES.items():
        if fnmatch.fnmatchcase(task_name, pattern):
            return route["queue"]
    return ""


def queue_of(task: Any, args: Sequence[Any] | None) -> str:
    """The queue the task's message came from."""
    requests = _batch_requests(args)
    info = getattr(requests[0], "delivery_info", None) if requests else None
    if info is None:
        info = getattr(getattr(task, "request", None), "delivery_info", None)
    queue = info.get("routing_key") if isinstance(info, Mapping) else None
    return queue if isinstance(queue, str) and queue else route_of(str(task.name))


def repo_text(payload: Mapping[str, Any]) -> str:
    """``tenant/name`` of the payload's ``repo`` (or its message's), "" if none."""
    repo = payload.get("repo")
    message = payload.get("message")
    if not isinstance(repo, Mapping) and isinstance(message, Mapping):
        repo = message.get("repo")
    if not isinstance(repo, Mapping):
        return ""
    tenant, name = repo.get("tenant"), repo.get("name")
    return f"{tenant}/{name}" if isinstance(tenant, str) and isinstance(name, str) else ""


def log_fields(
    task_id: str, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
) -> dict[str, str]:
    """The log context of a task run: its id, and the job and repository it works for
    (a batch's when all its messages are of one job)."""
    requests = _batch_requests(args)
    payloads = (
        [r.kwargs for r in requests if isinstance(getattr(r, "kwargs", None), Mapping)]
        if requests
        else [kwargs or {}]
    )
    jobs = {job_id_of(p) for p in payloads}
    job_id = jobs.pop() if len(jobs) == 1 else ""
    repos = {repo_text(p) for p in payloads}
    repo = repos.pop() if len(repos) == 1 else ""
    if job_id and not repo:
        repo = _repo_of_job(job_id)
    return {"task_id": task_id, "job_id": job_id, "repo": repo}


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
        metrics.record_task(task.name, queue, "started")
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
            metrics.record_task(task.name, queue, outcome)
        if run:
            metrics.record_task_seconds(task.name, queue, time.perf_counter() - run.started)
        reset_log_context(run.token if run else None)
    except Exception:
        log.exception("task_postrun observer failed for %s", task_id)


def connect() -> None:
    """Observe every task this process runs (idempotent)."""
    signals.task_prerun.connect(on_prerun, weak=False, dispatch_uid="quarry.observers.prerun")
    signals.task_postrun.connect(on_postrun, weak=False, dispatch_uid="quarry.observers.postrun")


def _batch_requests(args: Sequence[Any] | None) -> list[Any]:
    # A celery-batches task runs with one argument: the list of its buffered requests.
    if args and len(args) == 1 and isinstance(args[0], list):
        return [r for r in args[0] if hasattr(r, "delivery_info")]
    return []


def _repo_of_job(job_id: str) -> str:
    """The repository of a job whose task names only the job (ingest, commit, webhook),
    from the job store once per job and process; "" when it cannot be read."""
    with _lock:
        cached = _repos.get(job_id)
    if cached is not None:
        return cached
    try:
        ctx = current().jobs
        job = ctx.jobs.get(job_id) if ctx is not None else None
    except Exception as exc:  # noqa: BLE001 (a store down: the lines go without the repository)
        log.debug("repository of job %s unreadable for the log context: %s", job_id, exc)
        return ""
    repo = job.repo.key if job is not None else ""
    with _lock:
        _repos[job_id] = repo
        while len(_repos) > _REPO_CACHE_SIZE:
            _repos.popitem(last=False)
    return repo

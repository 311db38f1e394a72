"""What every log line of a task carries: its id, and the job and repository it works for.

Read from the task's keyword arguments (or, for a celery-batches task, from its buffered
requests' when all are of one job); a task that names only its job (ingest, commit,
webhook) gets the repository from the job store, once per job and process.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from tasks.base import job_id_of
from tasks.context import current

log = logging.getLogger("quarry.tasks.observers")
_REPO_CACHE_SIZE = 1024
_repos: OrderedDict[str, str] = OrderedDict()  # job id -> "tenant/name", this process
_lock = threading.Lock()


def repo_text(payload: Mapping[str, Any]) -> str:
    """``tenant/name`` of the payload's ``repo`` (or its message's), "" if none."""
    repo = payload.get("repo")
    message = payload.get("message")
    several = payload.get("messages")
    if message is None and isinstance(several, list) and several:
        message = several[0]  # a multi-file write: all of one job
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
    requests = batch_requests(args)
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


def batch_requests(args: Sequence[Any] | None) -> list[Any]:
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

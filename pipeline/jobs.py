"""Indexing jobs: what a client asks for, what Quarry records, and the status it reports.

Owns the job's values (request, source, counters, errors, webhook deliveries) and the
pure arithmetic of progress: percent done and the ETA from the observed rate. The JSON
shape of a job's status (API and ``quarry status --json``) is built here, once.

Counters are a flat mapping ``"files.total" -> int``; every file ends in exactly one of
``files.skipped`` (unchanged since the searchable snapshot, or excluded by the file
rules), ``files.written`` (both stores hold its current version) or ``files.failed``.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import InvalidInputError
from pipeline.models import RepoRef


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in {JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED}


class Stage(enum.StrEnum):
    """Where a job is. Files flow through chunk, embed and write concurrently; the stage
    is the earliest one that still has work."""

    QUEUED = "queued"
    INGEST = "ingest"
    CHUNK = "chunk"
    EMBED = "embed"
    WRITE = "write"
    GRAPH = "graph"
    COMMIT = "commit"
    DONE = "done"


class SourceKind(enum.StrEnum):
    PATH = "path"
    GIT = "git"
    ARCHIVE = "archive"


FILE_COUNTERS = ("total", "skipped", "chunked", "embedded", "written", "failed")
CHUNK_COUNTERS = ("total", "embedded", "cached")
MAX_ERRORS = 20

_REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_repo_name(name: str) -> str:
    """A repository name as stored: 1-200 of ``A-Z a-z 0-9 . _ / -``, no ``..``."""
    if not _REPO_NAME.match(name) or ".." in name or name.endswith("/"):
        raise InvalidInputError(
            f"repository name {name!r}: use 1-200 letters, digits, '.', '_', '-' or '/', "
            "starting with a letter or digit"
        )
    return name


def check_tenant(tenant: str) -> str:
    if not _TENANT.match(tenant):
        raise InvalidInputError(
            f"tenant {tenant!r}: use 1-63 lowercase letters, digits, '_' or '-'"
        )
    return tenant


@dataclass(frozen=True, slots=True)
class JobSource:
    """Where the files come from: a local folder, a git URL at a ref, or an archive file."""

    kind: SourceKind
    location: str
    ref: str | None = None

    def describe(self) -> str:
        return f"{self.location}@{self.ref}" if self.ref else self.location


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What a client enqueues. ``commit`` None: resolved by the producer (git HEAD, or
    a digest of the tree's files)."""

    repo: RepoRef
    source: JobSource
    commit: str | None = None
    callback_url: str | None = None
    idempotency_key: str | None = None
    ref_name: str | None = None
    # Files to re-index even if unchanged (a repair); such a job is never deduplicated
    # by its commit, since that commit is already indexed.
    reindex_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class JobError:
    """One failure, kept in the job's last errors: which file (or ``""``) and why."""

    path: str
    message: str
    at: float


@dataclass(frozen=True, slots=True)
class StoreWait:
    """A job's work held back by a store whose circuit breaker is open: which store,
    until when (epoch seconds) its tasks wait before they try again, and why."""

    store: str
    until: float
    reason: str


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One attempt at delivering one event to the job's callback URL."""

    event: str
    url: str
    attempt: int
    outcome: str  # delivered | retrying | failed | refused
    status_code: int | None
    error: str
    at: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    repo: RepoRef
    commit: str
    status: JobStatus
    stage: str
    source: JobSource
    callback_url: str | None = None
    idempotency_key: str | None = None
    counters: Mapping[str, int] = field(default_factory=dict)
    errors: tuple[JobError, ...] = ()
    webhooks: tuple[WebhookDelivery, ...] = ()
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    snapshot_id: int | None = None
    message: str = ""  # why a job failed, in one line
    waiting: tuple[StoreWait, ...] = ()  # stores the job waits on now (live only)
    reindex_paths: tuple[str, ...] = ()


def merge_counters(*layers: Mapping[str, int]) -> dict[str, int]:
    """Later layers win key by key (the live Redis counters over the flushed record)."""
    merged: dict[str, int] = {}
    for layer in layers:
        merged.update({k: int(v) for k, v in layer.items()})
    return merged


def percent_done(job: Job) -> float:
    """Files settled (skipped, written or failed) over files total; 100 when done."""
    if job.status is JobStatus.DONE:
        return 100.0
    c = job.counters
    total = c.get("files.total", 0)
    if total <= 0:
        return 0.0
    settled = c.get("files.skipped", 0) + c.get("files.written", 0) + c.get("files.failed", 0)
    return round(min(99.9, 100.0 * settled / total), 1)


def eta_s(job: Job, now: float) -> float | None:
    """Seconds left at the rate observed since the job started; None until it is known."""
    if job.status.terminal:
        return 0.0 if job.status is JobStatus.DONE else None
    if job.started_at is None:
        return None
    c = job.counters
    todo = c.get("files.total", 0) - c.get("files.skipped", 0)
    done = c.get("files.written", 0) + c.get("files.failed", 0)
    elapsed = now - job.started_at
    if todo <= 0 or done <= 0 or elapsed <= 0:
        return None
    return round(max(0.0, (todo - done) * elapsed / done), 1)


RECOVERIES = "job.recoveries"  # counter: how many times the sweeper sent the job on


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def job_status(job: Job, now: float) -> dict[str, Any]:
    """The job status JSON of the API and of ``quarry status --json``."""
    c = job.counters
    skipped_by_reason = {
        k.removeprefix("skipped."): v for k, v in sorted(c.items()) if k.startswith("skipped.")
    }
    return {
        "job_id": job.job_id,
        "repo": job.repo.name,
        "commit": job.commit,
        "source": job.source.describe(),
        "status": job.status.value,
        "stage": job.stage,
        "message": job.message,
        "files": {name: c.get(f"files.{name}", 0) for name in FILE_COUNTERS}
        | {
            "todo": c.get("files.todo", 0),
            "deleted": c.get("files.deleted", 0),
            "skipped_by_reason": skipped_by_reason,
        },
        "chunks": {name: c.get(f"chunks.{name}", 0) for name in CHUNK_COUNTERS},
        "bytes": {"total": c.get("bytes.total", 0), "processed": c.get("bytes.processed", 0)},
        "percent": percent_done(job),
        "recoveries": c.get(RECOVERIES, 0),
        "eta_s": eta_s(job, now),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "errors": [{"path": e.path, "message": e.message, "at": _iso(e.at)} for e in job.errors],
        "waiting_on": [
            {"store": w.store, "until": _iso(w.until), "reason": w.reason} for w in job.waiting
        ],
        "webhooks": [
            {
                "event": w.event,
                "url": w.url,
                "attempt": w.attempt,
                "outcome": w.outcome,
                "status_code": w.status_code,
                "error": w.error,
                "at": _iso(w.at),
                "duration_s": round(w.duration_s, 3),
            }
            for w in job.webhooks
        ],
    }

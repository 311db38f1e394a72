"""Tenant quotas: what they are, how much of each is left, and what refuses a job.

Three quotas, each an operator's limit per tenant (``quarry quota set``; a limit not set
is the settings' default, ``QUARRY_QUOTA_*``). A tenant cannot change its own: no API
route writes them.

* ``concurrent_jobs``: jobs queued or running at once. Checked when a job is created
  (POST /v1/jobs, /v1/jobs/archive): the job is written first and the tenant's active
  jobs counted after, so concurrent requests can never pass the limit together (at
  worst both are refused). 429, Retry-After 30 s.
* ``files_per_day``: files indexed (added or changed; unchanged ones cost nothing) per
  UTC day. A job's count is known only at its ingest: admission refuses a job (429,
  Retry-After: the seconds to UTC midnight) once today's budget is spent, and the
  ingest charges the job's files whole, once per job, or fails the job naming the
  quota if they would pass it, before its snapshot begins (nothing is half-indexed).
* ``stored_chunks``: chunk rows the tenant's repositories hold. Admission refuses a new
  job at or past the limit (403: waiting does not help; deleting a repository does). A
  job admitted below it may pass it by its own chunks.

Every authenticated answer carries what is left of each (``X-Quota-Remaining-...``
headers, from a status each API process keeps for a few seconds per tenant).

One more limit is not a budget that is used up: ``search_concurrency``, the tenant's
share of each API process's searches and graph reads (api/search_slots.py: how many run
at once; the line and the wait are the settings'). Its default is
``QUARRY_SEARCH_TENANT_CONCURRENCY``; 0 lifts the bound, as the setting's 0 does.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta

from config.settings import QuarrySettings
from pipeline.errors import InvalidInputError, QuotaExceededError

HEADER_PREFIX = "X-Quota-Remaining-"
CONCURRENT_RETRY_AFTER_S = 30.0


class Quota(enum.StrEnum):
    CONCURRENT_JOBS = "concurrent_jobs"
    FILES_PER_DAY = "files_per_day"
    STORED_CHUNKS = "stored_chunks"

    @property
    def header(self) -> str:
        """``X-Quota-Remaining-Files-Per-Day`` ..."""
        return HEADER_PREFIX + "-".join(w.capitalize() for w in self.value.split("_"))


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    concurrent_jobs: int
    files_per_day: int
    stored_chunks: int
    search_concurrency: int = 0  # not a Quota: a share, nothing is used up (0: no bound)

    def merged(self, overrides: Mapping[str, int | None]) -> QuotaLimits:
        """These limits with a tenant's overrides laid over them (None: the default)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def of(self, quota: Quota) -> int:
        value: int = getattr(self, quota.value)
        return value


def default_limits(settings: QuarrySettings) -> QuotaLimits:
    """The quotas of a tenant an operator set none for (``QUARRY_QUOTA_*``)."""
    return QuotaLimits(
        concurrent_jobs=settings.quota_concurrent_jobs,
        files_per_day=settings.quota_files_per_day,
        stored_chunks=settings.quota_stored_chunks,
        search_concurrency=settings.search_tenant_concurrency,
    )


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    concurrent_jobs: int  # queued or running now
    files_per_day: int  # charged today (UTC)
    stored_chunks: int

    def of(self, quota: Quota) -> int:
        value: int = getattr(self, quota.value)
        return value


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    tenant: str
    limits: QuotaLimits
    usage: QuotaUsage

    def remaining(self) -> dict[Quota, int]:
        return {q: max(0, self.limits.of(q) - self.usage.of(q)) for q in Quota}

    def headers(self) -> dict[str, str]:
        return {q.header: str(n) for q, n in self.remaining().items()}

    def public(self) -> dict[str, dict[str, int]]:
        left = self.remaining()
        return {
            q.value: {"limit": self.limits.of(q), "used": self.usage.of(q), "remaining": left[q]}
            for q in Quota
        }


def check_limit_values(changes: Mapping[str, int | None]) -> dict[str, int | None]:
    """The changes with their names and values checked; InvalidInputError names a bad one."""
    known = {f.name for f in fields(QuotaLimits)}
    for name, value in changes.items():
        if name not in known:
            raise InvalidInputError(f"quota {name!r}: not one of {', '.join(sorted(known))}")
        most = _INTEGER_MAX if name in _INTEGER_LIMITS else 2**62
        if value is not None and (isinstance(value, bool) or value < 0 or value > most):
            raise InvalidInputError(f"quota {name}: {value!r} is not a count from 0 to {most}")
    return dict(changes)


# The limits stored as PostgreSQL integer (migrations/sql/0017, 0023): a larger value is
# refused here, naming the limit, rather than by the server.
_INTEGER_LIMITS = frozenset({"concurrent_jobs", "search_concurrency"})
_INTEGER_MAX = 2**31 - 1


def seconds_to_midnight_utc(now: datetime | None = None) -> float:
    """Seconds until the next UTC day, when ``files_per_day`` starts again."""
    now = now or datetime.now(UTC)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, (tomorrow - now).total_seconds())


def _refusal(status: QuotaStatus, quota: Quota, used: int, what: str) -> QuotaExceededError:
    limit = status.limits.of(quota)
    retry = {
        Quota.CONCURRENT_JOBS: CONCURRENT_RETRY_AFTER_S,
        Quota.FILES_PER_DAY: seconds_to_midnight_utc(),
        Quota.STORED_CHUNKS: None,
    }[quota]
    return QuotaExceededError(
        quota.value,
        limit,
        used,
        f"quota {quota.value} of tenant {status.tenant!r} exceeded: {what} (limit {limit})",
        retry,
    )


def check_admission(status: QuotaStatus, *, created: int = 1) -> None:
    """Refuse a job whose creation passes a quota. ``status`` is read after the job was
    written: its usage counts the ``created`` job among the active ones (0: before any
    is written, to refuse early when no new job could pass)."""
    others = max(0, status.usage.concurrent_jobs - created)
    if others >= status.limits.concurrent_jobs:
        raise _refusal(
            status, Quota.CONCURRENT_JOBS, others, f"{others} jobs are queued or running"
        )
    files = status.usage.files_per_day
    if files >= status.limits.files_per_day:
        raise _refusal(status, Quota.FILES_PER_DAY, files, f"{files} files indexed today (UTC)")
    chunks = status.usage.stored_chunks
    if chunks >= status.limits.stored_chunks:
        raise _refusal(status, Quota.STORED_CHUNKS, chunks, f"{chunks} chunks stored")


def files_refusal(tenant: str, limit: int, used: int, files: int) -> QuotaExceededError:
    """A job whose ``files`` would take today's files past ``limit``."""
    status = QuotaStatus(tenant, QuotaLimits(0, limit, 0), QuotaUsage(0, used, 0))
    return _refusal(
        status,
        Quota.FILES_PER_DAY,
        used,
        f"this job's {files} files to index and the {used} indexed today (UTC) pass it",
    )

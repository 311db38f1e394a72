"""The in-memory fake of the quota store: InMemoryQuotaStore, the same contract as the
real adapter (pipeline.adapters.postgres.quota_store) without its server; the contract
tests run both. Active jobs and stored chunks come from the callables it is given (the
real adapter counts the rows of the jobs and chunks tables).

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime

from pipeline.jobs import check_tenant
from pipeline.quotas import (
    QuotaLimits,
    QuotaStatus,
    QuotaUsage,
    check_limit_values,
    files_refusal,
)
from pipeline.statements.quota_sql import LIMIT_COLUMNS


def _today() -> date:
    return datetime.now(UTC).date()


class InMemoryQuotaStore:
    def __init__(
        self,
        *,
        active_jobs: Callable[[str], int] = lambda _tenant: 0,
        stored_chunks: Callable[[str], int] = lambda _tenant: 0,
    ) -> None:
        self._lock = threading.Lock()
        self._limits: dict[str, dict[str, int | None]] = {}
        self._charges: dict[str, tuple[str, date, int]] = {}  # job id -> tenant, day, files
        self._active_jobs = active_jobs
        self._stored_chunks = stored_chunks

    def _files_today(self, tenant: str) -> int:
        today = _today()
        return sum(f for t, d, f in self._charges.values() if t == tenant and d == today)

    def status(self, tenant: str, defaults: QuotaLimits) -> QuotaStatus:
        with self._lock:
            files = self._files_today(tenant)
            overrides = dict(self._limits.get(tenant, {}))
        usage = QuotaUsage(self._active_jobs(tenant), files, self._stored_chunks(tenant))
        return QuotaStatus(tenant, defaults.merged(overrides), usage)

    def charge_files(self, tenant: str, job_id: str, files: int, defaults: QuotaLimits) -> int:
        with self._lock:
            used = self._files_today(tenant)
            if job_id in self._charges:
                return used
            limit = self._limits.get(tenant, {}).get("files_per_day")
            limit = defaults.files_per_day if limit is None else limit
            if used + files > limit:
                raise files_refusal(tenant, limit, used, files)
            self._charges[job_id] = (tenant, _today(), files)
            return used + files

    def overrides(self, tenant: str) -> dict[str, int | None]:
        check_tenant(tenant)
        with self._lock:
            found = self._limits.get(tenant, {})
            return {c: found.get(c) for c in LIMIT_COLUMNS}

    def set_limits(self, tenant: str, changes: Mapping[str, int | None]) -> dict[str, int | None]:
        check_tenant(tenant)
        checked = check_limit_values(changes)
        with self._lock:
            self._limits.setdefault(tenant, {}).update(checked)
        return self.overrides(tenant)

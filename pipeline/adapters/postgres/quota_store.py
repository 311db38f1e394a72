"""PgQuotaStore: the QuotaStore port on ``tenant_quotas`` and ``quota_charges``
(statements: pipeline.statements.quota_sql; rules: pipeline.quotas).

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.adapters.postgres.base import PgStore, execute, open_checked_pool
from pipeline.jobs import check_tenant
from pipeline.quotas import (
    QuotaLimits,
    QuotaStatus,
    QuotaUsage,
    check_limit_values,
    files_refusal,
)
from pipeline.statements import job_sql, quota_sql


class PgQuotaStore(PgStore):
    """Quotas of every tenant. Call :meth:`close` when done."""

    def __init__(self, dsn: str, *, pool_size: int = 2, timeout_s: float = 5.0) -> None:
        self._pool = open_checked_pool(
            dsn,
            table="tenant_quotas",
            column="search_concurrency",  # the newest column (migrations/sql/0023)
            pool_size=pool_size,
            timeout_s=timeout_s,
            name="quarry-quota-store",
        )

    def status(self, tenant: str, defaults: QuotaLimits) -> QuotaStatus:
        with self._connection() as conn:
            row = execute(conn, quota_sql.status(tenant)).fetchone()
        assert row is not None, "the status query answers one row"
        jobs, files, chunks, *limits = row
        overrides = dict(zip(quota_sql.LIMIT_COLUMNS, limits, strict=True))
        return QuotaStatus(
            tenant, defaults.merged(overrides), QuotaUsage(int(jobs), int(files), int(chunks))
        )

    def charge_files(self, tenant: str, job_id: str, files: int, defaults: QuotaLimits) -> int:
        with self._transaction() as conn:
            execute(conn, quota_sql.lock_tenant(tenant))
            before = execute(conn, quota_sql.charged(job_id)).fetchone()
            used, limit = execute(conn, quota_sql.files_today(tenant)).fetchone() or (0, None)
            used = int(used)
            if before is not None:  # this job was charged already (its ingest ran again)
                return used
            limit = defaults.files_per_day if limit is None else int(limit)
            if used + files > limit:
                raise files_refusal(tenant, limit, used, files)
            execute(conn, quota_sql.charge(tenant, job_id, files))
            execute(conn, quota_sql.forget_old(tenant))
        return used + files

    def overrides(self, tenant: str) -> dict[str, int | None]:
        check_tenant(tenant)
        with self._connection() as conn:
            row = execute(conn, quota_sql.overrides(tenant)).fetchone()
        values = row or (None,) * len(quota_sql.LIMIT_COLUMNS)
        return dict(zip(quota_sql.LIMIT_COLUMNS, values, strict=True))

    def set_limits(self, tenant: str, changes: Mapping[str, int | None]) -> dict[str, int | None]:
        check_tenant(tenant)
        checked = check_limit_values(changes)
        with self._transaction() as conn:
            execute(conn, job_sql.ensure_tenant(tenant))
            execute(conn, quota_sql.upsert(tenant, checked))
        return self.overrides(tenant)

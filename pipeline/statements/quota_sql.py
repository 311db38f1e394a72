"""SQL of the quota store (``tenant_quotas``, ``quota_charges``: migrations/sql/0017), as
plain strings and parameter dicts. The day of a charge is the UTC date.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.statements.sql import Query

LIMIT_COLUMNS = ("concurrent_jobs", "files_per_day", "stored_chunks", "search_concurrency")
KEEP_DAYS = 7  # charges older than this are removed when the tenant is charged again


def status(tenant: str) -> Query:
    """One row: active jobs, files charged today, chunks stored, then the limits set
    (NULL: not set). The chunk count reads the tenant's repositories' rows by the
    (repository_id, ...) index."""
    return Query(
        """
SELECT
  (SELECT count(*) FROM jobs
    WHERE tenant_id = %(tenant)s AND status IN ('queued', 'running')),
  (SELECT coalesce(sum(files), 0) FROM quota_charges
    WHERE tenant_id = %(tenant)s AND day = (now() AT TIME ZONE 'UTC')::date),
  (SELECT count(*) FROM chunks
    WHERE repository_id IN (SELECT id FROM repositories WHERE tenant_id = %(tenant)s)),
  q.concurrent_jobs, q.files_per_day, q.stored_chunks, q.search_concurrency
FROM (SELECT 1) AS one
LEFT JOIN tenant_quotas AS q ON q.tenant_id = %(tenant)s
""",
        {"tenant": tenant},
    )


def lock_tenant(tenant: str) -> Query:
    """Serialise the tenant's charges for the transaction (check and charge are one)."""
    return Query(
        "SELECT pg_advisory_xact_lock(hashtextextended('quarry.quota:' || %(tenant)s, 0))",
        {"tenant": tenant},
    )


def charged(job_id: str) -> Query:
    return Query("SELECT files FROM quota_charges WHERE job_id = %(job)s", {"job": job_id})


def files_today(tenant: str) -> Query:
    return Query(
        """
SELECT coalesce(sum(c.files), 0),
       (SELECT files_per_day FROM tenant_quotas WHERE tenant_id = %(tenant)s)
FROM quota_charges AS c WHERE c.tenant_id = %(tenant)s AND c.day = (now() AT TIME ZONE 'UTC')::date
""",
        {"tenant": tenant},
    )


def charge(tenant: str, job_id: str, files: int) -> Query:
    return Query(
        """
INSERT INTO quota_charges (job_id, tenant_id, day, files)
VALUES (%(job)s, %(tenant)s, (now() AT TIME ZONE 'UTC')::date, %(files)s)
ON CONFLICT (job_id) DO NOTHING
""",
        {"job": job_id, "tenant": tenant, "files": files},
    )


def forget_old(tenant: str) -> Query:
    return Query(
        "DELETE FROM quota_charges"
        " WHERE tenant_id = %(tenant)s AND day < (now() AT TIME ZONE 'UTC')::date - %(days)s",
        {"tenant": tenant, "days": KEEP_DAYS},
    )


def overrides(tenant: str) -> Query:
    return Query(
        "SELECT concurrent_jobs, files_per_day, stored_chunks, search_concurrency"
        " FROM tenant_quotas WHERE tenant_id = %(tenant)s",
        {"tenant": tenant},
    )


def upsert(tenant: str, changes: Mapping[str, int | None]) -> Query:
    """Set the named limits (None unsets one); the limits not named keep their values."""
    unknown = set(changes) - set(LIMIT_COLUMNS)
    if unknown or not changes:
        raise ValueError(f"quota columns: {sorted(unknown) or 'none given'}")
    params: dict[str, object] = {"tenant": tenant}
    for column in LIMIT_COLUMNS:
        params[column] = changes.get(column)
        params[f"set_{column}"] = column in changes
    return Query(
        """
INSERT INTO tenant_quotas
  (tenant_id, concurrent_jobs, files_per_day, stored_chunks, search_concurrency)
VALUES (%(tenant)s, %(concurrent_jobs)s, %(files_per_day)s, %(stored_chunks)s,
  %(search_concurrency)s)
ON CONFLICT (tenant_id) DO UPDATE SET
  concurrent_jobs = CASE WHEN %(set_concurrent_jobs)s
    THEN EXCLUDED.concurrent_jobs ELSE tenant_quotas.concurrent_jobs END,
  files_per_day = CASE WHEN %(set_files_per_day)s
    THEN EXCLUDED.files_per_day ELSE tenant_quotas.files_per_day END,
  stored_chunks = CASE WHEN %(set_stored_chunks)s
    THEN EXCLUDED.stored_chunks ELSE tenant_quotas.stored_chunks END,
  search_concurrency = CASE WHEN %(set_search_concurrency)s
    THEN EXCLUDED.search_concurrency ELSE tenant_quotas.search_concurrency END,
  updated_at = now()
""",
        params,
    )

"""Settings fields: the default quotas of a tenant (pipeline/quotas.py). An operator sets
a tenant's own with ``quarry quota set``; these apply where none is set.

A group of :class:`config.settings.QuarrySettings`, whose fields they are (flat:
``settings.<field>``, env var ``QUARRY_<FIELD>``); validators live on that class.

Must not import: anything of Quarry but config (config is the leaf).
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class QuotaFields(BaseModel):
    """Settings: tenant quotas (defaults)."""

    quota_concurrent_jobs: int = Field(
        20,
        ge=0,
        le=1_000_000,
        description="Default quota: a tenant's jobs queued or running at once; a new job past "
        "it is refused with 429.",
    )
    quota_files_per_day: int = Field(
        1_000_000,
        ge=0,
        description="Default quota: files a tenant's jobs index (added or changed) per UTC "
        "day, charged whole at each job's ingest; a job that would pass it fails naming it, "
        "and new jobs are refused with 429 once it is spent.",
    )
    quota_stored_chunks: int = Field(
        50_000_000,
        ge=0,
        description="Default quota: chunks a tenant's repositories hold; new jobs are "
        "refused with 403 at or past it.",
    )
    quota_status_cache_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="How long an API process keeps a tenant's quota status for the "
        "X-Quota-Remaining-* headers (a job's creation reads it afresh).",
    )

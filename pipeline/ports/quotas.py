"""The QuotaStore port: tenants' quota limits and what they have used (pipeline.quotas).

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pipeline.quotas import QuotaLimits, QuotaStatus


class QuotaStore(Protocol):
    """Limits set by an operator per tenant, and the usage they are checked against."""

    def status(self, tenant: str, defaults: QuotaLimits) -> QuotaStatus:
        """The tenant's limits (``defaults`` where none is set) and usage now, read in
        one statement: active jobs, files charged today (UTC), chunks stored."""
        ...

    def charge_files(self, tenant: str, job_id: str, files: int, defaults: QuotaLimits) -> int:
        """Charge a job's ``files`` to the tenant's day, once per job (a job charged
        before is not charged again); the files charged today after it.
        QuotaExceededError (nothing charged) when they would pass ``files_per_day``."""
        ...

    def overrides(self, tenant: str) -> dict[str, int | None]:
        """The limits set for the tenant (None: the default applies)."""
        ...

    def set_limits(self, tenant: str, changes: Mapping[str, int | None]) -> dict[str, int | None]:
        """Set (or, with None, unset) limits of the tenant; its overrides after."""
        ...

"""The real :class:`~pipeline.ports.WebhookKeyStore`: the ``webhook_keys`` table
(statements in pipeline/statements/webhook_sql.py). It holds generation numbers only.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.adapters.postgres.base import PgStore, execute, open_checked_pool
from pipeline.jobs import check_tenant
from pipeline.statements import webhook_sql
from pipeline.webhooks.tenant_keys import KeyState, check_overlap, overlap_conflict


class PgWebhookKeyStore(PgStore):
    """Webhook signing generations in PostgreSQL. Call :meth:`close` when done."""

    def __init__(self, dsn: str, *, pool_size: int = 2, timeout_s: float = 5.0) -> None:
        self._pool = open_checked_pool(
            dsn,
            table="webhook_keys",
            column="generation",
            pool_size=pool_size,
            timeout_s=timeout_s,
            name="quarry-webhook-key-store",
        )

    def state(self, tenant: str) -> KeyState:
        check_tenant(tenant)
        with self._connection() as conn:
            row = execute(conn, webhook_sql.state(tenant)).fetchone()
        return KeyState() if row is None else _state(row)

    def rotate(self, tenant: str, *, now: float, overlap_s: float) -> KeyState:
        check_tenant(tenant)
        until = now + overlap_s if check_overlap(overlap_s) > 0 else None
        with self._transaction() as conn:
            row = execute(conn, webhook_sql.rotate(tenant, now=now, previous_until=until))
            found = row.fetchone()
            if found is None:  # the upsert's guard: the previous overlap still runs
                current = execute(conn, webhook_sql.state(tenant)).fetchone()
                raise overlap_conflict(None if current is None else _state(current).previous_until)
        return _state(found)


def _state(row: Sequence[Any]) -> KeyState:
    return KeyState(
        generation=int(row[0]),
        previous_until=None if row[1] is None else float(row[1]),
        rotated_at=None if row[2] is None else float(row[2]),
    )

"""SQL of the tenants' webhook signing generations (migrations/sql/0013_webhook_keys.sql):
statement texts and parameters, no I/O. Every statement names its tenant.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

from pipeline.statements.sql import Query


def state(tenant: str) -> Query:
    return Query(
        "SELECT generation, extract(epoch from previous_until)::float8,"
        " extract(epoch from rotated_at)::float8 FROM webhook_keys WHERE tenant_id = %(tenant)s",
        {"tenant": tenant},
    )


def rotate(tenant: str, *, now: float, previous_until: float | None) -> Query:
    """One statement, so that two rotations at once make two generations, not one; it
    returns no row for a rotation with an overlap while the previous overlap still runs."""
    return Query(
        "INSERT INTO webhook_keys (tenant_id, generation, previous_until, rotated_at)"
        " VALUES (%(tenant)s, 2, to_timestamp(%(until)s), to_timestamp(%(now)s))"
        " ON CONFLICT (tenant_id) DO UPDATE SET generation = webhook_keys.generation + 1,"
        " previous_until = EXCLUDED.previous_until, rotated_at = EXCLUDED.rotated_at"
        # No row back: a rotation with an overlap while the previous overlap still runs.
        " WHERE EXCLUDED.previous_until IS NULL OR webhook_keys.previous_until IS NULL"
        " OR webhook_keys.previous_until <= EXCLUDED.rotated_at"
        " RETURNING generation, extract(epoch from previous_until)::float8,"
        " extract(epoch from rotated_at)::float8",
        {"tenant": tenant, "now": now, "until": previous_until},
    )

"""The real :class:`~pipeline.ports.PushHookStore`: the ``push_hooks`` table
(statements in pipeline/statements/push_hook_sql.py). It holds no secret.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from pipeline.adapters.postgres.base import PgStore, execute, open_checked_pool
from pipeline.errors import ConflictError, InvalidInputError
from pipeline.jobs import check_tenant
from pipeline.push_hooks.hooks import Platform, PushHook, is_hook_id
from pipeline.statements import push_hook_sql


class PgPushHookStore(PgStore):
    """Push hooks in PostgreSQL. Call :meth:`close` when done."""

    def __init__(self, dsn: str, *, pool_size: int = 2, timeout_s: float = 5.0) -> None:
        self._pool = open_checked_pool(
            dsn,
            table="push_hooks",
            column="clone_url",
            pool_size=pool_size,
            timeout_s=timeout_s,
            name="quarry-push-hook-store",
        )

    def add(self, hook: PushHook) -> None:
        check_tenant(hook.tenant)
        try:
            with self._transaction() as conn:
                execute(conn, push_hook_sql.add(hook))
        except InvalidInputError as exc:  # map_psycopg_errors keeps the driver's as cause
            if not isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                raise
            raise conflict(hook) from None

    def get(self, hook_id: str) -> PushHook | None:
        if not is_hook_id(hook_id):
            return None
        with self._connection() as conn:
            row = execute(conn, push_hook_sql.get(hook_id)).fetchone()
        return None if row is None else _hook(row)

    def list(self, tenant: str, repo: str | None = None) -> list[PushHook]:
        check_tenant(tenant)
        with self._connection() as conn:
            return [_hook(r) for r in execute(conn, push_hook_sql.list_(tenant, repo))]

    def remove(self, tenant: str, hook_id: str) -> bool:
        check_tenant(tenant)
        with self._transaction() as conn:
            return bool(execute(conn, push_hook_sql.remove(tenant, hook_id)).rowcount)


def conflict(hook: PushHook) -> ConflictError:
    return ConflictError(
        f"repo: {hook.repo!r} has a {hook.platform.value} push hook already; remove it"
        " (quarry push-hook remove) to make a new one"
    )


def _hook(row: Sequence[Any]) -> PushHook:
    return PushHook(
        hook_id=row[0],
        tenant=row[1],
        repo=row[2],
        platform=Platform(row[3]),
        clone_url=row[4],
        credential=row[5],
        created_at=float(row[6]),
    )

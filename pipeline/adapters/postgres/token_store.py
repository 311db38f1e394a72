"""PgTokenStore: the TokenStore port on ``api_tokens``, plus ``revoke``.

Only a token's sha256 digest is stored and looked up (``token_sha256`` is unique), never
the clear token; a token is shown once, when ``create`` makes it. The statement texts
live in ``pipeline.statements.job_sql``; tokens are made and hashed by
``pipeline.statements.job_rows``.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from pipeline.adapters.postgres.base import PgStore, execute, open_checked_pool
from pipeline.errors import InvalidInputError
from pipeline.jobs import check_tenant
from pipeline.statements import job_rows, job_sql


class PgTokenStore(PgStore):
    """API tokens of every tenant. ``pool_size`` bounds the connections; ``timeout_s``
    bounds connecting and waiting for a pooled connection. Call :meth:`close` when done."""

    def __init__(self, dsn: str, *, pool_size: int = 2, timeout_s: float = 5.0) -> None:
        self._pool = open_checked_pool(
            dsn,
            table="api_tokens",
            column="token_sha256",
            pool_size=pool_size,
            timeout_s=timeout_s,
            name="quarry-token-store",
        )

    def create(self, tenant: str, label: str = "") -> str:
        check_tenant(tenant)
        job_rows.check_label(label)
        token = job_rows.new_token()
        with self._transaction() as conn:
            execute(conn, job_sql.ensure_tenant(tenant))
            execute(conn, job_sql.insert_token(tenant, job_rows.token_digest(token), label))
        return token

    def register(self, tenant: str, token: str, label: str = "") -> None:
        """Idempotent for the same tenant (a revoked token stays revoked);
        :class:`InvalidInputError` when the token is another tenant's."""
        job_rows.check_token(tenant, token)
        job_rows.check_label(label)
        digest = job_rows.token_digest(token)
        with self._transaction() as conn:
            execute(conn, job_sql.ensure_tenant(tenant))
            execute(conn, job_sql.insert_token(tenant, digest, label))
            owner = execute(conn, job_sql.token_owner(digest)).fetchone()
            if owner is None or owner[0] != tenant:  # raised inside: nothing is kept
                raise InvalidInputError(
                    f"the token given for tenant {tenant!r} is already another tenant's"
                )

    def authenticate(self, token: str) -> str | None:
        if not token or len(token) > job_rows.TOKEN_MAX_CHARS:
            return None
        with self._connection() as conn:
            row = execute(conn, job_sql.authenticate(job_rows.token_digest(token))).fetchone()
        return None if row is None else str(row[0])

    def revoke(self, token: str) -> bool:
        """Revoke a token for good; False when it is unknown or was already revoked."""
        if not token or len(token) > job_rows.TOKEN_MAX_CHARS:
            return False
        with self._transaction() as conn:
            query = job_sql.revoke_token(job_rows.token_digest(token))
            return execute(conn, query).rowcount == 1

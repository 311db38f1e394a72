"""PgTokenStore: the TokenStore port on ``api_tokens``.

Only a token's sha256 digest is stored and looked up (``token_sha256`` is unique), never
the clear token; a token is shown once, when ``create`` or ``issue`` makes it, and is
listed and revoked afterwards by its public ``token_id``. The statement texts live in
``pipeline.statements.token_sql``; tokens are made and hashed by
``pipeline.statements.job_rows``, scopes checked by ``pipeline.tokens``.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.adapters.postgres.base import PgStore, execute, open_checked_pool
from pipeline.errors import InvalidInputError
from pipeline.jobs import check_tenant
from pipeline.statements import job_rows, job_sql, token_sql
from pipeline.tokens import (
    SCOPES,
    ApiToken,
    IssuedToken,
    TokenGrant,
    check_scopes,
    new_token_id,
    parse_token_id,
)


class PgTokenStore(PgStore):
    """API tokens of every tenant. ``pool_size`` bounds the connections; ``timeout_s``
    bounds connecting and waiting for a pooled connection. Call :meth:`close` when done."""

    def __init__(self, dsn: str, *, pool_size: int = 2, timeout_s: float = 5.0) -> None:
        self._pool = open_checked_pool(
            dsn,
            table="api_tokens",
            column="scopes",
            pool_size=pool_size,
            timeout_s=timeout_s,
            name="quarry-token-store",
        )

    def create(self, tenant: str, label: str = "", scopes: Sequence[str] = SCOPES) -> str:
        return self.issue(tenant, label, scopes).token

    def issue(self, tenant: str, label: str = "", scopes: Sequence[str] = SCOPES) -> IssuedToken:
        check_tenant(tenant)
        job_rows.check_label(label)
        checked = check_scopes(scopes)
        token = job_rows.new_token()
        query = token_sql.insert_token(
            tenant, job_rows.token_digest(token), label, new_token_id(), checked
        )
        with self._transaction() as conn:
            execute(conn, job_sql.ensure_tenant(tenant))
            row = execute(conn, query).fetchone()
        assert row is not None, "a fresh token's digest is new"  # 256 random bits
        return IssuedToken(token, job_rows.token_from_row(row))

    def register(self, tenant: str, token: str, label: str = "") -> None:
        """Idempotent for the same tenant (a revoked token stays revoked);
        :class:`InvalidInputError` when the token is another tenant's."""
        job_rows.check_token(tenant, token)
        job_rows.check_label(label)
        digest = job_rows.token_digest(token)
        with self._transaction() as conn:
            execute(conn, job_sql.ensure_tenant(tenant))
            execute(conn, token_sql.insert_token(tenant, digest, label, new_token_id(), SCOPES))
            owner = execute(conn, token_sql.token_owner(digest)).fetchone()
            if owner is None or owner[0] != tenant:  # raised inside: nothing is kept
                raise InvalidInputError(
                    f"the token given for tenant {tenant!r} is already another tenant's"
                )

    def authenticate(self, token: str) -> str | None:
        grant = self.identify(token)
        return None if grant is None else grant.tenant

    def identify(self, token: str) -> TokenGrant | None:
        if not token or len(token) > job_rows.TOKEN_MAX_CHARS:
            return None
        with self._connection() as conn:
            row = execute(conn, token_sql.identify(job_rows.token_digest(token))).fetchone()
        if row is None:
            return None
        return TokenGrant(str(row[0]), str(row[1]), frozenset(str(s) for s in row[2]))

    def revoke(self, token: str) -> bool:
        """Revoke a token for good; False when it is unknown or was already revoked."""
        if not token or len(token) > job_rows.TOKEN_MAX_CHARS:
            return False
        with self._transaction() as conn:
            query = token_sql.revoke_token(job_rows.token_digest(token))
            return execute(conn, query).rowcount == 1

    def revoke_id(self, token_id: str, tenant: str | None = None) -> ApiToken | None:
        if parse_token_id(token_id) is None:
            return None
        with self._transaction() as conn:
            row = execute(conn, token_sql.revoke_by_id(token_id, tenant)).fetchone()
        return None if row is None else job_rows.token_from_row(row)

    def list_tokens(self, tenant: str | None = None) -> list[ApiToken]:
        if tenant is not None:
            check_tenant(tenant)
        with self._connection() as conn:
            rows = execute(conn, token_sql.list_tokens(tenant)).fetchall()
        return [job_rows.token_from_row(row) for row in rows]

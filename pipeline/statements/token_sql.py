"""SQL of the API token store (``api_tokens``, migrations/sql/0002 and 0012), as plain
strings and parameter dicts. A token is looked up by its sha256 digest only; listed and
revoked by its public ``token_id``.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.statements.sql import Query
from pipeline.tokens import LAST_USED_RESOLUTION_S

# Every statement that answers records returns these columns, in the order of
# pipeline.statements.job_rows.token_from_row.
_SELECT = """
SELECT token_id, tenant_id, label, scopes, extract(epoch FROM created_at)::float8,
       extract(epoch FROM last_used_at)::float8, extract(epoch FROM revoked_at)::float8
FROM api_tokens
"""
_INSERT = """
INSERT INTO api_tokens (tenant_id, token_sha256, label, token_id, scopes)
VALUES (%(tenant)s, %(digest)s, %(label)s, %(token_id)s, %(scopes)s::text[])
ON CONFLICT (token_sha256) DO NOTHING
RETURNING token_id, tenant_id, label, scopes, extract(epoch FROM created_at)::float8,
          extract(epoch FROM last_used_at)::float8, extract(epoch FROM revoked_at)::float8
"""
_REVOKE_BY_ID = """
UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
WHERE token_id = %(token_id)s AND (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s::text)
RETURNING token_id, tenant_id, label, scopes, extract(epoch FROM created_at)::float8,
          extract(epoch FROM last_used_at)::float8, extract(epoch FROM revoked_at)::float8
"""

# One statement, so one round trip: the grant of a valid token, and last_used_at set
# when it was last set longer than the resolution ago (most lookups write nothing).
_IDENTIFY = """
WITH hit AS (
    SELECT id, tenant_id, token_id, scopes, last_used_at FROM api_tokens
    WHERE token_sha256 = %(digest)s AND revoked_at IS NULL
), touched AS (
    UPDATE api_tokens AS t SET last_used_at = now() FROM hit
    WHERE t.id = hit.id AND (hit.last_used_at IS NULL
        OR hit.last_used_at < now() - make_interval(secs => %(resolution_s)s))
)
SELECT tenant_id, token_id, scopes FROM hit
"""


def insert_token(
    tenant: str, digest: bytes, label: str, token_id: str, scopes: Sequence[str]
) -> Query:
    return Query(
        _INSERT,
        {
            "tenant": tenant,
            "digest": digest,
            "label": label,
            "token_id": token_id,
            "scopes": list(scopes),
        },
    )


def token_owner(digest: bytes) -> Query:
    return Query(
        "SELECT tenant_id FROM api_tokens WHERE token_sha256 = %(digest)s", {"digest": digest}
    )


def identify(digest: bytes) -> Query:
    return Query(_IDENTIFY, {"digest": digest, "resolution_s": LAST_USED_RESOLUTION_S})


def revoke_token(digest: bytes) -> Query:
    return Query(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_sha256 = %(digest)s"
        " AND revoked_at IS NULL",
        {"digest": digest},
    )


def list_tokens(tenant: str | None) -> Query:
    """The tenant's tokens (every tenant's with None: the operator's list), newest first."""
    return Query(
        _SELECT + " WHERE %(tenant)s::text IS NULL OR tenant_id = %(tenant)s::text"
        " ORDER BY created_at DESC, id DESC",
        {"tenant": tenant},
    )


def revoke_by_id(token_id: str, tenant: str | None) -> Query:
    """Revoke the token (of ``tenant`` only, unless None); the record, revoked now or
    before, or no row when there is no such token (of that tenant)."""
    return Query(
        _REVOKE_BY_ID,
        {"token_id": token_id, "tenant": tenant},
    )

"""SQL of the tenants' git credentials (migrations/sql/0010_credentials.sql): statement
texts and parameters, no I/O. Every statement names its tenant.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

from pipeline.credentials.material import StoredCredential
from pipeline.statements.sql import Query

_SELECT = (
    "SELECT tenant_id, name, kind, scope, username, known_hosts, fingerprint, key_id,"
    " ciphertext, extract(epoch from created_at), extract(epoch from rotated_at)"
    " FROM credentials WHERE tenant_id = %(tenant)s"
)


def _params(c: StoredCredential) -> dict[str, object]:
    return {
        "tenant": c.tenant,
        "name": c.name,
        "kind": c.kind.value,
        "scope": c.scope,
        "username": c.username,
        "known_hosts": c.known_hosts,
        "fingerprint": c.fingerprint,
        "key_id": c.key_id,
        "ciphertext": c.ciphertext,
        "created_at": c.created_at,
        "rotated_at": c.rotated_at,
    }


def add(credential: StoredCredential) -> Query:
    return Query(
        "INSERT INTO credentials (tenant_id, name, kind, scope, username, known_hosts,"
        " fingerprint, key_id, ciphertext, created_at, rotated_at) VALUES (%(tenant)s,"
        " %(name)s, %(kind)s, %(scope)s, %(username)s, %(known_hosts)s, %(fingerprint)s,"
        " %(key_id)s, %(ciphertext)s, to_timestamp(%(created_at)s),"
        " to_timestamp(%(rotated_at)s))",
        _params(credential),
    )


def replace(credential: StoredCredential) -> Query:
    return Query(
        "UPDATE credentials SET username = %(username)s, known_hosts = %(known_hosts)s,"
        " fingerprint = %(fingerprint)s, key_id = %(key_id)s, ciphertext = %(ciphertext)s,"
        " rotated_at = to_timestamp(%(rotated_at)s)"
        " WHERE tenant_id = %(tenant)s AND name = %(name)s",
        _params(credential),
    )


def get(tenant: str, name: str) -> Query:
    return Query(
        _SELECT + " AND name = %(name)s",
        {"tenant": tenant, "name": name},
    )


def list_(tenant: str) -> Query:
    return Query(
        _SELECT + " ORDER BY name",
        {"tenant": tenant},
    )


def sealed_with_other_key(key_id: str, limit: int) -> Query:
    return Query(
        "SELECT tenant_id, name, kind, scope, username, known_hosts, fingerprint, key_id,"
        " ciphertext, extract(epoch from created_at), extract(epoch from rotated_at)"
        " FROM credentials WHERE key_id <> %(key_id)s ORDER BY tenant_id, name"
        " LIMIT %(limit)s",
        {"key_id": key_id, "limit": int(limit)},
    )


def remove(tenant: str, name: str) -> Query:
    return Query(
        "DELETE FROM credentials WHERE tenant_id = %(tenant)s AND name = %(name)s",
        {"tenant": tenant, "name": name},
    )

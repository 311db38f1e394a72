"""The real :class:`~pipeline.ports.CredentialStore`: the ``credentials`` table
(statements in pipeline/statements/credential_sql.py). It holds ciphertexts only; the
vault seals and opens them.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from pipeline.adapters.postgres.base import PgStore, execute, open_checked_pool
from pipeline.credentials.material import CredentialKind, StoredCredential
from pipeline.errors import ConflictError, InvalidInputError, NotFoundError
from pipeline.statements import credential_sql


class PgCredentialStore(PgStore):
    """Credentials in PostgreSQL. Call :meth:`close` when done."""

    def __init__(self, dsn: str, *, pool_size: int = 2, timeout_s: float = 5.0) -> None:
        self._pool = open_checked_pool(
            dsn,
            table="credentials",
            column="ciphertext",
            pool_size=pool_size,
            timeout_s=timeout_s,
            name="quarry-credential-store",
        )

    def add(self, credential: StoredCredential) -> None:
        try:
            with self._transaction() as conn:
                execute(conn, credential_sql.add(credential))
        except InvalidInputError as exc:  # map_psycopg_errors keeps the driver's as cause
            if not isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                raise
            raise ConflictError(
                f"credential {credential.name!r}: the tenant has a credential of that name"
                " or of that scope; rotate it or remove it first"
            ) from None

    def replace(self, credential: StoredCredential) -> None:
        with self._transaction() as conn:
            if execute(conn, credential_sql.replace(credential)).rowcount == 0:
                raise NotFoundError(f"credential {credential.name!r} not found")

    def sealed_with_other_key(self, key_id: str, limit: int) -> list[StoredCredential]:
        with self._connection() as conn:
            query = credential_sql.sealed_with_other_key(key_id, limit)
            return [_credential(r) for r in execute(conn, query)]

    def get(self, tenant: str, name: str) -> StoredCredential | None:
        with self._connection() as conn:
            row = execute(conn, credential_sql.get(tenant, name)).fetchone()
        return None if row is None else _credential(row)

    def list(self, tenant: str) -> list[StoredCredential]:
        with self._connection() as conn:
            return [_credential(r) for r in execute(conn, credential_sql.list_(tenant))]

    def remove(self, tenant: str, name: str) -> bool:
        with self._transaction() as conn:
            return bool(execute(conn, credential_sql.remove(tenant, name)).rowcount)


def _credential(row: Sequence[Any]) -> StoredCredential:
    return StoredCredential(
        tenant=row[0],
        name=row[1],
        kind=CredentialKind(row[2]),
        scope=row[3],
        username=row[4],
        known_hosts=row[5],
        fingerprint=row[6],
        key_id=row[7],
        ciphertext=bytes(row[8]),
        created_at=float(row[9]),
        rotated_at=float(row[10]),
    )

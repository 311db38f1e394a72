"""The in-memory fake of the credential store: the same contract as PgCredentialStore
(pipeline.adapters.postgres.credential_store) without its server; the contract tests
run both.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import threading

from pipeline.credentials.material import StoredCredential
from pipeline.errors import ConflictError, NotFoundError


class InMemoryCredentialStore:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], StoredCredential] = {}
        self._lock = threading.Lock()

    def add(self, credential: StoredCredential) -> None:
        with self._lock:
            taken = any(
                c.tenant == credential.tenant and c.scope == credential.scope
                for c in self._rows.values()
            )
            if taken or (credential.tenant, credential.name) in self._rows:
                raise ConflictError(
                    f"credential {credential.name!r}: the tenant has a credential of that name"
                    " or of that scope; rotate it or remove it first"
                )
            self._rows[credential.tenant, credential.name] = credential

    def replace(self, credential: StoredCredential) -> None:
        key = (credential.tenant, credential.name)
        with self._lock:
            old = self._rows.get(key)
            if old is None:
                raise NotFoundError(f"credential {credential.name!r} not found")
            # Like the UPDATE: kind, scope and creation time stay those of the row.
            self._rows[key] = StoredCredential(
                tenant=old.tenant,
                name=old.name,
                kind=old.kind,
                scope=old.scope,
                username=credential.username,
                known_hosts=credential.known_hosts,
                fingerprint=credential.fingerprint,
                key_id=credential.key_id,
                ciphertext=credential.ciphertext,
                created_at=old.created_at,
                rotated_at=credential.rotated_at,
            )

    def sealed_with_other_key(self, key_id: str, limit: int) -> list[StoredCredential]:
        with self._lock:
            found = sorted(self._rows.items())
        return [c for _, c in found if c.key_id != key_id][:limit]

    def get(self, tenant: str, name: str) -> StoredCredential | None:
        with self._lock:
            return self._rows.get((tenant, name))

    def list(self, tenant: str) -> list[StoredCredential]:
        with self._lock:
            return sorted(
                (c for c in self._rows.values() if c.tenant == tenant), key=lambda c: c.name
            )

    def remove(self, tenant: str, name: str) -> bool:
        with self._lock:
            return self._rows.pop((tenant, name), None) is not None

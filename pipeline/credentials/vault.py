"""The credentials of every tenant: added, rotated, listed and removed for the API, and
opened for the fetcher by the URL a job clones.

Secrets are sealed (:mod:`pipeline.credentials.cipher`) before they reach the
:class:`~pipeline.ports.CredentialStore` and opened only in :meth:`CredentialVault.for_url`.
Every lookup is by tenant: another tenant's credential reads as missing (the same 404
as a name that was never used), so a tenant learns nothing of the others' names.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from pipeline.credentials.cipher import CredentialCipher, Sealed
from pipeline.credentials.material import (
    CredentialKind,
    GitCredential,
    StoredCredential,
    check_known_hosts,
    check_name,
    check_private_key,
    check_token,
    check_username,
)
from pipeline.credentials.scopes import best_scope, parse_scope
from pipeline.errors import InvalidInputError, NotFoundError
from pipeline.ports import CredentialStore


def _context(tenant: str, name: str, kind: CredentialKind) -> bytes:
    return f"quarry-credential:v1\0{tenant}\0{name}\0{kind.value}".encode()


class CredentialVault:
    def __init__(
        self,
        store: CredentialStore,
        cipher: CredentialCipher,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._cipher = cipher
        self._clock = clock

    def add(
        self,
        tenant: str,
        *,
        name: str,
        kind: CredentialKind,
        scope: str,
        secret: str,
        username: str | None = None,
        known_hosts: str | None = None,
    ) -> StoredCredential:
        """A new credential; ConflictError when the tenant has that name or scope."""
        check_name(name)
        address = parse_scope(scope)
        if address.scheme != kind.scheme:
            raise InvalidInputError(f"scope: a {kind.value} credential needs a {kind.scheme} scope")
        now = self._clock()
        record = self._sealed(
            tenant,
            name,
            kind,
            address.text(),
            secret=secret,
            username=username,
            known_hosts=known_hosts,
            created_at=now,
            rotated_at=now,
        )
        self._store.add(record)
        return record

    def rotate(
        self,
        tenant: str,
        name: str,
        *,
        secret: str,
        username: str | None = None,
        known_hosts: str | None = None,
    ) -> StoredCredential:
        """The credential with a new secret (and username or pinned host keys when given;
        the old ones otherwise), sealed with the current key."""
        old = self._get(tenant, name)
        record = self._sealed(
            tenant,
            name,
            old.kind,
            old.scope,
            secret=secret,
            username=username or old.username,
            known_hosts=known_hosts or old.known_hosts,
            created_at=old.created_at,
            rotated_at=self._clock(),
        )
        self._store.replace(record)
        return record

    def get(self, tenant: str, name: str) -> StoredCredential:
        """The tenant's credential of that name; NotFoundError (404) if it has none."""
        return self._get(tenant, name)

    def list(self, tenant: str) -> list[StoredCredential]:
        return self._store.list(tenant)

    def remove(self, tenant: str, name: str) -> None:
        if not self._store.remove(tenant, name):
            raise NotFoundError(f"credential {name!r} not found")

    def for_url(self, tenant: str, url: str) -> GitCredential | None:
        """The tenant's credential whose scope covers ``url`` most narrowly, opened."""
        credentials = {c.scope: c for c in self._store.list(tenant)}
        scope = best_scope(url, list(credentials))
        if scope is None:
            return None
        found = credentials[scope]
        secret = self._cipher.open(
            Sealed(found.key_id, found.ciphertext),
            _context(tenant, found.name, found.kind),
            what=f"credential {found.name!r}",
        )
        return GitCredential(
            found.name,
            found.kind,
            found.scope,
            found.username,
            secret.decode("utf-8"),
            found.known_hosts,
        )

    def rekey(self, batch: int = 500) -> int:
        """Re-seal every credential sealed with a retired key under the current one (after
        a key rotation; the retired key must still be configured); how many."""
        done = 0
        while stale := self._store.sealed_with_other_key(self._cipher.current_key_id, batch):
            for old in stale:
                context = _context(old.tenant, old.name, old.kind)
                what = f"credential {old.name!r} of tenant {old.tenant!r}"
                plain = self._cipher.open(Sealed(old.key_id, old.ciphertext), context, what=what)
                sealed = self._cipher.seal(plain, context)
                self._store.replace(
                    dataclasses.replace(old, key_id=sealed.key_id, ciphertext=sealed.ciphertext)
                )
                done += 1
        return done

    def _get(self, tenant: str, name: str) -> StoredCredential:
        found = self._store.get(tenant, name)
        if found is None:
            raise NotFoundError(f"credential {name!r} not found")
        return found

    def _sealed(
        self,
        tenant: str,
        name: str,
        kind: CredentialKind,
        scope: str,
        *,
        secret: str,
        username: str | None,
        known_hosts: str | None,
        created_at: float,
        rotated_at: float,
    ) -> StoredCredential:
        fingerprint: str | None
        if kind is CredentialKind.HTTPS_TOKEN:
            secret, user, pinned, fingerprint = (
                check_token(secret),
                check_username(username),
                None,
                None,
            )
        else:
            secret, fingerprint = check_private_key(secret)
            pinned, _ = check_known_hosts(known_hosts, parse_scope(scope))
            user = None
        sealed = self._cipher.seal(secret.encode("utf-8"), _context(tenant, name, kind))
        return StoredCredential(
            tenant=tenant,
            name=name,
            kind=kind,
            scope=scope,
            username=user,
            known_hosts=pinned,
            fingerprint=fingerprint,
            key_id=sealed.key_id,
            ciphertext=sealed.ciphertext,
            created_at=created_at,
            rotated_at=rotated_at,
        )

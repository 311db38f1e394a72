"""The ports at the edges: migrations, circuit breakers, webhook delivery, the source
fetcher and the tenants' git credentials.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol, TypeVar

from pipeline.credentials.material import StoredCredential
from pipeline.jobs import (
    JobSource,
)
from pipeline.migration import AppliedMigration, Kind, Migration
from pipeline.push_hooks.hooks import PushHook
from pipeline.webhooks.tenant_keys import KeyState

T = TypeVar("T")


class MigrationTarget(Protocol):
    """A store that can hold migrations of one kind and records what it applied."""

    @property
    def kind(self) -> Kind:
        """Which migrations this store takes: ``sql`` or ``cypher``."""
        ...

    def lock(self) -> AbstractContextManager[None]:
        """Exclude other runners for the duration of a run."""
        ...

    def applied(self) -> dict[int, AppliedMigration]:
        """Migrations recorded as applied, by version."""
        ...

    def apply(self, migration: Migration) -> None:
        """Apply one migration and record it (atomically where the store allows)."""
        ...


class CircuitBreaker(Protocol):
    """Guards one store; its state is shared by every process that uses the store.

    ``call`` raises :class:`~pipeline.errors.BreakerOpenError` (with the time left
    until a trial call) while open. Only :class:`~pipeline.errors.TransientError`
    counts as a failure: a :class:`~pipeline.errors.PermanentError` passes through and
    leaves the count alone.
    """

    @property
    def store(self) -> str:
        """The store guarded: ``postgres``, ``graph``."""
        ...

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        ...

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` through the breaker."""
        ...


class WebhookSender(Protocol):
    """Delivers one signed event to a callback URL, once (the task retries)."""

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body``; returns the 2xx status. Raises
        :class:`~pipeline.errors.WebhookDeliveryError` on a timeout, a connection error or
        5xx, :class:`~pipeline.errors.WebhookRejectedError` on 4xx or a refused address."""
        ...


class SourceFetcher(Protocol):
    """Materialises a job's source as a folder of files under the data folder."""

    def fetch(
        self, source: JobSource, workdir: Path, *, tenant: str | None = None
    ) -> tuple[Path, str | None]:
        """The folder to index and the commit it is at (None when not a git checkout).
        ``workdir`` is an empty folder the fetcher may fill (clone, extracted archive);
        nothing is written outside it. ``tenant``: the job's, which an uploaded archive
        must belong to. Raises InvalidInputError naming the bad source."""
        ...


class BlobStore(Protocol):
    """Source files' bytes by sha256, reachable from every host (pipeline.sources.blobs).

    A blob is stored only under the sha256 of its bytes (InvalidInputError otherwise) and
    is verified again when read; storing one that exists is a no-op."""

    def missing(self, hashes: Sequence[str]) -> set[str]:
        """The hashes of ``hashes`` that have no blob."""
        ...

    def put_many(self, blobs: Mapping[str, bytes]) -> int:
        """Store ``{sha256: bytes}``; the number of blobs that were new."""
        ...

    def get_many(self, hashes: Sequence[str]) -> dict[str, bytes]:
        """The bytes of the blobs that exist among ``hashes``."""
        ...

    def collect(self, *, older_than_s: float, limit: int) -> int:
        """Delete up to ``limit`` blobs that no snapshot's files refer to and that were
        stored more than ``older_than_s`` ago; the number deleted."""
        ...


class CredentialStore(Protocol):
    """Tenants' git credentials, their secrets sealed (pipeline.credentials.vault).
    Every call is scoped to one tenant; another tenant's row is never seen."""

    def add(self, credential: StoredCredential) -> None:
        """Store a new credential; ConflictError when its tenant already has one of that
        name or of that scope."""
        ...

    def replace(self, credential: StoredCredential) -> None:
        """Overwrite the tenant's credential of that name (NotFoundError if none)."""
        ...

    def sealed_with_other_key(self, key_id: str, limit: int) -> list[StoredCredential]:
        """Up to ``limit`` credentials of any tenant sealed with a key other than
        ``key_id`` (the operator's re-encryption after a key rotation)."""
        ...

    def get(self, tenant: str, name: str) -> StoredCredential | None: ...

    def list(self, tenant: str) -> list[StoredCredential]:
        """The tenant's credentials by name."""
        ...

    def remove(self, tenant: str, name: str) -> bool:
        """Delete it; whether there was one."""
        ...


class WebhookKeyStore(Protocol):
    """Each tenant's webhook signing generation (pipeline.webhooks.tenant_keys); the
    secrets themselves are derived, never stored."""

    def state(self, tenant: str) -> KeyState:
        """The tenant's generation and overlap (generation 1 for a tenant never rotated)."""
        ...

    def rotate(self, tenant: str, *, now: float, overlap_s: float) -> KeyState:
        """Make the next generation current at ``now``; the previous one signs too for
        ``overlap_s`` seconds. Atomic: two rotations at once make two generations."""
        ...


class PushHookStore(Protocol):
    """The tenants' push hooks (pipeline.push_hooks). Listing and removal are scoped to
    one tenant; :meth:`get` is by the hook's opaque id (a delivery names no tenant)."""

    def add(self, hook: PushHook) -> None:
        """Store a new hook; ConflictError when its tenant already has one for that
        repository and platform."""
        ...

    def get(self, hook_id: str) -> PushHook | None: ...

    def list(self, tenant: str, repo: str | None = None) -> list[PushHook]:
        """The tenant's hooks (of one repository), by repository and platform."""
        ...

    def remove(self, tenant: str, hook_id: str) -> bool:
        """Delete the tenant's hook; whether it had it."""
        ...


class UploadStore(Protocol):
    """Uploaded archives in parts, reachable from every host (pipeline.sources.uploads)."""

    def begin(self, tenant: str) -> str:
        """A new, empty upload of ``tenant``; its id."""
        ...

    def add_part(self, upload_id: str, part_no: int, data: bytes) -> None: ...

    def finish(self, upload_id: str, size_bytes: int) -> None:
        """Mark the upload complete (only a complete one can be read)."""
        ...

    def read(self, upload_id: str, tenant: str) -> Iterator[bytes]:
        """The parts in order; InvalidInputError when the upload is unknown, incomplete
        or another tenant's."""
        ...

    def discard(self, upload_id: str) -> None: ...

    def collect(self, *, older_than_s: float, limit: int) -> int:
        """Delete up to ``limit`` uploads older than ``older_than_s`` that no queued or
        running job names; the number deleted."""
        ...

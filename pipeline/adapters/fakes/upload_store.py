"""The in-memory fake of the upload store: the same contract as PgUploadStore
(pipeline.adapters.postgres.upload_store) without its server; the contract tests run
both. ``active`` says which upload ids queued or running jobs name; ``clock`` is
injectable.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pipeline.errors import InvalidInputError


@dataclass
class _Upload:
    tenant: str
    created: float
    parts: dict[int, bytes] = field(default_factory=dict)
    complete: bool = False


class InMemoryUploadStore:
    def __init__(
        self,
        *,
        active: Callable[[], set[str]] = set,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()
        self._active = active
        self._clock = clock

    def begin(self, tenant: str) -> str:
        upload_id = str(uuid.uuid4())
        with self._lock:
            self._uploads[upload_id] = _Upload(tenant, self._clock())
        return upload_id

    def add_part(self, upload_id: str, part_no: int, data: bytes) -> None:
        with self._lock:
            self._uploads[upload_id].parts[part_no] = bytes(data)

    def finish(self, upload_id: str, size_bytes: int) -> None:
        with self._lock:
            self._uploads[upload_id].complete = True

    def read(self, upload_id: str, tenant: str) -> Iterator[bytes]:
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None or upload.tenant != tenant or not upload.complete:
                raise InvalidInputError(f"upload {upload_id} is unknown or incomplete")
            parts = [upload.parts[n] for n in sorted(upload.parts)]
        yield from parts

    def discard(self, upload_id: str) -> None:
        with self._lock:
            self._uploads.pop(upload_id, None)

    def collect(self, *, older_than_s: float, limit: int) -> int:
        active, cutoff = self._active(), self._clock() - older_than_s
        with self._lock:
            doomed = [
                i for i, u in self._uploads.items() if u.created < cutoff and i not in active
            ][:limit]
            for upload_id in doomed:
                del self._uploads[upload_id]
        return len(doomed)

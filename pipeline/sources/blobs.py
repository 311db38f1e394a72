"""Source bytes that every host reaches: content-addressed blobs, and the readers of files.

The ingest stage is the only one that reads a job's checkout (a folder, a clone or an
extracted archive, on its own host's disk). It uploads the bytes of every file to chunk
into a :class:`~pipeline.ports.BlobStore` keyed by their sha256 (one blob per distinct
content, shared by every repository and snapshot that holds it); the chunk stage, on any
host, reads them back from there. A blob is verified against its key when it is stored
and again when it is read, so no stage ever works on bytes other than those listed.

A *reader* gives a batch of listed files' bytes, by path; a file it cannot give maps to
the error that says why. :func:`blob_reader` reads the store (the pipeline's way);
:func:`local_reader` reads a tree on this host (tests, and tools that run on one host).

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.analysis.selection import read_regular_file
from pipeline.errors import InvalidInputError
from pipeline.models import FileVersion
from pipeline.ports import BlobStore

Reader = Callable[[Sequence[FileVersion]], dict[str, bytes | Exception]]
COMPRESSION_LEVEL = 6
UPLOAD_BATCH_BYTES = 8 * 2**20  # one store call carries at most about this much
# Collection (the sweeper, once per COLLECT_INTERVAL_S whichever worker asks): blobs no
# snapshot's files hold and older than COLLECT_GRACE_S, COLLECT_LIMIT at a time. The
# grace covers an ingest that stored blobs whose snapshot rows are being replaced.
COLLECT_INTERVAL_S = 600.0
COLLECT_GRACE_S = 3600.0
COLLECT_LIMIT = 10_000


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(data: bytes) -> bytes:
    """What a blob store keeps of ``data``: zlib-compressed."""
    return zlib.compress(data, COMPRESSION_LEVEL)


def unpack(sha256: str, packed: bytes) -> bytes:
    """The bytes of blob ``sha256``; InvalidInputError when they are not that content."""
    try:
        data = zlib.decompress(packed)
    except zlib.error as exc:
        raise InvalidInputError(f"blob {sha256}: stored bytes are corrupt ({exc})") from exc
    if sha256_of(data) != sha256:
        raise InvalidInputError(f"blob {sha256}: stored bytes do not match their hash")
    return data


def check_blob(sha256: str, data: bytes) -> None:
    """A blob may be stored only under the sha256 of its bytes."""
    if sha256_of(data) != sha256:
        raise InvalidInputError(f"blob {sha256!r}: the bytes given have another sha256")


def local_reader(root: Path) -> Reader:
    """Reads listed files from the tree at ``root``, no more than one byte past their
    listed size (a file that grew since is not read whole)."""

    def read(files: Sequence[FileVersion]) -> dict[str, bytes | Exception]:
        found: dict[str, bytes | Exception] = {}
        for file in files:
            try:
                found[file.path] = read_regular_file(root / file.path, file.size_bytes + 1)
            except OSError as exc:
                found[file.path] = exc
        return found

    return read


def blob_reader(store: BlobStore) -> Reader:
    """Reads listed files' bytes from ``store``, one call per batch."""

    def read(files: Sequence[FileVersion]) -> dict[str, bytes | Exception]:
        blobs = store.get_many(sorted({f.sha256 for f in files}))
        missing = InvalidInputError("its content is not in the blob store")
        return {f.path: blobs.get(f.sha256, missing) for f in files}

    return read


def upload(
    store: BlobStore,
    files: Sequence[FileVersion],
    read: Reader,
    *,
    batch_bytes: int = UPLOAD_BATCH_BYTES,
    on_unreadable: Callable[[FileVersion, str], None] | None = None,
) -> int:
    """Store the bytes of ``files`` that the store lacks, read with ``read``; the number
    of blobs stored. A file that cannot be read, or whose bytes are no longer the
    listed ones, is not stored and is passed to ``on_unreadable`` with the reason."""
    missing = store.missing(sorted({f.sha256 for f in files}))
    todo = [f for f in dict((f.sha256, f) for f in files).values() if f.sha256 in missing]
    stored = 0
    batch: list[FileVersion] = []
    size = 0
    for file in [*todo, None]:
        if file is not None and (not batch or size + file.size_bytes <= batch_bytes):
            batch.append(file)
            size += file.size_bytes
            continue
        stored += _store_batch(store, batch, read, on_unreadable)
        batch, size = ([file], file.size_bytes) if file is not None else ([], 0)
    return stored


def _store_batch(
    store: BlobStore,
    batch: Sequence[FileVersion],
    read: Reader,
    on_unreadable: Callable[[FileVersion, str], None] | None,
) -> int:
    if not batch:
        return 0
    contents = read(batch)
    blobs: dict[str, bytes] = {}
    for file in batch:
        data = contents.get(file.path)
        if (
            isinstance(data, bytes)
            and len(data) == file.size_bytes
            and sha256_of(data) == file.sha256
        ):
            blobs[file.sha256] = data
        elif on_unreadable is not None:
            reason = (
                f"unreadable: {getattr(data, 'strerror', None) or data}"
                if isinstance(data, Exception)
                else "changed while the job was running"
            )
            on_unreadable(file, reason)
    return store.put_many(blobs) if blobs else 0

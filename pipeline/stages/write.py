"""The write stage: one file version's chunks and vectors into the vector store.

A write is idempotent (an upsert keyed by the file version), so a message delivered
twice, after a worker was killed or a retry, leaves the same state. Writing settles
the file in its job; whoever settles the job's last file sends its COMMIT
(pipeline.stages.indexing.settle). A file whose message failed for good fails in its job
(:func:`fail_file`), so the job still ends.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.messages import decode_file_chunks, decode_vectors
from pipeline.models import StoredChunk
from pipeline.ports import VectorStore
from pipeline.stages.indexing import JobContext, record_error, settle


def write_file(ctx: JobContext | None, store: VectorStore, message: object) -> int:
    """Upsert one file version's chunks with their vectors; the rows written.

    ``ctx`` None: a write outside any job's bookkeeping (nothing is settled).
    PermanentError on a malformed message.
    """
    batch = decode_file_chunks(message)
    fields = message if isinstance(message, Mapping) else {}
    vectors = decode_vectors(fields.get("vectors"), len(batch.chunks))
    model_id = str(fields.get("model_id") or "")
    rows = [
        StoredChunk(chunk, batch.file.sha256, model_id, vector)
        for chunk, vector in zip(batch.chunks, vectors, strict=True)
    ]
    if batch.job_id and ctx is not None and ctx.board.cancelled(batch.job_id):
        return 0  # cancel stops new work; rows already written stay unsearchable
    store.ensure_repository(batch.repo)
    written = store.upsert_chunks(batch.repo, rows, whole_versions=True)
    if batch.job_id and ctx is not None:
        settle(ctx, batch.job_id, "files.written", [batch.file.path])
    return written


def fail_file(ctx: JobContext | None, message: object, exc: Exception) -> None:
    """A file's message that failed for good fails the file in its job (if it has one)."""
    if ctx is None or not isinstance(message, Mapping):
        return
    job_id, file = message.get("job_id"), message.get("file")
    if not isinstance(job_id, str) or not isinstance(file, Mapping):
        return
    path = str(file.get("path", ""))
    record_error(ctx, job_id, path, str(exc))
    settle(ctx, job_id, "files.failed", [path])

"""The write stage: file versions' chunks and vectors into the vector store.

A write message holds one file version (``message``) or several of one job
(``messages``: what one embed flush produced for the job, so that a job of many small
files costs a few write tasks, not one per file); its files' rows go in one upsert per
repository, and its files settle together. A write is idempotent (an upsert keyed by
the file version), so a message delivered twice, after a worker was killed or a retry,
leaves the same state. Writing settles
the file in its job; whoever settles the job's last file sends its COMMIT
(pipeline.stages.indexing.settle). A file whose message failed for good fails in its job
(:func:`fail_file`), so the job still ends.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.errors import InvalidInputError
from pipeline.messages import decode_file_chunks, decode_more_vectors, decode_vectors
from pipeline.models import RepoRef, StoredChunk
from pipeline.ports import VectorStore
from pipeline.stages.indexing import JobContext, record_error, settle
from pipeline.stages.vector_index import defers_index


def write_file(ctx: JobContext | None, store: VectorStore, message: object) -> int:
    """Upsert one file version's chunks with their vectors; the rows written.

    ``ctx`` None: a write outside any job's bookkeeping (nothing is settled).
    PermanentError on a malformed message.
    """
    return write_files(ctx, store, [message])


def write_files(
    ctx: JobContext | None,
    store: VectorStore,
    messages: Sequence[object],
    *,
    defer_index_max_files: int = 0,
) -> int:
    """Upsert the chunks of several file versions (one message each), one upsert per
    repository, and settle each job's files at once; the rows written. A malformed
    message fails the whole write (PermanentError) before anything is written. The rows
    of jobs of at most ``defer_index_max_files`` files wait for the vector index task
    (pipeline.stages.vector_index); those of larger jobs enter the index here."""
    if not messages:
        raise InvalidInputError("messages: expected at least one file's message")
    rows: dict[RepoRef, list[StoredChunk]] = {}
    paths: dict[str, list[str]] = {}
    cancelled: dict[str, bool] = {}
    for message in messages:
        batch = decode_file_chunks(message)
        fields = message if isinstance(message, Mapping) else {}
        vectors = decode_vectors(fields.get("vectors"), len(batch.chunks))
        model_id = str(fields.get("model_id") or "")
        if batch.job_id and ctx is not None:
            if batch.job_id not in cancelled:
                cancelled[batch.job_id] = ctx.board.cancelled(batch.job_id)
            if cancelled[batch.job_id]:
                continue  # cancel stops new work; rows already written stay unsearchable
            paths.setdefault(batch.job_id, []).append(batch.file.path)
        more = decode_more_vectors(fields.get("more_vectors"), len(batch.chunks))
        rows.setdefault(batch.repo, []).extend(
            StoredChunk(
                chunk,
                batch.file.sha256,
                model_id,
                vector,
                {other: got[index] for other, got in more.items()},
            )
            for index, (chunk, vector) in enumerate(zip(batch.chunks, vectors, strict=True))
        )
    defer = (
        ctx is not None
        and bool(paths)
        and all(
            defers_index(ctx.board.counters(job_id).get("files.todo"), defer_index_max_files)
            for job_id in paths
        )
    )
    written = 0
    for repo, repo_rows in rows.items():
        store.ensure_repository(repo)
        written += store.upsert_chunks(repo, repo_rows, whole_versions=True, defer_index=defer)
    if ctx is not None:
        for job_id, job_paths in paths.items():
            settle(ctx, job_id, "files.written", job_paths)
    return written


def fail_files(ctx: JobContext | None, messages: object, exc: Exception) -> None:
    """Each file of a failed multi-file write fails in its job."""
    if isinstance(messages, list):
        for message in messages:
            fail_file(ctx, message, exc)


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

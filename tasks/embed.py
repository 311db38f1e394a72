"""``quarry.embed.chunks``: chunks of many files and jobs embedded in shared device batches.

Each message holds one file version's chunks. celery-batches buffers messages and
flushes them together on ``flush_every`` messages or after ``flush_interval`` seconds
(50 ms by default, so a small job is not kept waiting); the flush embeds the distinct
contents of all of them through the cache in token-budget device batches
(pipeline.embedding), then sends one ``quarry.write.chunks`` message per file with its
vectors. The worker sets ``flush_every`` and ``flush_interval`` from the settings before
it consumes, and its prefetch (concurrency x multiplier) to at least twice
``flush_every`` so that a flush is never starved by the prefetch limit.

Messages are acknowledged after the flush returned (acks_late): a worker killed
mid-batch gives them back. A transient failure re-sends each message with its
``attempt`` raised and a backoff; past the limit, and for malformed messages, the
message is kept as a dead letter.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import shared_task
from celery_batches import Batches

from config.queues import EMBED_CHUNKS_TASK, WRITE_CHUNKS_TASK
from pipeline.errors import PermanentError, TransientError
from pipeline.indexing import JobContext
from pipeline.messages import FileChunks, decode_file_chunks, encode_file_chunks, encode_vectors
from tasks import metrics
from tasks.base import backoff_s, dead_letter
from tasks.context import current, send_tasks
from tasks.write import fail_file

log = logging.getLogger("quarry.embed")


@shared_task(  # type: ignore[untyped-decorator]
    base=Batches,
    name=EMBED_CHUNKS_TASK,
    flush_every=64,
    flush_interval=0.05,
    acks_late=True,
    reject_on_worker_lost=True,
)
def embed_chunks(requests: Sequence[Any]) -> None:
    """Embed the chunks of every buffered message, then hand each file to the write stage."""
    pending: list[tuple[Any, FileChunks, int]] = []
    jobs = current().jobs
    for request in requests:
        kwargs = dict(request.kwargs or {})
        attempt = int(kwargs.pop("attempt", 0) or 0)
        try:
            batch = decode_file_chunks(kwargs.get("message"))
        except PermanentError as exc:
            dead_letter(EMBED_CHUNKS_TASK, request.id, kwargs, exc, attempts=attempt + 1)
            fail_file(kwargs.get("message"), exc)
            continue
        if batch.job_id and jobs is not None and jobs.board.cancelled(batch.job_id):
            continue  # cancel stops new work
        pending.append((request, batch, attempt))
    if not pending:
        return
    service = current().embedding
    if service is None:
        raise RuntimeError("this worker has no embedding model (run the `embed` profile)")
    items = [(c.content_hash, c.text) for _, batch, _ in pending for c in batch.chunks]
    try:
        outcome = service.embed(items)
    except TransientError as exc:
        _retry_each(pending, exc)
        return
    metrics.record_embed(outcome, service.embedder.device)
    device_s = sum(b.seconds for b in outcome.batches)
    log.info(
        "flushed %d messages: %d chunks embedded in %d batches (%.2f s), %d cached, %d empty",
        len(pending),
        outcome.embedded,
        len(outcome.batches),
        device_s,
        outcome.cached,
        outcome.empty,
    )
    writes = []
    for _request, batch, _attempt in pending:
        vectors = [outcome.vectors.get(c.content_hash) for c in batch.chunks]
        message = encode_file_chunks(batch)
        message["model_id"] = service.model_id
        message["vectors"] = encode_vectors(vectors)
        writes.append({"message": message})
        if batch.job_id and jobs is not None:
            _count_embedded(jobs, batch, outcome.cached_hashes)
    send_tasks(embed_chunks.app, WRITE_CHUNKS_TASK, writes)


def _count_embedded(jobs: JobContext, batch: FileChunks, cached: frozenset[str]) -> None:
    hits = sum(1 for c in batch.chunks if c.content_hash in cached)
    counts = {"chunks.embedded": len(batch.chunks) - hits, "chunks.cached": hits}
    path = batch.file.path
    jobs.board.mark(batch.job_id or "", "files.embedded", [path], {path: counts})


def _retry_each(pending: Sequence[tuple[Any, FileChunks, int]], exc: TransientError) -> None:
    limit = current().settings.write_max_retries
    app = embed_chunks.app
    for request, _batch, attempt in pending:
        payload = {"message": dict(request.kwargs or {}).get("message")}
        if attempt >= limit:
            dead_letter(EMBED_CHUNKS_TASK, request.id, payload, exc, attempts=attempt + 1)
            fail_file(payload["message"], exc)
            continue
        wait_s = backoff_s(attempt)
        log.warning("embedding failed, message %s again in %.1f s: %s", request.id, wait_s, exc)
        app.send_task(
            EMBED_CHUNKS_TASK, kwargs={**payload, "attempt": attempt + 1}, countdown=wait_s
        )

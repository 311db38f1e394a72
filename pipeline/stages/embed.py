"""The embed stage: the chunks of many buffered messages embedded in shared device batches.

Each message holds one file version's chunks (from the CHUNK stage). The stage decodes
them all, drops those of cancelled jobs, embeds the distinct contents through the cache
in token-budget device batches (pipeline.stages.embedding), counts each file's embedded and
cached chunks on its job, and hands the files, with their vectors and the model id, to
the write stage: one WRITE message per job of the flush (``messages``, at most
``WRITE_CHUNKS`` chunks each), so that a job of many small files is written in a few
tasks, not one per file.

What the caller (the Celery shim) does with the result: a malformed message is a dead
letter and fails its file; a transient failure of the whole batch sends each message
again on its own (``Retry.PER_MESSAGE`` in pipeline.flow).

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pipeline import flow
from pipeline.errors import PermanentError, TransientError
from pipeline.messages import FileChunks, decode_file_chunks, encode_file_chunks, encode_vectors
from pipeline.stages.embedding import EmbeddingService, EmbedOutcome, Vector
from pipeline.stages.indexing import JobContext

K = TypeVar("K")
log = logging.getLogger("quarry.embed")
# The most chunks one WRITE message carries: a flush's files of one job go to the write
# stage together (one task, one upsert), in messages of at most this many chunks.
WRITE_CHUNKS = 512


@dataclass(frozen=True, slots=True)
class Buffered(Generic[K]):
    """One buffered message: the caller's handle for it, its body and its attempt."""

    key: K
    message: object
    attempt: int = 0


@dataclass(slots=True)
class EmbedResult(Generic[K]):
    """What a flush did: the WRITE messages to send, the malformed messages, and, when
    the batch failed transiently, the messages to try again with the error."""

    outgoing: flow.Outgoing | None = None
    outcome: EmbedOutcome | None = None
    malformed: list[tuple[Buffered[K], PermanentError]] = field(default_factory=list)
    retry: list[Buffered[K]] = field(default_factory=list)
    error: TransientError | None = None


def embed_messages(
    ctx: JobContext | None,
    service: EmbeddingService,
    buffered: Sequence[Buffered[K]],
    extra: Sequence[EmbeddingService] = (),
) -> EmbedResult[K]:
    """Embed every buffered message's chunks; see the module docstring. ``extra``: the
    services of models being backfilled (pipeline.embedding_models): their vectors go
    to WRITE too (``more_vectors``), so that the backfill need not catch up on them."""
    result: EmbedResult[K] = EmbedResult()
    pending: list[tuple[Buffered[K], FileChunks]] = []
    for item in buffered:
        try:
            batch = decode_file_chunks(item.message)
        except PermanentError as exc:
            result.malformed.append((item, exc))
            continue
        if batch.job_id and ctx is not None and ctx.board.cancelled(batch.job_id):
            continue  # cancel stops new work
        pending.append((item, batch))
    if not pending:
        return result
    items = [(c.content_hash, c.text) for _, batch in pending for c in batch.chunks]
    try:
        outcome = service.embed(items)
    except TransientError as exc:
        result.retry, result.error = [item for item, _ in pending], exc
        return result
    others = _embed_extra(extra, items)
    result.outcome = outcome
    writes = _WriteGroups()
    for _item, batch in pending:
        message = write_message(batch, service.model_id, outcome.vectors)
        if others:
            message["more_vectors"] = {
                model_id: encode_vectors([got.vectors.get(c.content_hash) for c in batch.chunks])
                for model_id, got in others
            }
        writes.add(batch, message)
        if batch.job_id and ctx is not None:
            _count_embedded(ctx, batch, outcome.cached_hashes)
    result.outgoing = flow.Outgoing(flow.WRITE, writes.messages())
    return result


def write_message(
    batch: FileChunks, model_id: str, vectors: Mapping[str, Vector]
) -> dict[str, object]:
    """A file's WRITE message body: its chunks, the model id, their vectors in order."""
    message = encode_file_chunks(batch)
    message["model_id"] = model_id
    message["vectors"] = encode_vectors([vectors.get(c.content_hash) for c in batch.chunks])
    return message


class _WriteGroups:
    """WRITE messages: one per job of the files added (at most ``WRITE_CHUNKS`` chunks
    each), so that a job of many small files is written in a few tasks; a file of no
    job gets its own."""

    def __init__(self) -> None:
        self._groups: dict[str, list[dict[str, object]]] = {}
        self._sizes: dict[str, int] = {}
        self._writes: list[dict[str, object]] = []

    def add(self, batch: FileChunks, message: dict[str, object]) -> None:
        if not batch.job_id:
            self._writes.append({"message": message})
            return
        group = self._groups.setdefault(batch.job_id, [])
        if group and self._sizes[batch.job_id] + len(batch.chunks) > WRITE_CHUNKS:
            self._writes.append({"messages": group})
            group = self._groups[batch.job_id] = []
            self._sizes[batch.job_id] = 0
        group.append(message)
        self._sizes[batch.job_id] = self._sizes.get(batch.job_id, 0) + len(batch.chunks)

    def messages(self) -> tuple[dict[str, object], ...]:
        grouped: list[dict[str, object]] = [{"messages": g} for g in self._groups.values() if g]
        return (*self._writes, *grouped)


# The active model's id and the vectors the embedding cache holds for it among the
# hashes asked, or None when the embed stage must see the files (pipeline.stages.backfill
# .CachedVectors: a model being backfilled, the registry or the cache unavailable).
CacheLookup = Callable[[Sequence[str]], tuple[str, Mapping[str, Vector]] | None]


@dataclass(slots=True)
class CachedRoute:
    """What :func:`write_cached` did: the WRITE messages of the files the cache held
    whole, the files left for the embed stage, and the chunks served from the cache."""

    outgoing: flow.Outgoing | None
    to_embed: list[FileChunks]
    chunks: int = 0


def write_cached(
    ctx: JobContext, batches: Sequence[FileChunks], lookup: CacheLookup
) -> CachedRoute:
    """The files whose every chunk the embedding cache holds for the active model, as
    WRITE messages with those vectors: they skip the embed stage (a queue hop, a device
    flush and its timers) and reach the write stage as the embed stage would have sent
    them, counted as cached. A file with any chunk the cache lacks goes to the embed
    stage whole, as before; so does every file when ``lookup`` says no (None)."""
    hashes = list(dict.fromkeys(c.content_hash for b in batches for c in b.chunks))
    found = lookup(hashes) if hashes else None
    if found is None:
        return CachedRoute(None, list(batches))
    model_id, vectors = found
    writes = _WriteGroups()
    rest: list[FileChunks] = []
    served = 0
    for batch in batches:
        if not batch.chunks or any(c.content_hash not in vectors for c in batch.chunks):
            rest.append(batch)
            continue
        writes.add(batch, write_message(batch, model_id, vectors))
        served += len(batch.chunks)
        _count_embedded(ctx, batch, frozenset(c.content_hash for c in batch.chunks))
    outgoing = writes.messages()
    return CachedRoute(flow.Outgoing(flow.WRITE, outgoing) if outgoing else None, rest, served)


def _embed_extra(
    extra: Sequence[EmbeddingService], items: list[tuple[str, str]]
) -> list[tuple[str, EmbedOutcome]]:
    """The vectors of the models being backfilled; a model that fails here is left out
    (logged): the write goes on with the active model's vectors, the backfill's pass
    fills what it lacks, and the switch waits for every row to hold one."""
    others = []
    for other in extra:
        try:
            others.append((other.model_id, other.embed(items)))
        except Exception as exc:  # noqa: BLE001 - a model being backfilled failed here
            log.warning(
                "model %s failed, its vectors left to the backfill: %s", other.model_id, exc
            )
    return others


def _count_embedded(ctx: JobContext, batch: FileChunks, cached: frozenset[str]) -> None:
    hits = sum(1 for c in batch.chunks if c.content_hash in cached)
    counts = {"chunks.embedded": len(batch.chunks) - hits, "chunks.cached": hits}
    path = batch.file.path
    ctx.board.mark(batch.job_id or "", "files.embedded", [path], {path: counts})

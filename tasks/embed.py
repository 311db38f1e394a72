"""The EMBED stage's Celery shim (pipeline.flow.EMBED; the work: pipeline.stages.embed).

celery-batches buffers messages and flushes them together on ``flush_every`` messages
or after ``flush_interval`` seconds (50 ms by default, so a small job is not kept
waiting). The worker sets both from the settings before it consumes, and its prefetch
(concurrency x multiplier) to at least twice ``flush_every`` so that a flush is never
starved by the prefetch limit. Messages are acknowledged after the flush returned
(acks_late): a worker killed mid-batch gives them back.

Retry (``Retry.PER_MESSAGE``): a transient failure re-sends each message with its
``attempt`` raised and a backoff; past the limit, and for malformed messages, the
message is kept as a dead letter and its file fails.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import shared_task
from celery_batches import Batches

from pipeline import flow
from pipeline.errors import TransientError
from pipeline.stages.embed import Buffered, embed_messages
from pipeline.stages.write import fail_file
from tasks import batch_events, recording
from tasks.base import backoff_s, dead_letter
from tasks.context import current, embed_profile, send_outgoing

log = logging.getLogger("quarry.embed")


@shared_task(  # type: ignore[untyped-decorator]
    base=Batches,
    name=flow.EMBED.task,
    flush_every=64,
    flush_interval=0.05,
    acks_late=True,
    reject_on_worker_lost=True,
)
def embed_chunks(requests: Sequence[Any]) -> None:
    """Embed the chunks of every buffered message, then hand each file to WRITE; Flower
    sees each message start and end (tasks/batch_events.py)."""
    with batch_events.reported(embed_chunks.app, requests) as events:
        _embed(requests, events)


def _embed(requests: Sequence[Any], events: batch_events.BatchEvents) -> None:
    resources, profile = embed_profile()
    service, extra = profile.models.services() if profile.models else (profile.embedding, [])
    buffered = [_buffered(request) for request in requests]
    result = embed_messages(resources.jobs, service, buffered, extra)
    for item, exc in result.malformed:
        dead_letter(
            flow.EMBED.task, item.key.id, {"message": item.message}, exc, attempts=item.attempt + 1
        )
        fail_file(resources.jobs, item.message, exc)
        events.failed(item.key, exc)
    if result.error is not None:
        _retry_each(result.retry, result.error, events)
    if result.outcome is not None:
        outcome = result.outcome
        recording.record_embed(outcome, service.embedder.device)
        log.info(
            "flushed %d messages: %d chunks embedded in %d batches (%.2f s), %d cached, %d empty",
            len(result.outgoing.messages) if result.outgoing else 0,
            outcome.embedded,
            len(outcome.batches),
            sum(b.seconds for b in outcome.batches),
            outcome.cached,
            outcome.empty,
        )
    if result.outgoing is not None:
        send_outgoing(embed_chunks.app, result.outgoing)


def _buffered(request: Any) -> Buffered[Any]:
    kwargs = dict(request.kwargs or {})
    return Buffered(request, kwargs.get("message"), int(kwargs.get("attempt", 0) or 0))


def _retry_each(
    items: Sequence[Buffered[Any]], exc: TransientError, events: batch_events.BatchEvents
) -> None:
    resources = current()
    limit = resources.settings.write_max_retries
    for item in items:
        payload = {"message": item.message}
        if item.attempt >= limit:
            dead_letter(flow.EMBED.task, item.key.id, payload, exc, attempts=item.attempt + 1)
            fail_file(resources.jobs, item.message, exc)
            events.failed(item.key, exc)
            continue
        wait_s = backoff_s(item.attempt)
        log.warning("embedding failed, message %s again in %.1f s: %s", item.key.id, wait_s, exc)
        embed_chunks.app.send_task(
            flow.EMBED.task, kwargs={**payload, "attempt": item.attempt + 1}, countdown=wait_s
        )
        events.retried(item.key, exc)

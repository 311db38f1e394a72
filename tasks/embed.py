"""The EMBED stage's Celery shim (pipeline.flow.EMBED; the work: pipeline.stages.embed).

celery-batches buffers messages and flushes them together on ``flush_every`` messages
or after ``flush_interval`` seconds (50 ms by default). A message that reaches an idle
worker (no flush in flight) is flushed at once (:class:`IdleFlushBatches`): a small job
or a one-file change does not wait for the timer, and while a flush runs the next
messages are still batched as before. The worker sets both from the settings before it
consumes, and its prefetch (concurrency x multiplier) to at least twice ``flush_every``
so that a flush is never starved by the prefetch limit. Messages are acknowledged after
the flush returned (acks_late): a worker killed mid-batch gives them back.

Retry (``Retry.PER_MESSAGE``): a transient failure re-sends each message with its
``attempt`` raised and a backoff; past the limit, and for malformed messages, the
message is kept as a dead letter and its file fails.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any

from celery import shared_task
from celery_batches import Batches, SimpleRequest, partition
from celery_batches.trace import apply_batches_task

from pipeline import flow
from pipeline.errors import TransientError
from pipeline.stages.embed import Buffered, embed_messages
from pipeline.stages.write import fail_file
from tasks import batch_events, recording
from tasks.base import backoff_s, dead_letter
from tasks.context import current, embed_profile, send_outgoing

log = logging.getLogger("quarry.embed")


class IdleFlushBatches(Batches):  # type: ignore[misc]
    """celery-batches' task that flushes a message at once when no flush is in flight.

    celery-batches starts its timer when the first message arrives, so a lone message
    always waited ``flush_interval``. Here the consumer's handler, after buffering a
    message, flushes the buffer itself when no flush it sent is still running; while one
    runs, messages are buffered and flushed by the timer or ``flush_every`` as before.
    ``flushes_started`` and ``idle_flushes`` count what it did (tests read them)."""

    abstract = True

    def __init__(self) -> None:
        super().__init__()
        self._flight_lock = threading.Lock()
        self._in_flight = 0
        self.flushes_started = 0
        self.idle_flushes = 0

    def Strategy(self, task: Any, app: Any, consumer: Any) -> Callable[..., None]:  # noqa: N802
        handler = super().Strategy(task, app, consumer)

        def buffer_then_flush_if_idle(*args: Any, **kwargs: Any) -> None:
            handler(*args, **kwargs)
            self.flush_if_idle()

        return buffer_then_flush_if_idle

    def flush_if_idle(self) -> bool:
        """Flush the buffer now if no flush is in flight and something waits in it."""
        with self._flight_lock:
            idle = self._in_flight == 0
        if not idle or self._buffer.empty():
            return False
        self.idle_flushes += 1
        self._do_flush()
        return True

    def flush(self, requests: Collection[Any]) -> Any:
        """celery-batches' flush (0.11), counting the flush in flight until the pool
        calls back (apply_batches_task catches the task's errors, so it always does)."""
        acks_early, acks_late = partition(lambda r: bool(r.task.acks_late), requests)
        serializable = ([SimpleRequest.from_request(r) for r in requests],)

        def on_accepted(pid: int, time_accepted: float) -> None:
            for req in acks_early:
                req.acknowledge()

        def on_return(result: Any) -> None:
            self.flush_ended()
            for req in acks_late:
                req.acknowledge()

        with self._flight_lock:
            self._in_flight += 1
            self.flushes_started += 1
        try:
            return self._pool.apply_async(
                apply_batches_task,
                (self, serializable, 0, None),
                accept_callback=on_accepted,
                callback=on_return,
            )
        except BaseException:
            self.flush_ended()
            raise

    def flush_ended(self) -> None:
        with self._flight_lock:
            self._in_flight = max(0, self._in_flight - 1)

    @property
    def in_flight(self) -> int:
        with self._flight_lock:
            return self._in_flight


@shared_task(  # type: ignore[untyped-decorator]
    base=IdleFlushBatches,
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
    buffered = [_buffered(request) for request in requests]
    try:
        service, extra = profile.models.services() if profile.models else (profile.embedding, [])
    except Exception as load_error:  # noqa: BLE001 - the active model does not load here
        # celery-batches would log and ack the messages: each goes again (with backoff),
        # then to the dead letters with its file failed, never silently dropped.
        log.error("the active embedding model does not load here: %s", load_error)
        unavailable = TransientError(f"embedding model unavailable: {load_error}")
        _retry_each(buffered, unavailable, events)
        return
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

"""Recording Quarry's metrics (defined in tasks/metrics.py); observers never fail the work.

Every helper logs its own failure and returns. Importing this module also makes every
series an alert watches with ``increase()`` start at 0 in this process: a labelled
counter otherwise appears at its first increment, already at 1, and ``increase()``
misses that first failure.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec

from config.queues import ALL_TASKS
from pipeline.jobs import Job
from pipeline.stages.embedding import EmbedOutcome
from pipeline.webhooks.events import EVENTS as WEBHOOK_EVENTS
from tasks import metrics as m

log = logging.getLogger("quarry.metrics")
P = ParamSpec("P")

_BREAKER_STATES = {"closed": 0, "open": 1, "half-open": 2}

for _status in ("done", "failed", "cancelled"):
    m.JOBS.labels(_status)
for _task in ALL_TASKS:
    m.DEAD_LETTERS.labels(_task)
for _action in ("ingest", "commit", "fail"):
    m.JOBS_RECOVERED.labels(_action)
for _event in sorted(WEBHOOK_EVENTS):
    for _outcome in ("delivered", "retrying", "failed", "refused"):
        m.WEBHOOK_DELIVERIES.labels(_event, _outcome)


def never_raises(fn: Callable[P, None]) -> Callable[P, None]:
    """Observers never fail the work: log a failing metric update and go on."""

    @wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.exception("metric update %s failed", fn.__name__)

    return guarded


@never_raises
def record_embed(outcome: EmbedOutcome, device: str) -> None:
    m.EMBED_CHUNKS.labels("embedded").inc(outcome.embedded)
    m.EMBED_CHUNKS.labels("cached").inc(outcome.cached)
    m.EMBED_CHUNKS.labels("empty").inc(outcome.empty)
    m.EMBED_TRUNCATED.inc(outcome.truncated)
    m.EMBED_OOM_HALVINGS.inc(outcome.halvings)
    seconds = 0.0
    for batch in outcome.batches:
        m.EMBED_BATCH_CHUNKS.observe(batch.chunks)
        m.EMBED_BATCH_TOKENS.observe(batch.padded_tokens)
        m.EMBED_BATCH_SECONDS.labels(device).observe(batch.seconds)
        seconds += batch.seconds
    if seconds > 0:
        m.EMBED_THROUGHPUT.set(outcome.embedded / seconds)
    if outcome.embedded + outcome.cached:
        m.EMBED_CACHE_HIT_RATIO.set(outcome.cache_hit_ratio)


@never_raises
def record_cached_route(chunks: int) -> None:
    """Chunks the chunk stage sent to the write stage with cached vectors (cache hits
    that no embed flush saw)."""
    if chunks:
        m.EMBED_CHUNKS.labels("cached").inc(chunks)


@never_raises
def record_device(device: str, model_id: str) -> None:
    m.EMBED_DEVICE.labels(device, model_id).set(1)


@never_raises
def record_backfill(model_id: str, done: int, total: int) -> None:
    m.MODEL_BACKFILL_CHUNKS.labels(model_id, "done").set(done)
    m.MODEL_BACKFILL_CHUNKS.labels(model_id, "total").set(total)


@never_raises
def record_model_states(states: dict[str, str], switched: bool = False) -> None:
    for model_id, state in states.items():
        for name in ("active", "backfilling", "retired"):
            m.MODEL_STATE.labels(model_id, name).set(1 if name == state else 0)
    if switched:
        m.MODEL_SWITCHES.inc()


@never_raises
def record_breaker_state(store: str, state: str) -> None:
    m.BREAKER_STATE.labels(store).set(_BREAKER_STATES.get(state, 1))


@never_raises
def record_queue(queue: str, depth: int, bound: int) -> None:
    """What a producer saw of a queue as it pushed (the admission-time gauges)."""
    m.QUEUE_DEPTH.labels(queue).set(depth)
    m.QUEUE_FILL_RATIO.labels(queue).set(depth / bound if bound > 0 else 1.0)


@never_raises
def record_webhook(event: str, outcome: str) -> None:
    m.WEBHOOK_DELIVERIES.labels(event, outcome).inc()


@never_raises
def record_task(task: str, queue: str, outcome: str) -> None:
    m.TASKS.labels(task, queue, outcome).inc()


@never_raises
def record_task_seconds(task: str, queue: str, seconds: float) -> None:
    m.TASK_SECONDS.labels(task, queue).observe(max(0.0, seconds))


@never_raises
def record_job(job: Job, now: float | None = None) -> None:
    """Count a job that ended, once (as JobContext.on_finish: the first finish only).

    ``now`` (default: the time now) stands in for the end when the record has no
    ``finished_at``.
    """
    status = job.status.value
    if job.finished_at is not None:
        ended_at = job.finished_at
    else:
        ended_at = time.time() if now is None else now
    m.JOBS.labels(status).inc()
    if job.created_at:
        m.JOB_SECONDS.labels(status).observe(max(0.0, ended_at - job.created_at))
    m.JOB_FILES.labels(status).observe(job.counters.get("files.total", 0))
    m.JOB_CHUNKS.labels(status).observe(job.counters.get("chunks.total", 0))


@never_raises
def record_search(mode: str, timings_s: dict[str, float], total_s: float) -> None:
    m.SEARCHES.labels(mode, "ok").inc()
    for step, seconds in timings_s.items():
        m.SEARCH_SECONDS.labels(step).observe(seconds)
    m.SEARCH_SECONDS.labels("total").observe(total_s)


@never_raises
def record_query_model_load(seconds: float) -> None:
    """The API's query model was (re)loaded: the first query, or the first after an idle
    unload, waited ``seconds`` for it (the ``model_load`` step of the search seconds)."""
    log.info("query model loaded in %.2f s", seconds)
    m.SEARCH_SECONDS.labels("model_load").observe(seconds)


def _mode_label(mode: str) -> str:
    return mode if mode in ("hybrid", "vector", "lexical") else "other"


@never_raises
def record_bad_search(mode: str) -> None:
    m.SEARCHES.labels(_mode_label(mode), "bad_request").inc()


@never_raises
def record_search_queue(seconds: float) -> None:
    """A search waited ``seconds`` in its tenant's line before it ran (0: it did not)."""
    m.SEARCH_SECONDS.labels("queue").observe(seconds)


@never_raises
def record_gone_search(mode: str) -> None:
    """A search whose client went away before its answer (api.search_slots.until_gone)."""
    m.SEARCHES.labels(_mode_label(mode), "gone").inc()


@never_raises
def record_busy_search(mode: str) -> None:
    """A search refused with 429: its tenant's line was full or its wait ran out."""
    m.SEARCHES.labels(_mode_label(mode), "busy").inc()

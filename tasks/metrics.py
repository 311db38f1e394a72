"""Every Prometheus metric the workers and the API export, defined in one place.

Names follow ``quarry_<noun>_<unit>[_total]`` with seconds for time. Gauges declare how
prefork children combine in prometheus-client's multiprocess mode. Recording helpers
never raise: a metric that fails is logged and the work goes on.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec

from prometheus_client import Counter, Gauge, Histogram

from config.queues import ALL_TASKS
from pipeline.embedding import EmbedOutcome
from pipeline.jobs import Job
from pipeline.webhooks import EVENTS as WEBHOOK_EVENTS

log = logging.getLogger("quarry.metrics")
P = ParamSpec("P")

_BATCH_CHUNKS = (1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048)
_BATCH_TOKENS = (256, 1024, 4096, 8192, 16384, 32768, 65536, 131072, 262144)
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

EMBED_BATCH_CHUNKS = Histogram(
    "quarry_embed_batch_chunks", "Chunks in one device batch.", buckets=_BATCH_CHUNKS
)
EMBED_BATCH_TOKENS = Histogram(
    "quarry_embed_batch_tokens", "Padded tokens in one device batch.", buckets=_BATCH_TOKENS
)
EMBED_BATCH_SECONDS = Histogram(
    "quarry_embed_batch_seconds", "Time to embed one device batch.", ["device"], buckets=_SECONDS
)
EMBED_CHUNKS = Counter(
    "quarry_embed_chunks_total",
    "Distinct chunk contents by outcome: embedded, cached (cache hit) or empty (no vector).",
    ["result"],
)
EMBED_TRUNCATED = Counter(
    "quarry_embed_truncated_chunks_total", "Chunks longer than the model's window, truncated."
)
EMBED_OOM_HALVINGS = Counter(
    "quarry_embed_oom_halvings_total", "Device batches halved after an out-of-memory error."
)
EMBED_THROUGHPUT = Gauge(
    "quarry_embed_chunks_per_second",
    "Chunks embedded per second of device time in the last flush.",
    multiprocess_mode="mostrecent",
)
EMBED_CACHE_HIT_RATIO = Gauge(
    "quarry_embed_cache_hit_ratio",
    "Share of distinct contents served by the embedding cache in the last flush.",
    multiprocess_mode="mostrecent",
)
EMBED_DEVICE = Gauge(
    "quarry_embed_device_info",
    "1 for the device and model each embed process uses.",
    ["device", "model_id"],
    multiprocess_mode="max",
)
# What the last admission through this process saw. No scrape exports these two: an
# idle producer would keep a stale depth forever. The API's /metrics reads every queue's
# depth at scrape time under the same names instead (tasks/exposition.py).
QUEUE_DEPTH = Gauge(
    "quarry_queue_depth",
    "Messages waiting in a queue, as the last admission through this process saw it.",
    ["queue"],
    multiprocess_mode="mostrecent",
)
QUEUE_FILL_RATIO = Gauge(
    "quarry_queue_fill_ratio",
    "Queue depth over its bound (1 is full), as the last admission saw it.",
    ["queue"],
    multiprocess_mode="mostrecent",
)
ADMISSION_GAUGES = frozenset({"quarry_queue_depth", "quarry_queue_fill_ratio"})
BREAKER_STATE = Gauge(
    "quarry_breaker_state",
    "Circuit breaker per store: 0 closed, 1 open, 2 half-open.",
    ["store"],
    multiprocess_mode="mostrecent",
)
DEAD_LETTERS = Counter(
    "quarry_dead_letters_total", "Tasks that failed for good, kept as dead letters.", ["task"]
)
WRITTEN = Counter(
    "quarry_written_items_total", "Rows and nodes written to a store.", ["store", "item"]
)
WEBHOOK_DELIVERIES = Counter(
    "quarry_webhook_deliveries_total",
    "Webhook delivery attempts by event and outcome (delivered, retrying, failed, refused).",
    ["event", "outcome"],
)

# Tasks and jobs. Task outcomes: started, succeeded, failed, retried.
_TASK_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
_JOB_SECONDS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
_JOB_FILES = (1, 10, 100, 1000, 10_000, 100_000, 1_000_000)
_JOB_CHUNKS = (1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000)
TASKS = Counter(
    "quarry_tasks_total",
    "Task runs by task, queue and outcome (started, succeeded, failed, retried).",
    ["task", "queue", "outcome"],
)
TASK_SECONDS = Histogram(
    "quarry_task_seconds",
    "Run time of one task (of one flush, for a batch task), whatever its outcome.",
    ["task", "queue"],
    buckets=_TASK_SECONDS,
)
JOBS = Counter(
    "quarry_jobs_total", "Jobs that ended, by final status (done, failed, cancelled).", ["status"]
)
JOBS_RECOVERED = Counter(
    "quarry_jobs_recovered_total",
    "Stalled jobs (no message held by the broker, no progress) the sweeper sent on or failed.",
    ["action"],
)
JOB_SECONDS = Histogram(
    "quarry_job_seconds",
    "Time from a job's creation to its end, by final status.",
    ["status"],
    buckets=_JOB_SECONDS,
)
JOB_FILES = Histogram(
    "quarry_job_files",
    "Files of an ended job (files.total), by final status.",
    ["status"],
    buckets=_JOB_FILES,
)
JOB_CHUNKS = Histogram(
    "quarry_job_chunks",
    "Chunks of an ended job (chunks.total), by final status.",
    ["status"],
    buckets=_JOB_CHUNKS,
)

_SEARCH_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
SEARCH_SECONDS = Histogram(
    "quarry_search_seconds",
    "Time of one search step: embed (the query), vector, lexical, fuse, graph, and total.",
    ["step"],
    buckets=_SEARCH_SECONDS,
)
SEARCHES = Counter(
    "quarry_searches_total",
    "Searches answered, by mode and outcome (ok, bad_request).",
    ["mode", "outcome"],
)

_BREAKER_STATES = {"closed": 0, "open": 1, "half-open": 2}

# Every series an alert watches with increase() starts at 0 in every process: a labelled
# counter otherwise appears at its first increment, already at 1, and increase() misses
# that first failure.
for _status in ("done", "failed", "cancelled"):
    JOBS.labels(_status)
for _task in ALL_TASKS:
    DEAD_LETTERS.labels(_task)
for _action in ("ingest", "commit", "fail"):
    JOBS_RECOVERED.labels(_action)
for _event in sorted(WEBHOOK_EVENTS):
    for _outcome in ("delivered", "retrying", "failed", "refused"):
        WEBHOOK_DELIVERIES.labels(_event, _outcome)


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
    EMBED_CHUNKS.labels("embedded").inc(outcome.embedded)
    EMBED_CHUNKS.labels("cached").inc(outcome.cached)
    EMBED_CHUNKS.labels("empty").inc(outcome.empty)
    EMBED_TRUNCATED.inc(outcome.truncated)
    EMBED_OOM_HALVINGS.inc(outcome.halvings)
    seconds = 0.0
    for batch in outcome.batches:
        EMBED_BATCH_CHUNKS.observe(batch.chunks)
        EMBED_BATCH_TOKENS.observe(batch.padded_tokens)
        EMBED_BATCH_SECONDS.labels(device).observe(batch.seconds)
        seconds += batch.seconds
    if seconds > 0:
        EMBED_THROUGHPUT.set(outcome.embedded / seconds)
    if outcome.embedded + outcome.cached:
        EMBED_CACHE_HIT_RATIO.set(outcome.cache_hit_ratio)


@never_raises
def record_device(device: str, model_id: str) -> None:
    EMBED_DEVICE.labels(device, model_id).set(1)


@never_raises
def record_breaker_state(store: str, state: str) -> None:
    BREAKER_STATE.labels(store).set(_BREAKER_STATES.get(state, 1))


@never_raises
def record_webhook(event: str, outcome: str) -> None:
    WEBHOOK_DELIVERIES.labels(event, outcome).inc()


@never_raises
def record_task(task: str, queue: str, outcome: str) -> None:
    TASKS.labels(task, queue, outcome).inc()


@never_raises
def record_task_seconds(task: str, queue: str, seconds: float) -> None:
    TASK_SECONDS.labels(task, queue).observe(max(0.0, seconds))


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
    JOBS.labels(status).inc()
    if job.created_at:
        JOB_SECONDS.labels(status).observe(max(0.0, ended_at - job.created_at))
    JOB_FILES.labels(status).observe(job.counters.get("files.total", 0))
    JOB_CHUNKS.labels(status).observe(job.counters.get("chunks.total", 0))


@never_raises
def record_search(mode: str, timings_s: dict[str, float], total_s: float) -> None:
    SEARCHES.labels(mode, "ok").inc()
    for step, seconds in timings_s.items():
        SEARCH_SECONDS.labels(step).observe(seconds)
    SEARCH_SECONDS.labels("total").observe(total_s)


@never_raises
def record_bad_search(mode: str) -> None:
    SEARCHES.labels(
        mode if mode in ("hybrid", "vector", "lexical") else "other", "bad_request"
    ).inc()

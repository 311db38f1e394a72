"""Every Prometheus metric the workers and the API export, defined in one place.

Names follow ``quarry_<noun>_<unit>[_total]`` with seconds for time. Gauges declare how
prefork children combine in prometheus-client's multiprocess mode. The helpers that
record them, and the series that start at 0, are in tasks/recording.py. ``OWNERS`` says
which processes record, and so export, each metric.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

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
MODEL_BACKFILL_CHUNKS = Gauge(
    "quarry_model_backfill_chunks",
    "A model switch's backfill: chunk rows covered by the new model (done) and all (total).",
    ["model_id", "count"],
    multiprocess_mode="mostrecent",
)
MODEL_STATE = Gauge(
    "quarry_model_state_info",
    "1 for each registered embedding model's state (active, backfilling, retired).",
    ["model_id", "state"],
    multiprocess_mode="mostrecent",
)
MODEL_SWITCHES = Counter(
    "quarry_model_switches_total", "Embedding-model switches done (search moved to a new model)."
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
MESSAGES_RESTORED = Counter(
    "quarry_broker_messages_restored_total",
    "Messages given back to their queues because the worker holding them died (lease ran out).",
)
VECTORS_INDEXED = Counter(
    "quarry_vectors_indexed_total",
    "Chunk rows the vector index task added to the HNSW index after their job (0021).",
)
VECTORS_PENDING = Gauge(
    "quarry_vectors_pending",
    "Chunk rows with a vector not in the HNSW index yet (searched exactly), at the last sweep.",
    multiprocess_mode="mostrecent",
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
    "Time of one search step: embed (the query), vector, lexical, fuse, graph, total,"
    " model_load (the API's query model opened: first query, or first after idle) and"
    " queue (waiting in its tenant's line for a slot: search_tenant_concurrency).",
    ["step"],
    buckets=_SEARCH_SECONDS,
)
SEARCHES = Counter(
    "quarry_searches_total",
    "Searches answered, by mode and outcome (ok, bad_request, busy: refused with 429, its"
    " tenant's line full or its wait over; gone: its client left before the answer).",
    ["mode", "outcome"],
)


# Who records, and so exports, each metric: the API its searches; the embed worker the
# embedding; the cpu worker store writes, webhooks and the sweeper's work; every worker
# its tasks, breakers and dead letters; whoever ends a job (a worker, or the API that
# cancels it) the job metrics. Each process exports only its own (tasks/exposition.py,
# tasks/worker_exposition.py): prometheus-client shows a metric without labels from its
# definition on, at 0, so a process that never records it would show a false 0 (the
# API's scrape had every worker series; the cpu worker's, the embedding gauges). Nobody
# exports the admission gauges: the API reads the queue depths under the same names.
API: Final = "api"
CPU: Final = "cpu"
EMBED: Final = "embed"


def _owned(owners: frozenset[str], *metrics: MetricWrapperBase) -> dict[str, frozenset[str]]:
    # Keyed by the name a collector yields (a counter's without ``_total``).
    return {family.name: owners for metric in metrics for family in metric.describe()}


OWNERS: Final[dict[str, frozenset[str]]] = {
    **_owned(
        frozenset({EMBED}),
        EMBED_BATCH_CHUNKS,
        EMBED_BATCH_TOKENS,
        EMBED_BATCH_SECONDS,
        EMBED_CHUNKS,
        EMBED_TRUNCATED,
        EMBED_OOM_HALVINGS,
        EMBED_THROUGHPUT,
        EMBED_CACHE_HIT_RATIO,
        EMBED_DEVICE,
        MODEL_BACKFILL_CHUNKS,
        MODEL_STATE,
        MODEL_SWITCHES,
    ),
    **_owned(
        frozenset({CPU}),
        WRITTEN,
        WEBHOOK_DELIVERIES,
        MESSAGES_RESTORED,
        JOBS_RECOVERED,
        VECTORS_INDEXED,
        VECTORS_PENDING,
    ),
    **_owned(frozenset({CPU, EMBED}), BREAKER_STATE, DEAD_LETTERS, TASKS, TASK_SECONDS),
    **_owned(frozenset({API, CPU, EMBED}), JOBS, JOB_SECONDS, JOB_FILES, JOB_CHUNKS),
    **_owned(frozenset({API}), SEARCH_SECONDS, SEARCHES),
    **_owned(frozenset(), QUEUE_DEPTH, QUEUE_FILL_RATIO),
}

"""Every Prometheus metric the workers and the API export, defined in one place.

Names follow ``quarry_<noun>_<unit>[_total]`` with seconds for time. Gauges declare how
prefork children combine in prometheus-client's multiprocess mode. Recording helpers
never raise: a metric that fails is logged and the work goes on.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec

from prometheus_client import Counter, Gauge, Histogram

from pipeline.embedding import EmbedOutcome

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

"""The composition root of a worker process: settings in, adapters and use cases out.

Builds what each profile needs and nothing else:

* ``embed``: the embedding model (loaded at start-up, so that a missing or broken
  model stops the worker with one clear line instead of failing its first task),
  the PostgreSQL embedding cache behind the ``postgres`` breaker, the dead letters;
* ``cpu``: the vector and graph stores behind their breakers, the dead letters.

Stores are built on first use, inside their breaker (pipeline.guarded.Deferred), so a
worker starts while a store is down. Breakers share their state through Redis.

Must not import: api/, cli/, drivers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, cast

from config.endpoints import Endpoints, resolve_endpoints
from config.queues import ALL_QUEUES
from config.settings import QuarrySettings
from pipeline.adapters.breakers import RedisCircuitBreaker
from pipeline.adapters.httpx_webhook_sender import HttpxWebhookSender, httpx_client
from pipeline.adapters.neo4j_graph_store import graph_store_from
from pipeline.adapters.pg_embedding_cache import PgEmbeddingCache
from pipeline.adapters.pg_job_store import PgJobStore
from pipeline.adapters.pg_snapshot_store import PgSnapshotStore
from pipeline.adapters.pg_vector_store import PgVectorStore
from pipeline.adapters.redis_admission import RedisAdmission
from pipeline.adapters.redis_client import connect_redis
from pipeline.adapters.redis_dead_letters import RedisDeadLetters
from pipeline.adapters.redis_in_flight import RedisInFlight
from pipeline.adapters.redis_job_board import RedisJobBoard
from pipeline.adapters.source_fetcher import fetcher_from_settings
from pipeline.adapters.st_embedder import (
    SentenceTransformerEmbedder,
    model_id_for,
    resolve_model_path,
)
from pipeline.adapters.vocab import model_token_counter
from pipeline.chunking import ChunkingOptions
from pipeline.embedding import EmbeddingService
from pipeline.errors import ConfigError
from pipeline.guarded import (
    Deferred,
    GuardedEmbeddingCache,
    GuardedGraphStore,
    GuardedProxy,
    GuardedVectorStore,
)
from pipeline.indexing import JobContext
from pipeline.ports import (
    CircuitBreaker,
    Embedder,
    EmbeddingCache,
    GraphStore,
    JobStore,
    SnapshotStore,
    VectorStore,
)
from pipeline.sql import VECTOR_DIMENSION
from tasks import metrics
from tasks.app import celery_app
from tasks.client import TaskClient
from tasks.context import Resources

log = logging.getLogger("quarry.worker")

GPU_BATCH_TOKENS = 65536
# On the CPU a batch is a quarter of the GPU one: latency per batch stays near the
# flush interval's scale and the cores are saturated well before that size.
CPU_BATCH_TOKENS = GPU_BATCH_TOKENS // 4


@dataclass(slots=True)
class Closers:
    """What to close when the process ends."""

    items: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for item in reversed(self.items):
            try:
                item.close()
            except Exception:
                log.exception("closing %r failed", item)
        self.items.clear()


def torch_threads(settings: QuarrySettings, cores: int | None = None) -> int:
    """Threads per embed process so that threads x processes never exceed the cores."""
    if settings.embed_torch_threads:
        return settings.embed_torch_threads
    return max(1, (cores or os.cpu_count() or 1) // settings.worker_embed_concurrency)


def build_embedder(settings: QuarrySettings) -> Embedder:
    """The configured model, loaded now; a ConfigError names what is wrong with it."""
    path = resolve_model_path(settings.embed_model)
    model_id = model_id_for(settings.embed_model)
    threads = torch_threads(settings)
    embedder: Embedder
    if settings.embed_backend == "onnx-int8":
        from pipeline.adapters.onnx_embedder import OnnxInt8Embedder

        onnx = OnnxInt8Embedder(
            path, settings.data_dir / "models", threads=threads, base_model_id=model_id
        )
        onnx.load()
        embedder = onnx
    else:
        torch_embedder = SentenceTransformerEmbedder(
            path,
            model_id=model_id,
            device=settings.embed_device,
            threads=threads,
            idle_unload_s=settings.embed_idle_unload_s,
        )
        torch_embedder.load()
        embedder = torch_embedder
    metrics.record_device(embedder.device, embedder.model_id)
    return embedder


def batch_tokens(settings: QuarrySettings, embedder: Embedder) -> int:
    if settings.embed_batch_tokens:
        return settings.embed_batch_tokens
    return GPU_BATCH_TOKENS if embedder.device.startswith("cuda") else CPU_BATCH_TOKENS


def build_breakers(settings: QuarrySettings, client: Any) -> dict[str, CircuitBreaker]:
    breakers: dict[str, CircuitBreaker] = {
        store: RedisCircuitBreaker(
            store,
            client,
            fail_max=settings.breaker_fail_max,
            reset_timeout_s=settings.breaker_reset_timeout_s,
            on_state_change=metrics.record_breaker_state,
        )
        for store in ("postgres", "graph")
    }
    # The gauge shows each breaker from the start, not only after its first change (the
    # shared state is read now; a Redis that does not answer reads as the local state).
    for store, breaker in breakers.items():
        metrics.record_breaker_state(store, breaker.state)
    return breakers


def build_resources(
    profile: str,
    settings: QuarrySettings,
    closers: Closers,
    *,
    embedder: Embedder | None = None,
) -> Resources:
    """The resources of ``profile``; ``embedder`` is passed when already loaded."""
    endpoints = resolve_endpoints(settings)
    redis_client = connect_redis(endpoints.redis_url)
    breakers = build_breakers(settings, redis_client)
    resources = Resources(
        settings=settings,
        breakers=breakers,
        dead_letters=RedisDeadLetters(redis_client),
        jobs=build_job_context(settings, endpoints, redis_client, breakers["postgres"], closers),
        webhook_secret=endpoints.webhook_secret,
    )
    if profile in ("embed", "all"):
        model = embedder or build_embedder(settings)
        if model.dimension != VECTOR_DIMENSION:
            raise ConfigError(
                f"embed_model {settings.embed_model!r} gives {model.dimension}-dimension "
                f"vectors; the chunks table holds {VECTOR_DIMENSION} (needs a migration)"
            )
        cache_store: Deferred[EmbeddingCache] = Deferred(
            lambda: PgEmbeddingCache(endpoints.postgres_dsn, dimension=VECTOR_DIMENSION)
        )
        closers.items.append(cache_store)
        resources.embedding = EmbeddingService(
            model,
            GuardedEmbeddingCache(cache_store, breakers["postgres"]),
            batch_tokens=batch_tokens(settings, model),
            max_chunks=settings.embed_batch_max_chunks,
        )
    if profile in ("cpu", "all"):
        vectors: Deferred[VectorStore] = Deferred(
            lambda: PgVectorStore(endpoints.postgres_dsn, dimension=VECTOR_DIMENSION)
        )
        graph: Deferred[GraphStore] = Deferred(lambda: graph_store_from(settings, endpoints))
        closers.items.extend([vectors, graph])
        resources.vectors = GuardedVectorStore(vectors, breakers["postgres"])
        resources.graph = GuardedGraphStore(graph, breakers["graph"])
        resources.fetcher = fetcher_from_settings(settings)
        resources.in_flight = RedisInFlight(redis_client, ALL_QUEUES)
        options = ChunkingOptions(
            max_tokens=settings.chunk_max_tokens, max_file_bytes=settings.chunk_max_file_bytes
        )
        resources.chunking = (options, model_token_counter())
        http = httpx_client(settings.webhook_timeout_s)
        closers.items.append(http)
        resources.webhooks = HttpxWebhookSender(
            http,
            allow=frozenset(settings.webhook_allow_addresses),
            timeout_s=settings.webhook_timeout_s,
        )
    return resources


def build_job_context(
    settings: QuarrySettings,
    endpoints: Endpoints,
    redis_client: Any,
    breaker: CircuitBreaker,
    closers: Closers,
) -> JobContext:
    """Jobs and snapshots (PostgreSQL, behind its breaker), the job board and the
    admission-checked sender that every stage uses to hand work on."""
    jobs: Deferred[JobStore] = Deferred(lambda: PgJobStore(endpoints.postgres_dsn))
    snapshots: Deferred[SnapshotStore] = Deferred(lambda: PgSnapshotStore(endpoints.postgres_dsn))
    closers.items.extend([jobs, snapshots])
    admission = RedisAdmission(
        redis_client, settings.queue_bounds(), default_bound=settings.queue_bound_write
    )
    client = TaskClient(celery_app(), admission)

    return JobContext(
        jobs=cast(JobStore, GuardedProxy(jobs, breaker)),
        snapshots=cast(SnapshotStore, GuardedProxy(snapshots, breaker)),
        board=RedisJobBoard(redis_client),
        send=client.sender(timeout_s=settings.queue_wait_s),
        on_finish=metrics.record_job,
    )

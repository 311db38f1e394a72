"""What each worker profile holds, composed from the builders of the composition root
(wiring/): settings in, the ports and use cases that tasks/ use out.

* ``embed``: the embedding model (loaded at start-up: a missing or broken model stops
  the worker with one clear line), the PostgreSQL embedding cache behind the
  ``postgres`` breaker;
* ``cpu``: the vector and graph stores behind their breakers, the source fetcher, the
  broker's in-flight view, the chunking setup and the webhook sender;
* every profile: the job context (job and snapshot stores behind the ``postgres``
  breaker, the job board, the admission-checked sender) and the dead letters.

Stores are built on first use, inside their breaker, so a worker starts while a store
is down. Breakers share their state through Redis.

Must not import: api/, cli/, drivers, pipeline.adapters (wiring/ names them).
"""

from __future__ import annotations

from config.endpoints import resolve_endpoints
from config.settings import QuarrySettings
from pipeline.analysis.chunking import ChunkingOptions
from pipeline.ports import CircuitBreaker, Embedder
from pipeline.stages.backfill import CachedVectors
from tasks import recording
from tasks.app import celery_app
from tasks.client import TaskClient
from tasks.context import CpuProfile, EmbedProfile, Resources
from wiring import models, stores
from wiring.stores import Closers

__all__ = ["Closers", "build_embedder", "build_resources"]


def build_embedder(settings: QuarrySettings) -> Embedder:
    """The configured model, loaded now, its device shown in the metrics."""
    model = models.embedder(settings)
    recording.record_device(model.device, model.model_id)
    return model


def build_resources(
    profile: str,
    settings: QuarrySettings,
    closers: Closers,
    *,
    embedder: Embedder | None = None,
) -> Resources:
    """The resources of ``profile``; ``embedder`` is passed when already loaded."""
    endpoints = resolve_endpoints(settings)
    redis = stores.redis_client(endpoints)
    breakers = _breakers(settings, redis)
    client = TaskClient(celery_app(), stores.admission(settings, redis))
    resources = Resources(
        settings=settings,
        breakers=breakers,
        dead_letters=stores.dead_letters(redis),
        jobs=stores.job_context(
            endpoints,
            redis,
            send=client.sender(timeout_s=settings.queue_wait_s),
            offer=client.sender(timeout_s=0),
            closers=closers,
            breaker=breakers["postgres"],
            on_finish=recording.record_job,
        ),
        webhook_secret=endpoints.webhook_secret,
    )
    postgres = breakers["postgres"]
    # Built on first use, once per process: the embed stage embeds through them, and the
    # chunk stage looks into them (pipeline.stages.backfill.CachedVectors); the profile
    # "all" does both.
    cache = stores.behind_breaker(lambda: stores.embedding_cache(endpoints), postgres, closers)
    registry = stores.behind_breaker(lambda: stores.model_registry(endpoints), postgres, closers)
    if profile in ("embed", "all"):
        model = embedder or build_embedder(settings)
        service = models.embedding_service(settings, model, cache)
        resources.embed = EmbedProfile(service, models.live_models(settings, service, registry))
    if profile in ("cpu", "all"):
        uploads = stores.behind_breaker(lambda: stores.upload_store(endpoints), postgres, closers)
        credentials = stores.behind_breaker(
            lambda: stores.credential_store(endpoints), postgres, closers
        )
        vault = stores.credential_vault(settings, endpoints, credentials)
        resources.cpu = CpuProfile(
            vectors=stores.behind_breaker(
                lambda: stores.vector_store(endpoints), postgres, closers
            ),
            graph=stores.behind_breaker(
                lambda: stores.graph_store(settings, endpoints), breakers["graph"], closers
            ),
            blobs=stores.behind_breaker(lambda: stores.blob_store(endpoints), postgres, closers),
            deletions=stores.behind_breaker(
                lambda: stores.deletion_store(endpoints), postgres, closers
            ),
            uploads=uploads,
            fetcher=stores.source_fetcher(settings, uploads, vault),
            in_flight=stores.in_flight(redis),
            chunking=ChunkingOptions(
                max_tokens=settings.chunk_max_tokens, max_file_bytes=settings.chunk_max_file_bytes
            ),
            counter=models.token_counter(),
            webhooks=stores.webhook_sender(settings, closers),
            webhook_keys=stores.behind_breaker(
                lambda: stores.webhook_key_store(endpoints), postgres, closers
            ),
            quotas=stores.behind_breaker(lambda: stores.quota_store(endpoints), postgres, closers),
            cached=(
                CachedVectors(registry, cache, refresh_s=settings.model_registry_refresh_s)
                if settings.embed_skip_cached
                else None
            ),
        )
    return resources


def _breakers(settings: QuarrySettings, redis: object) -> dict[str, CircuitBreaker]:
    breakers = stores.breakers(settings, redis, on_state_change=recording.record_breaker_state)
    # The gauge shows each breaker from the start, not only after its first change (the
    # shared state is read now; a Redis that does not answer reads as the local state).
    for store, breaker in breakers.items():
        recording.record_breaker_state(store, breaker.state)
    return breakers

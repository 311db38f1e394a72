"""Builders of the stores, the job board, admission, breakers and the task client.

A store that a worker uses is built on first use inside its breaker, so a process starts
while the store is down: :func:`behind_breaker` (over pipeline.stages.guarded) is the one
way a store is put behind its breaker.

Must not import: api/, workers/, cli/.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from config.endpoints import Endpoints
from config.queues import ALL_QUEUES
from config.settings import QuarrySettings
from pipeline.adapters.neo4j.graph_store import graph_store_from
from pipeline.adapters.postgres.blob_store import PgBlobStore
from pipeline.adapters.postgres.credential_store import PgCredentialStore
from pipeline.adapters.postgres.deletion_store import PgRepoDeletionStore
from pipeline.adapters.postgres.embedding_cache import PgEmbeddingCache
from pipeline.adapters.postgres.job_store import PgJobStore
from pipeline.adapters.postgres.model_registry import PgModelRegistry
from pipeline.adapters.postgres.push_hook_store import PgPushHookStore
from pipeline.adapters.postgres.quota_store import PgQuotaStore
from pipeline.adapters.postgres.search_index import PgSearchIndex
from pipeline.adapters.postgres.snapshot_store import PgSnapshotStore
from pipeline.adapters.postgres.token_store import PgTokenStore
from pipeline.adapters.postgres.upload_store import PgUploadStore
from pipeline.adapters.postgres.vector_store import PgVectorStore
from pipeline.adapters.postgres.webhook_key_store import PgWebhookKeyStore
from pipeline.adapters.probes import Probe, probe_graph, probe_postgres, probe_redis
from pipeline.adapters.redis.admission import RedisAdmission
from pipeline.adapters.redis.breakers import RedisCircuitBreaker
from pipeline.adapters.redis.client import connect_redis
from pipeline.adapters.redis.dead_letters import RedisDeadLetters
from pipeline.adapters.redis.in_flight import RedisInFlight
from pipeline.adapters.redis.job_board import RedisJobBoard
from pipeline.adapters.redis.query_cache import RedisQueryEmbeddingCache
from pipeline.adapters.sources.fetcher import (
    LocalSourceFetcher,
    fetcher_from_settings,
    source_policy_from,
)
from pipeline.credentials.cipher import CredentialCipher
from pipeline.credentials.vault import CredentialVault
from pipeline.ports import (
    BlobStore,
    CircuitBreaker,
    CredentialStore,
    DeadLetters,
    EmbeddingCache,
    GraphStore,
    InFlight,
    JobBoard,
    JobStore,
    PushHookStore,
    QuotaStore,
    RepoDeletionStore,
    SnapshotStore,
    TokenStore,
    UploadStore,
    WebhookKeyStore,
    WebhookSender,
)
from pipeline.sources.policy import LocalSourcePolicy
from pipeline.stages.guarded import Deferred, guarded
from pipeline.stages.indexing import JobContext, OnFinish, Send
from pipeline.statements.sql import VECTOR_DIMENSION

log = logging.getLogger("quarry.wiring")
S = TypeVar("S")
STORES = ("postgres", "graph")
Redis = Any  # the redis client; its type stays in the adapters


@dataclass(slots=True)
class Closers:
    """What to close when the process ends, last built first."""

    items: list[Any] = field(default_factory=list)

    def add(self, *items: Any) -> None:
        self.items.extend(items)

    def close(self) -> None:
        for item in reversed(self.items):
            try:
                item.close()
            except Exception:
                log.exception("closing %r failed", item)
        self.items.clear()


def redis_client(endpoints: Endpoints) -> Redis:
    return connect_redis(endpoints.redis_url)


def breakers(
    settings: QuarrySettings, client: Redis, on_state_change: Any = None
) -> dict[str, CircuitBreaker]:
    """One breaker per store, its state shared through Redis by every process."""
    return {
        store: RedisCircuitBreaker(
            store,
            client,
            fail_max=settings.breaker_fail_max,
            reset_timeout_s=settings.breaker_reset_timeout_s,
            on_state_change=on_state_change,
            refresh_s=settings.breaker_refresh_s,
        )
        for store in STORES
    }


def behind_breaker(build: Callable[[], S], breaker: CircuitBreaker, closers: Closers) -> S:
    """The store ``build`` makes, built on first use inside ``breaker`` (so a process
    starts while the store is down) and closed with ``closers``."""
    deferred: Deferred[S] = Deferred(build)
    closers.add(deferred)
    return guarded(deferred, breaker)


def admission(settings: QuarrySettings, client: Redis) -> RedisAdmission:
    return RedisAdmission(client, settings.queue_bounds(), default_bound=settings.queue_bound_write)


def job_board(client: Redis) -> JobBoard:
    return RedisJobBoard(client)


def job_context(
    endpoints: Endpoints,
    client: Redis,
    *,
    send: Send,
    closers: Closers | None = None,
    breaker: CircuitBreaker | None = None,
    on_finish: OnFinish | None = None,
    offer: Send | None = None,
) -> JobContext:
    """Jobs and snapshots (PostgreSQL; behind ``breaker`` if given, built on first use),
    the job board and ``send``, the admission-checked sender every stage hands work on
    with."""
    dsn = endpoints.postgres_dsn
    jobs: JobStore
    snapshots: SnapshotStore
    if breaker is None:
        jobs, snapshots = PgJobStore(dsn), PgSnapshotStore(dsn)
    else:
        behind = closers if closers is not None else Closers()
        jobs = behind_breaker(lambda: PgJobStore(dsn), breaker, behind)
        snapshots = behind_breaker(lambda: PgSnapshotStore(dsn), breaker, behind)
    return JobContext(
        jobs=jobs,
        snapshots=snapshots,
        board=job_board(client),
        send=send,
        on_finish=on_finish,
        offer=offer,
    )


def vector_store(endpoints: Endpoints) -> PgVectorStore:
    return PgVectorStore(endpoints.postgres_dsn, dimension=VECTOR_DIMENSION)


def graph_store(settings: QuarrySettings, endpoints: Endpoints) -> GraphStore:
    return graph_store_from(settings, endpoints)


def dead_letters(client: Redis) -> DeadLetters:
    return RedisDeadLetters(client)


def in_flight(client: Redis) -> InFlight:
    return RedisInFlight(client, ALL_QUEUES)


def source_fetcher(
    settings: QuarrySettings,
    uploads: UploadStore | None = None,
    credentials: CredentialVault | None = None,
) -> LocalSourceFetcher:
    lookup = None if credentials is None else credentials.for_url
    return fetcher_from_settings(settings, uploads, lookup)


def credential_store(endpoints: Endpoints) -> CredentialStore:
    return PgCredentialStore(endpoints.postgres_dsn)


def credential_vault(
    settings: QuarrySettings, endpoints: Endpoints, store: CredentialStore
) -> CredentialVault | None:
    """The tenants' credentials over ``store``; None without a credentials key (the
    API then answers 503, and clones go without credentials)."""
    if not endpoints.credentials_key:
        return None
    previous = settings.credentials_previous_keys
    cipher = CredentialCipher(
        endpoints.credentials_key, previous.get_secret_value() if previous else ""
    )
    return CredentialVault(store, cipher)


def embedding_cache(endpoints: Endpoints) -> EmbeddingCache:
    return PgEmbeddingCache(endpoints.postgres_dsn)


def model_registry(endpoints: Endpoints) -> PgModelRegistry:
    return PgModelRegistry(endpoints.postgres_dsn)


def blob_store(endpoints: Endpoints) -> BlobStore:
    return PgBlobStore(endpoints.postgres_dsn)


def deletion_store(endpoints: Endpoints) -> RepoDeletionStore:
    return PgRepoDeletionStore(endpoints.postgres_dsn)


def push_hook_store(endpoints: Endpoints) -> PushHookStore:
    return PgPushHookStore(endpoints.postgres_dsn)


def upload_store(endpoints: Endpoints) -> UploadStore:
    return PgUploadStore(endpoints.postgres_dsn)


def webhook_key_store(endpoints: Endpoints) -> WebhookKeyStore:
    return PgWebhookKeyStore(endpoints.postgres_dsn)


def webhook_sender(settings: QuarrySettings, closers: Closers) -> WebhookSender:
    # Imported here: httpx pulls in rich and pygments (its command line), and only the
    # webhook worker sends; the API process stays without them.
    from pipeline.adapters.http.webhook_sender import HttpxWebhookSender, httpx_client

    http = httpx_client(settings.webhook_timeout_s)
    closers.add(http)
    return HttpxWebhookSender(
        http,
        allow=frozenset(settings.webhook_allow_addresses),
        timeout_s=settings.webhook_timeout_s,
    )


def source_policy(settings: QuarrySettings) -> LocalSourcePolicy:
    """The local paths a job may name (pipeline.sources.policy)."""
    return source_policy_from(settings)


def search_index(settings: QuarrySettings, endpoints: Endpoints) -> PgSearchIndex:
    return PgSearchIndex(
        endpoints.postgres_dsn,
        dimension=VECTOR_DIMENSION,
        ef_search=settings.search_ef_search,
        exact_max_rows=settings.search_exact_max_rows,
        iterative_scan=settings.search_iterative_scan,
        max_scan_tuples=settings.search_max_scan_tuples,
        lexical_seed=settings.search_lexical_seed,
        max_lexical_matches=settings.search_max_lexical_matches,
        lexical_budget_ms=settings.search_lexical_budget_ms,
        pool_size=settings.search_pool_size,
    )


def query_cache(settings: QuarrySettings, client: Redis) -> RedisQueryEmbeddingCache:
    return RedisQueryEmbeddingCache(client, ttl_s=settings.query_cache_ttl_s)


def token_store(endpoints: Endpoints) -> TokenStore:
    return PgTokenStore(endpoints.postgres_dsn)


def quota_store(endpoints: Endpoints) -> QuotaStore:
    return PgQuotaStore(endpoints.postgres_dsn)


def probe_stores(endpoints: Endpoints) -> dict[str, Probe]:
    """Each store's health, checked now (``/readyz``)."""
    return {
        "redis": probe_redis(endpoints.redis_url),
        "postgres": probe_postgres(endpoints.postgres_dsn),
        "graph": probe_graph(
            endpoints.neo4j_uri,
            endpoints.neo4j_user,
            endpoints.neo4j_password,
            endpoints.neo4j_database,
        ),
    }

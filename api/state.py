"""The API's composition root: the stores, the job board and the admission-checked task
client, built once per process on first use; and the token check.

Must not import: workers/, cli/, torch, celery (it enqueues through tasks.client).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from config.endpoints import Endpoints
from config.settings import QuarrySettings
from pipeline.adapters.neo4j_graph_store import Neo4jGraphStore, graph_store_from
from pipeline.adapters.onnx_embedder import OnnxEmbedder
from pipeline.adapters.pg_job_store import PgJobStore
from pipeline.adapters.pg_search import PgSearchIndex
from pipeline.adapters.pg_snapshot_store import PgSnapshotStore
from pipeline.adapters.pg_token_store import PgTokenStore
from pipeline.adapters.pg_vector_store import PgVectorStore
from pipeline.adapters.probes import Probe, probe_graph, probe_postgres, probe_redis
from pipeline.adapters.query_embedder import query_embedder_from
from pipeline.adapters.redis_admission import RedisAdmission
from pipeline.adapters.redis_client import connect_redis
from pipeline.adapters.redis_job_board import RedisJobBoard
from pipeline.adapters.redis_query_cache import RedisQueryEmbeddingCache
from pipeline.adapters.source_fetcher import (
    LocalSourceFetcher,
    fetcher_from_settings,
    source_policy_from,
)
from pipeline.embedding import embed_query
from pipeline.indexing import JobContext
from pipeline.job_rows import token_digest
from pipeline.ports import TokenStore
from pipeline.search import Searcher
from pipeline.source_policy import LocalSourcePolicy
from pipeline.sql import VECTOR_DIMENSION
from tasks import metrics
from tasks.app import create_app
from tasks.client import TaskClient

TOKEN_CACHE_S = 10.0
log = logging.getLogger("quarry.api")


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


@dataclass
class ApiState:
    """Everything the routes use. Built lazily so that the API starts (and answers
    /healthz and /readyz) while a store is still down."""

    settings: QuarrySettings
    endpoints: Endpoints
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _built: dict[str, Any] = field(default_factory=dict)
    _tokens_seen: dict[bytes, tuple[str | None, float]] = field(default_factory=dict)

    def _get(self, name: str, build: Any) -> Any:
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            return self._built[name]

    @property
    def redis(self) -> Any:
        return self._get("redis", lambda: connect_redis(self.endpoints.redis_url))

    @property
    def admission(self) -> RedisAdmission:
        s = self.settings
        admission: RedisAdmission = self._get(
            "admission",
            lambda: RedisAdmission(self.redis, s.queue_bounds(), default_bound=s.queue_bound_write),
        )
        return admission

    @property
    def client(self) -> TaskClient:
        client: TaskClient = self._get(
            "client", lambda: TaskClient(create_app(self.settings), self.admission)
        )
        return client

    @property
    def jobs(self) -> JobContext:
        dsn = self.endpoints.postgres_dsn

        def build() -> JobContext:
            return JobContext(
                jobs=PgJobStore(dsn),
                snapshots=PgSnapshotStore(dsn),
                board=RedisJobBoard(self.redis),
                send=self.client.sender(timeout_s=5.0),
                on_finish=metrics.record_job,
            )

        ctx: JobContext = self._get("jobs", build)
        return ctx

    @property
    def vectors(self) -> PgVectorStore:
        store: PgVectorStore = self._get(
            "vectors",
            lambda: PgVectorStore(self.endpoints.postgres_dsn, dimension=VECTOR_DIMENSION),
        )
        return store

    @property
    def graph(self) -> Neo4jGraphStore:
        store: Neo4jGraphStore = self._get(
            "graph", lambda: graph_store_from(self.settings, self.endpoints)
        )
        return store

    @property
    def searcher_index(self) -> PgSearchIndex:
        s = self.settings

        def build() -> PgSearchIndex:
            return PgSearchIndex(
                self.endpoints.postgres_dsn,
                dimension=VECTOR_DIMENSION,
                ef_search=s.search_ef_search,
                exact_max_rows=s.search_exact_max_rows,
                max_lexical_matches=s.search_max_lexical_matches,
            )

        index: PgSearchIndex = self._get("search_index", build)
        return index

    @property
    def query_embedder(self) -> OnnxEmbedder:
        """The model that embeds queries (the one the workers' vectors came from, run by
        onnxruntime: no torch here). Exported on first use; ``warm`` does it early."""
        embedder: OnnxEmbedder = self._get(
            "query_embedder",
            lambda: query_embedder_from(self.settings, threads=self.settings.query_embed_threads),
        )
        return embedder

    @property
    def searcher(self) -> Searcher:
        s = self.settings

        def build() -> Searcher:
            embedder = self.query_embedder
            cache = RedisQueryEmbeddingCache(self.redis, ttl_s=s.query_cache_ttl_s)
            return Searcher(
                self.searcher_index,
                lambda query: embed_query(embedder, cache, query),
                embedder.model_id,
                self.graph,
                rrf_k=s.search_rrf_k,
                weights={"vector": s.search_weight_vector, "lexical": s.search_weight_lexical},
            )

        searcher: Searcher = self._get("searcher", build)
        return searcher

    def warm(self) -> None:
        """Load the query embedder now (a background thread at start-up calls this, so
        that the first search does not wait for the model's export and load)."""
        try:
            self.query_embedder.load()
        except Exception:
            log.exception("the query embedder could not be loaded; search will retry it")

    @property
    def tokens(self) -> TokenStore:
        store: TokenStore = self._get("tokens", lambda: PgTokenStore(self.endpoints.postgres_dsn))
        return store

    @property
    def fetcher(self) -> LocalSourceFetcher:
        fetcher: LocalSourceFetcher = self._get(
            "fetcher", lambda: fetcher_from_settings(self.settings)
        )
        return fetcher

    @property
    def source_policy(self) -> LocalSourcePolicy:
        policy: LocalSourcePolicy = self._get(
            "source_policy", lambda: source_policy_from(self.settings)
        )
        return policy

    def tenant_for(self, token: str) -> str | None:
        """The tenant of a token; answers are kept for a few seconds (revocation takes
        at most that long to apply), under the token's digest: this process keeps no
        clear token."""
        now = time.monotonic()
        key = token_digest(token)
        seen = self._tokens_seen.get(key)
        if seen is not None and now - seen[1] < TOKEN_CACHE_S:
            return seen[0]
        tenant = self.tokens.authenticate(token)
        if len(self._tokens_seen) > 10_000:
            self._tokens_seen.clear()
        self._tokens_seen[key] = (tenant, now)
        return tenant

    def close(self) -> None:
        with self._lock:
            built, self._built = list(self._built.values()), {}
        for item in built:
            parts = [item.jobs, item.snapshots] if isinstance(item, JobContext) else [item]
            for part in parts:
                close = getattr(part, "close", None)
                if callable(close):
                    close()

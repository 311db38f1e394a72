"""The API's resources, composed from the builders of the composition root (wiring/):
the stores, the job board, the admission-checked task client, search and the source
policy, each built once per process on first use; and the token check.

Must not import: workers/, cli/, torch, celery (it enqueues through tasks.client),
pipeline.adapters (wiring/ names them).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from api.search_slots import TenantSlots
from config.endpoints import Endpoints
from config.settings import QuarrySettings
from pipeline.credentials.vault import CredentialVault
from pipeline.errors import ModelNotExportedError, PipelineError
from pipeline.ports import (
    Admission,
    GraphStore,
    PushHookStore,
    QuotaStore,
    RepoDeletionStore,
    SearchIndex,
    SourceFetcher,
    TokenStore,
    UploadStore,
    VectorStore,
    WebhookKeyStore,
)
from pipeline.quotas import QuotaStatus, default_limits
from pipeline.search.ranking import Ranking
from pipeline.search.searcher import Searcher
from pipeline.sources.policy import LocalSourcePolicy
from pipeline.stages.backfill import ModelRegistry
from pipeline.stages.embedding import embed_query
from pipeline.stages.indexing import JobContext
from pipeline.statements.job_rows import token_digest
from pipeline.tokens import TokenGrant
from tasks import recording
from tasks.app import create_app
from tasks.client import TaskClient
from wiring import models, stores
from wiring.stores import probe_stores

__all__ = ["ApiState", "probe_stores"]
TOKEN_CACHE_S = 10.0
log = logging.getLogger("quarry.api")
T = TypeVar("T")


@dataclass
class ApiState:
    """Everything the routes use. Built lazily so that the API starts (and answers
    /healthz and /readyz) while a store is still down."""

    settings: QuarrySettings
    endpoints: Endpoints
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _built: dict[str, Any] = field(default_factory=dict)
    _tokens_seen: dict[bytes, tuple[TokenGrant | None, float]] = field(default_factory=dict)
    _revocations: int = 0  # revocations through this process: a lookup across one is not kept
    _quotas_seen: dict[str, tuple[QuotaStatus, float]] = field(default_factory=dict)
    # A tenant's quota status being read from the event loop (quota_status_soon): one
    # read per tenant at a time, however many of its requests wait for it.
    _quota_reads: dict[str, asyncio.Future[QuotaStatus]] = field(default_factory=dict)
    _model_seen: tuple[tuple[str, str], float] | None = None
    # Each tenant's share of this process's searches (``search_tenant_*``). Built here,
    # not by _once: the event loop reads it, and must never wait on the lock that a
    # thread holds while it builds a store.
    search_slots: TenantSlots = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.search_slots = TenantSlots(
            concurrency=s.search_tenant_concurrency,
            waiting=s.search_tenant_waiting,
            wait_s=s.search_tenant_wait_s,
        )

    def _once(self, name: str, build: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            value: T = self._built[name]
            return value

    @property
    def redis(self) -> Any:
        return self._once("redis", lambda: stores.redis_client(self.endpoints))

    @property
    def admission(self) -> Admission:
        return self._once("admission", lambda: stores.admission(self.settings, self.redis))

    @property
    def client(self) -> TaskClient:
        return self._once("client", lambda: TaskClient(create_app(self.settings), self.admission))

    @property
    def jobs(self) -> JobContext:
        return self._once(
            "jobs",
            lambda: stores.job_context(
                self.endpoints,
                self.redis,
                send=self.client.sender(timeout_s=5.0),
                on_finish=recording.record_job,
            ),
        )

    @property
    def deletions(self) -> RepoDeletionStore:
        return self._once("deletions", lambda: stores.deletion_store(self.endpoints))

    @property
    def vectors(self) -> VectorStore:
        return self._once("vectors", lambda: stores.vector_store(self.endpoints))

    @property
    def graph(self) -> GraphStore:
        return self._once("graph", lambda: stores.graph_store(self.settings, self.endpoints))

    @property
    def searcher_index(self) -> SearchIndex:
        return self._once(
            "search_index", lambda: stores.search_index(self.settings, self.endpoints)
        )

    @property
    def model_registry(self) -> ModelRegistry:
        return self._once("model_registry", lambda: stores.model_registry(self.endpoints))

    def query_model(self) -> tuple[str, str]:
        """(name, backend) of the model search reads: the registry's active model, read
        at most every ``model_registry_refresh_s`` (so a switch reaches this process
        that much later; the old vectors are dropped only after ``model_drop_grace_s``);
        the settings' model before any is registered. A model being backfilled has its
        query embedder loaded ahead, so that the first search after the switch does not
        wait for it."""
        now = time.monotonic()
        seen = self._model_seen
        if seen is not None and now - seen[1] < self.settings.model_registry_refresh_s:
            return seen[0]
        current: tuple[str, str] = (self.settings.embed_model, self.settings.embed_backend)
        try:
            live = self.model_registry.live()
        except PipelineError as exc:
            log.warning("model registry unavailable, searching with the last model: %s", exc)
            return seen[0] if seen is not None else current
        for model in live:
            # The configured model by the settings' name: a row registered by migration
            # 0019 knows a model folder only by its folder name.
            if model.state == "active" and model.model_id != self._configured_model_id:
                current = (model.name, model.backend)
            elif model.state == "backfilling":
                self._warm_ahead(model.name, model.backend)
        self._model_seen = (current, now)
        return current

    @property
    def _configured_model_id(self) -> str:
        return self._once("configured_model_id", lambda: models.configured_model_id(self.settings))

    def _warm_ahead(self, name: str, backend: str) -> None:
        try:
            embedder = self._query_embedder_of(name, backend)
            if not embedder.export_file().is_file():
                return
        except PipelineError:
            return
        self._once(
            f"warming:{embedder.model_id}",
            lambda: threading.Thread(
                target=self._load_quietly, args=(embedder,), daemon=True
            ).start(),
        )

    @staticmethod
    def _load_quietly(embedder: models.QueryEmbedder) -> None:
        try:
            embedder.load()
        except Exception:
            log.exception("the next model's query embedder could not be loaded ahead")

    def _query_embedder_of(self, name: str, backend: str) -> models.QueryEmbedder:
        return self._once(
            f"query_embedder:{backend}:{name}",
            lambda: models.query_embedder(
                models.settings_for(self.settings, name, backend),
                on_load=recording.record_query_model_load,
            ),
        )

    @property
    def query_embedder(self) -> models.QueryEmbedder:
        """The model that embeds queries (the active model, whose vectors search reads,
        run by onnxruntime: no torch here). Its ONNX export is made at install (`quarry
        model export`), never here; loaded on first use (``warm`` does it early),
        unloaded after ``search_query_model_idle_s`` without a query, reloaded by the next."""
        return self._query_embedder_of(*self.query_model())

    @property
    def searcher(self) -> Searcher:
        s = self.settings
        embedder = self.query_embedder

        def build() -> Searcher:
            cache = stores.query_cache(s, self.redis)
            return Searcher(
                self.searcher_index,
                lambda query: embed_query(embedder, cache, query),
                embedder.model_id,
                self.graph,
                ranking=ranking_from(s),
            )

        return self._once(f"searcher:{embedder.model_id}", build)

    def warm(self) -> None:
        """Load the query embedder now (a background thread at start-up calls this, so
        that the first search does not wait for the model's export and load)."""
        try:
            self.query_embedder.load()
        except ModelNotExportedError as exc:
            log.error("search is unavailable until the query model is exported: %s", exc)
        except Exception:
            log.exception("the query embedder could not be loaded; search will retry it")

    @property
    def tokens(self) -> TokenStore:
        return self._once("tokens", lambda: stores.token_store(self.endpoints))

    @property
    def push_hooks(self) -> PushHookStore:
        return self._once("push_hooks", lambda: stores.push_hook_store(self.endpoints))

    @property
    def uploads(self) -> UploadStore:
        return self._once("uploads", lambda: stores.upload_store(self.endpoints))

    @property
    def webhook_keys(self) -> WebhookKeyStore:
        return self._once("webhook_keys", lambda: stores.webhook_key_store(self.endpoints))

    @property
    def fetcher(self) -> SourceFetcher:
        return self._once(
            "fetcher",
            lambda: stores.source_fetcher(self.settings, credentials=self.credentials),
        )

    @property
    def credentials(self) -> CredentialVault | None:
        """The tenants' git credentials; None without a credentials key."""
        if not self.endpoints.credentials_key:
            return None
        store = self._once("credential_store", lambda: stores.credential_store(self.endpoints))
        return self._once(
            "credentials", lambda: stores.credential_vault(self.settings, self.endpoints, store)
        )

    @property
    def source_policy(self) -> LocalSourcePolicy:
        return self._once("source_policy", lambda: stores.source_policy(self.settings))

    @property
    def quotas(self) -> QuotaStore:
        return self._once("quotas", lambda: stores.quota_store(self.endpoints))

    def kept_quota_status(self, tenant: str) -> QuotaStatus | None:
        """The status :meth:`quota_status` read within ``quota_status_cache_s``, else
        None (no I/O: safe on the event loop)."""
        seen = self._quotas_seen.get(tenant)
        if seen is not None and time.monotonic() - seen[1] < self.settings.quota_status_cache_s:
            return seen[0]
        return None

    def quota_status(self, tenant: str, *, fresh: bool = False) -> QuotaStatus:
        """The tenant's quotas and usage (pipeline.quotas), kept for
        ``quota_status_cache_s`` unless ``fresh``: one query per tenant and interval,
        not one per request."""
        kept = None if fresh else self.kept_quota_status(tenant)
        if kept is not None:
            return kept
        now = time.monotonic()
        status = self.quotas.status(tenant, default_limits(self.settings))
        with self._lock:
            if len(self._quotas_seen) > 10_000:
                self._quotas_seen.clear()
            self._quotas_seen[tenant] = (status, now)
        return status

    async def quota_status_soon(self, tenant: str) -> QuotaStatus:
        """:meth:`quota_status` from the event loop: the status kept, else one read in the
        thread pool per tenant at a time, shared by every request of the tenant that asks
        meanwhile (a burst after the status expired costs one read, not one each: the
        status counts the tenant's chunks). Raises what the read raises."""
        kept = self.kept_quota_status(tenant)
        if kept is not None:
            return kept
        reading = self._quota_reads.get(tenant)
        if reading is None:
            reading = asyncio.ensure_future(run_in_threadpool(self.quota_status, tenant))
            self._quota_reads[tenant] = reading
            reading.add_done_callback(lambda done: self._quota_read_done(tenant, done))
        return await asyncio.shield(reading)  # a request cancelled leaves it to the others

    def _quota_read_done(self, tenant: str, done: asyncio.Future[QuotaStatus]) -> None:
        if self._quota_reads.get(tenant) is done:
            del self._quota_reads[tenant]
        if not done.cancelled():
            done.exception()  # retrieved: those that waited on it have had it

    def last_quota_status(self, tenant: str) -> QuotaStatus | None:
        """The last status :meth:`quota_status` read, however old (no I/O): what a
        search's share falls back on when the store cannot answer."""
        seen = self._quotas_seen.get(tenant)
        return seen[0] if seen is not None else None

    def forget_quota_status(self, tenant: str) -> None:
        with self._lock:
            self._quotas_seen.pop(tenant, None)

    def kept_grant(self, token: str) -> tuple[bool, TokenGrant | None]:
        """``(True, answer)`` when :meth:`grant_for` answered for this token within
        TOKEN_CACHE_S seconds (no I/O: safe on the event loop), else ``(False, None)``."""
        seen = self._tokens_seen.get(token_digest(token))
        if seen is not None and time.monotonic() - seen[1] < TOKEN_CACHE_S:
            return True, seen[0]
        return False, None

    def grant_for(self, token: str) -> TokenGrant | None:
        """The tenant, id and scopes of a token; answers are kept for TOKEN_CACHE_S
        seconds (a revocation made elsewhere takes at most that long to apply here),
        under the token's digest: this process keeps no clear token."""
        kept, grant = self.kept_grant(token)
        if kept:
            return grant
        now = time.monotonic()
        key = token_digest(token)
        revocations = self._revocations
        grant = self.tokens.identify(token)
        with self._lock:
            # A revocation through this process while the lookup ran: the answer may be
            # older than it, so it is used for this request alone, never kept.
            if revocations == self._revocations:
                if len(self._tokens_seen) > 10_000:
                    self._tokens_seen.clear()
                self._tokens_seen[key] = (grant, now)
        return grant

    def forget_token(self, token_id: str) -> None:
        """Drop the kept answer of a token revoked through this process: here the
        revocation applies at once."""
        with self._lock:
            self._revocations += 1
            for key, (grant, _) in list(self._tokens_seen.items()):
                if grant is not None and grant.token_id == token_id:
                    self._tokens_seen.pop(key, None)

    def close(self) -> None:
        with self._lock:
            built, self._built = list(self._built.values()), {}
        for item in built:
            parts = [item.jobs, item.snapshots] if isinstance(item, JobContext) else [item]
            for part in parts:
                close = getattr(part, "close", None)
                if callable(close):
                    close()


def ranking_from(s: QuarrySettings) -> Ranking:
    """The ranking the settings ask for (``search_*``)."""
    return Ranking(
        fusion=s.search_fusion,
        rrf_k=s.search_rrf_k,
        weight_vector=s.search_weight_vector,
        weight_lexical=s.search_weight_lexical,
        identifier_share=s.search_identifier_share,
        identifier_weight_vector=s.search_identifier_weight_vector,
        identifier_weight_lexical=s.search_identifier_weight_lexical,
        name_boost=s.search_name_boost,
        symbol_words_boost=s.search_symbol_words_boost,
        path_penalty=s.search_path_penalty,
        file_boost=s.search_file_boost,
        merge_definitions=s.search_merge_definitions,
        named_first_share=s.search_named_first_share,
    )

"""A model switch's work: the live models' embedding services, the backfill, the switch.

:class:`LiveModels` gives the embed stage the services of the registry's live models
(pipeline.embedding_models): the active one, whose vectors WRITE stores as today, and
the one being backfilled, whose vectors ride along (``more_vectors``), so that chunks
indexed during a backfill need no catching up. It reads the registry at most every
``refresh_s`` and registers the configured model as active when the index has none.

:func:`backfill_step` embeds, through the per-model content-hash cache, every chunk
row the new model lacks, in key order, batch by batch, for at most ``budget_s``; a
pass that finds nothing missing switches (the registry checks coverage again in the
switch's own transaction: a row written meanwhile sends the backfill round again).
:func:`retire_step` then repairs the rows a stale writer left without a vector of the
new model and drops the old model's vectors.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver or model library.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.embedding_models import ModelSpec, RegisteredModel, check_loaded
from pipeline.errors import ConflictError, TransientError
from pipeline.ports import EmbeddingCache
from pipeline.stages.embedding import EmbeddingService, Vector

log = logging.getLogger("quarry.models")
Key = tuple[int, str, str]


class ModelRegistry(Protocol):
    """The registry as the backfill uses it (PgModelRegistry)."""

    def live(self) -> list[RegisteredModel]: ...
    def models(self) -> list[RegisteredModel]: ...
    def ensure_active(self, spec: ModelSpec) -> RegisteredModel: ...
    def missing(self, model: RegisteredModel, after: Key | None, limit: int) -> list[Any]: ...
    def write_vectors(self, model: RegisteredModel, rows: Mapping[Key, Any]) -> int: ...
    def progress(self, model: RegisteredModel) -> tuple[int, int]: ...
    def switch(self, model: RegisteredModel) -> int: ...
    def drop_retired(self) -> list[str]: ...
    def cancel(self, model: RegisteredModel, error: str | None = None) -> bool: ...


class LiveModels:
    """The embedding services of the live models; ``load`` builds one for a registered
    model (its dimension checked against the registry's)."""

    def __init__(
        self,
        registry: ModelRegistry,
        configured: EmbeddingService,
        configured_spec: ModelSpec,
        load: Callable[[RegisteredModel], EmbeddingService],
        *,
        refresh_s: float = 2.0,
    ) -> None:
        self.registry = registry
        self.configured = configured
        self.configured_spec = configured_spec
        self._load = load
        self._refresh_s = refresh_s
        self._services: dict[str, EmbeddingService] = {configured.model_id: configured}
        self._live: list[RegisteredModel] = []
        self._read_at = -1e9
        self._lock = threading.Lock()

    def live(self) -> list[RegisteredModel]:
        """The active model first, then the one being backfilled; the last answer when
        the registry does not answer now (the configured model before any)."""
        now = time.monotonic()
        if now - self._read_at < self._refresh_s:
            return self._live
        try:
            live = self.registry.live()
            if not any(m.state == "active" for m in live):
                self.registry.ensure_active(self.configured_spec)
                live = self.registry.live()
        except TransientError as exc:
            log.warning("model registry unavailable, embedding with the models known: %s", exc)
            return self._live
        if live and live[0].model_id != self.configured.model_id and not self._live:
            log.warning(
                "the configured model %s is not the active model %s: embedding with %s"
                " (the registry decides; `quarry model status`)",
                self.configured.model_id,
                live[0].model_id,
                live[0].model_id,
            )
        self._live, self._read_at = live, now
        return live

    def service(self, model: RegisteredModel) -> EmbeddingService:
        with self._lock:
            found = self._services.get(model.model_id)
            if found is None:
                found = self._load(model)
                check_loaded(model, found.embedder.dimension)
                self._services[model.model_id] = found
            return found

    def services(self) -> tuple[EmbeddingService, list[EmbeddingService]]:
        """The service WRITE's vectors come from, and those of models being backfilled."""
        live = self.live()
        if not live:
            return self.configured, []
        primary = self.service(live[0])
        extra = []
        for model in live[1:]:
            try:
                extra.append(self.service(model))
            except Exception as exc:  # noqa: BLE001 (the backfill's own task reports it and cancels)
                log.warning("model %s does not load here, not embedded: %s", model.model_id, exc)
        return primary, extra


class CachedVectors:
    """The chunk stage's look into the embedding cache (pipeline.stages.embed
    .write_cached): the active model's id and its cached vectors among the hashes asked.

    None, so that the embed stage sees the files as before, when the registry has no
    active model yet (the embed stage registers it), when another model is live (a
    backfill: the embed stage embeds for it too), or when the registry or the cache does
    not answer. The registry is read at most every ``refresh_s``, as the embed stage's
    :class:`LiveModels` reads it."""

    def __init__(
        self, registry: ModelRegistry, cache: EmbeddingCache, *, refresh_s: float = 2.0
    ) -> None:
        self._registry = registry
        self._cache = cache
        self._refresh_s = refresh_s
        self._live: list[RegisteredModel] | None = None
        self._read_at = -1e9

    def __call__(self, hashes: Sequence[str]) -> tuple[str, Mapping[str, Vector]] | None:
        now = time.monotonic()
        try:
            if self._live is None or now - self._read_at >= self._refresh_s:
                self._live, self._read_at = self._registry.live(), now
            if len(self._live) != 1 or self._live[0].state != "active":
                return None
            model_id = self._live[0].model_id
            return model_id, self._cache.get_many(model_id, hashes)
        except TransientError as exc:
            log.info(
                "embedding cache or registry unavailable, files go to the embed stage: %s", exc
            )
            return None


@dataclass(frozen=True, slots=True)
class BackfillStep:
    """What one step did: rows written, the key it stopped after (None: a pass ended),
    whether the switch was made, and the progress counted at its end."""

    written: int = 0
    embedded: int = 0
    after: Key | None = None
    switched: bool = False
    stopped: bool = False
    done: int = 0
    total: int = 0


def backfill_step(
    registry: ModelRegistry,
    service: EmbeddingService,
    model_id: str,
    *,
    after: Key | None,
    batch_rows: int,
    budget_s: float,
) -> BackfillStep:
    """Fill ``model_id``'s vectors for up to ``budget_s``, switching when it covers all."""
    model = next((m for m in registry.live() if m.model_id == model_id), None)
    if model is None or model.state != "backfilling":
        return BackfillStep(stopped=True)
    deadline = time.monotonic() + budget_s
    written = embedded = 0
    while time.monotonic() < deadline:
        rows = registry.missing(model, after, batch_rows)
        if rows:
            written_now, embedded_now = fill(registry, service, model, rows)
            written, embedded = written + written_now, embedded + embedded_now
            after = rows[-1][0]
            continue
        if after is not None:
            after = None  # a pass ended: once more from the start, for rows written meanwhile
            continue
        try:
            missing = registry.switch(model)
        except ConflictError:  # another chain of steps (`quarry model resume`) switched
            return BackfillStep(written, embedded, stopped=True)
        if missing == 0:
            done, total = registry.progress(model)
            log.info("model %s covers all %d chunk rows: switched", model_id, total)
            return BackfillStep(written, embedded, None, True, False, done, total)
    done, total = registry.progress(model)
    return BackfillStep(written, embedded, after, False, False, done, total)


def fill(
    registry: ModelRegistry,
    service: EmbeddingService,
    model: RegisteredModel,
    rows: Sequence[tuple[Key, str, str]],
) -> tuple[int, int]:
    """Embed ``rows`` (key, content hash, text) through the cache and write them."""
    outcome = service.embed([(content_hash, text) for _, content_hash, text in rows])
    vectors = {key: outcome.vectors.get(content_hash) for key, content_hash, _ in rows}
    return registry.write_vectors(model, vectors), outcome.embedded


def retire_step(
    registry: ModelRegistry, service: EmbeddingService, *, batch_rows: int, budget_s: float
) -> tuple[int, list[str] | None]:
    """After a switch: the active model's missing rows filled (a write that read the
    registry before the switch and carried only the old model's vectors), then the
    retired models' vectors dropped. The rows filled and the model ids dropped; None
    instead of the ids when ``budget_s`` ran out with rows still missing (nothing is
    dropped then: the caller runs it again)."""
    active = next((m for m in registry.live() if m.state == "active"), None)
    written = 0
    if active is not None and not active.in_chunks_table:
        deadline, after = time.monotonic() + budget_s, None
        while time.monotonic() < deadline:
            rows = registry.missing(active, after, batch_rows)
            if not rows:
                break
            written += fill(registry, service, active, rows)[0]
            after = rows[-1][0]
        if registry.missing(active, None, 1):
            return written, None
    return written, registry.drop_retired()

"""The embedding use case: cache first, embed only the misses, in device batches.

Owns the content-addressed rule: a vector is keyed by (model id, content hash), looked
up before anything is embedded, and stored once computed, so identical chunks across
files, branches, forks and repositories are embedded once per model. Also owns the
query path for search (a short-lived cache in front of the model).

Must not import: celery, tasks/, workers/, api/, cli/, or any driver or model library.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pipeline.errors import InvalidInputError, PipelineError, TransientError
from pipeline.ports import Embedder, EmbeddingCache, QueryEmbeddingCache
from pipeline.stages.batching import embed_halving, plan_batches

Vector = npt.NDArray[np.float32]
log = logging.getLogger("quarry.embed")


@dataclass(frozen=True, slots=True)
class BatchStat:
    """One device batch: members, real and padded tokens, seconds on the device."""

    chunks: int
    tokens: int
    padded_tokens: int
    seconds: float


@dataclass(slots=True)
class EmbedOutcome:
    """Vectors by content hash, and what it took to get them.

    ``embedded`` and ``cached`` count distinct contents; ``empty`` counts texts that
    were blank (they get no vector); ``truncated`` counts contents longer than the
    model's window (the model embeds their first ``max_tokens`` word-pieces).
    """

    vectors: dict[str, Vector] = field(default_factory=dict)
    embedded: int = 0
    cached: int = 0
    empty: int = 0
    truncated: int = 0
    halvings: int = 0
    batches: list[BatchStat] = field(default_factory=list)
    cached_hashes: frozenset[str] = frozenset()

    @property
    def cache_hit_ratio(self) -> float:
        looked_up = self.embedded + self.cached
        return self.cached / looked_up if looked_up else 0.0


class EmbeddingService:
    """Embeds chunk texts through the cache, ``batch_tokens`` padded tokens at a time."""

    def __init__(
        self,
        embedder: Embedder,
        cache: EmbeddingCache,
        *,
        batch_tokens: int,
        max_chunks: int,
    ) -> None:
        self.embedder = embedder
        self.cache = cache
        self.batch_tokens = batch_tokens
        self.max_chunks = max_chunks

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    def embed(self, items: Sequence[tuple[str, str]]) -> EmbedOutcome:
        """Vectors for ``(content_hash, text)`` items; blank texts get none."""
        outcome = EmbedOutcome()
        texts: dict[str, str] = {}
        for content_hash, text in items:
            if not content_hash:
                raise InvalidInputError(f"chunk text {text[:40]!r} has no content hash")
            if not text.strip():
                outcome.empty += 1
                continue
            texts.setdefault(content_hash, text)
        if not texts:
            return outcome
        model_id = self.embedder.model_id
        outcome.vectors = self._cached(model_id, list(texts))
        outcome.cached = len(outcome.vectors)
        outcome.cached_hashes = frozenset(outcome.vectors)
        misses = [h for h in texts if h not in outcome.vectors]
        if misses:
            computed = self._compute([texts[h] for h in misses], outcome)
            fresh = dict(zip(misses, computed, strict=True))
            self._keep(model_id, fresh)
            outcome.vectors.update(fresh)
            outcome.embedded = len(misses)
        return outcome

    # The cache saves work; it is not needed for it. A cache that is down (its store
    # unreachable, its breaker open) costs recomputation, never a failed batch.
    def _cached(self, model_id: str, hashes: list[str]) -> dict[str, Vector]:
        try:
            return self.cache.get_many(model_id, hashes)
        except TransientError as exc:
            log.warning("embedding cache unavailable, embedding %d texts: %s", len(hashes), exc)
            return {}

    def _keep(self, model_id: str, vectors: dict[str, Vector]) -> None:
        try:
            self.cache.put_many(model_id, vectors)
        except TransientError as exc:
            log.warning("embedding cache unavailable, %d vectors not kept: %s", len(vectors), exc)

    def _compute(self, texts: list[str], outcome: EmbedOutcome) -> list[Vector]:
        window = self.embedder.max_tokens
        counts = self.embedder.count_tokens(texts)
        outcome.truncated += sum(1 for n in counts if n > window)
        capped = [min(n, window) for n in counts]
        plan = plan_batches(capped, batch_tokens=self.batch_tokens, max_chunks=self.max_chunks)
        result: list[Vector | None] = [None] * len(texts)

        def halved(_size: int) -> None:
            outcome.halvings += 1

        for batch in plan.batches:
            started = time.perf_counter()
            vectors = embed_halving(self.embedder.embed, [texts[i] for i in batch], on_halve=halved)
            seconds = time.perf_counter() - started
            tokens = sum(capped[i] for i in batch)
            width = max(capped[i] for i in batch)
            outcome.batches.append(BatchStat(len(batch), tokens, width * len(batch), seconds))
            for index, vector in zip(batch, vectors, strict=True):
                result[index] = vector
        return [v for v in result if v is not None]


def warn_of_other_model_ids(cache: EmbeddingCache, model_id: str) -> list[str]:
    """The other model ids the cache holds vectors of, logged as a warning: after a
    switch of ``embed_backend`` (to or from ``onnx-int8``) or of model, the chunks of
    files unchanged since keep the old id, and vector search (which asks for
    ``model_id``'s vectors only) skips them until they are indexed again. A cache that
    does not answer is no reason to stop a worker: [] then."""
    try:
        others = [m for m in cache.model_ids() if m != model_id]
    except PipelineError as exc:
        log.debug("embedding cache's model ids not read: %s", exc)
        return []
    if others:
        log.warning(
            "embedding with model id %s, but the embedding cache also holds vectors of %s"
            " (another embed_backend or model): vector search skips chunks stored under"
            " those ids until their files are indexed again",
            model_id,
            ", ".join(others),
        )
    return others


def embed_query(embedder: Embedder, cache: QueryEmbeddingCache | None, query: str) -> Vector:
    """The vector of a search query; a repeated query is served from ``cache``."""
    if not query.strip():
        raise InvalidInputError("the query is empty")
    if cache is not None:
        hit = cache.get(embedder.model_id, query)
        if hit is not None:
            return hit
    vector: Vector = embedder.embed([query])[0]
    if cache is not None:
        cache.put(embedder.model_id, query, vector)
    return vector

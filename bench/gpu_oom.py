"""Out-of-memory on a real model, through the embed stage's halving: the GPU check and its
CPU rehearsal.

Owns two ways to make the real sentence-transformers model run out of memory, and the
check that the embed stage then halves the batch and still embeds every chunk exactly
once: :func:`cuda_memory_cap` caps this process's share of the GPU
(``torch.cuda.set_per_process_memory_fraction``), so the CUDA caching allocator itself
raises ``torch.cuda.OutOfMemoryError`` for a batch above the cap; :func:`injected_oom`
raises that same exception from a forward pre-hook of the real model, on any device,
for a batch wider than a padded-token budget, so the adapter's translation and the
halving are rehearsed on a CPU with the real model and tokenizer.

Must not import: api/, workers/, tasks/. ``torch`` is imported inside functions.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.errors import EmbeddingOutOfMemoryError
from pipeline.ports import Embedder
from pipeline.stages.embedding import EmbeddingService

Vector = npt.NDArray[np.float32]


@contextmanager
def injected_oom(max_padded_tokens: int) -> Iterator[list[int]]:
    """While open, a model call on a batch of more than ``max_padded_tokens`` padded
    word-pieces raises ``torch.cuda.OutOfMemoryError``, as the CUDA allocator would.

    Yields the sizes of the batches refused. The hook is global (every ``nn.Module``), so
    it catches the first module that receives the tokenised features, whatever the
    sentence-transformers version calls it.
    """
    import torch

    refused: list[int] = []

    def refuse_wide(_module: Any, args: tuple[Any, ...]) -> None:
        features = args[0] if args else None
        if isinstance(features, Mapping) and "input_ids" in features:
            ids = features["input_ids"]
            if int(ids.numel()) > max_padded_tokens:
                refused.append(int(ids.shape[0]))
                raise torch.cuda.OutOfMemoryError(
                    f"injected: {ids.shape[0]} x {ids.shape[1]} padded word-pieces "
                    f"over a budget of {max_padded_tokens}"
                )

    handle = torch.nn.modules.module.register_module_forward_pre_hook(refuse_wide)
    try:
        yield refused
    finally:
        handle.remove()


@contextmanager
def cuda_memory_cap(cap_mib: int) -> Iterator[list[int]]:
    """While open, this process may hold at most ``cap_mib`` of GPU 0 (a real OOM above)."""
    import torch

    total = int(torch.cuda.get_device_properties(0).total_memory)
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap_mib * 2**20 / total), 0)
    try:
        yield []
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()


class ColdCache:
    """An embedding cache that never hits and keeps nothing: every text is embedded."""

    def get_many(self, model_id: str, content_hashes: Sequence[str]) -> dict[str, Vector]:
        return {}

    def put_many(self, model_id: str, vectors: Mapping[str, Vector]) -> None:
        return None

    def model_ids(self) -> list[str]:
        return []


class CountingEmbedder:
    """An Embedder passing through to ``inner``; records what each call embedded or why
    it ran out of memory (the exception under the adapter's EmbeddingOutOfMemoryError)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.embedded: list[str] = []
        self.batch_sizes: list[int] = []
        self.ooms: list[tuple[int, str, str]] = []

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def device(self) -> str:
        return self.inner.device

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def embed(self, texts: Sequence[str]) -> Vector:
        try:
            vectors = self.inner.embed(texts)
        except EmbeddingOutOfMemoryError as exc:
            cause = exc.__cause__
            name = type(cause).__name__ if cause is not None else "none"
            self.ooms.append((len(texts), name, str(cause if cause is not None else exc)[:300]))
            raise
        self.embedded.extend(texts)
        self.batch_sizes.append(len(texts))
        return vectors


def oom_check(
    embedder: Embedder,
    texts: Sequence[str],
    cap: Callable[[], AbstractContextManager[list[int]]],
    *,
    reference_batch: int = 32,
) -> dict[str, Any]:
    """All ``texts`` planned as ONE device batch through the embed stage under ``cap``.

    Passes when the batch ran out of memory for real (the adapter's error caused by
    ``torch.cuda.OutOfMemoryError``), the stage halved it, every distinct text was
    embedded exactly once, and each vector matches the same text embedded in small
    batches without the cap (cosine ≥ 0.999, all finite).
    """
    distinct = list(dict.fromkeys(texts))
    counting = CountingEmbedder(embedder)
    window = embedder.max_tokens
    service = EmbeddingService(
        counting, ColdCache(), batch_tokens=len(distinct) * window, max_chunks=len(distinct)
    )
    items = [(hashlib.sha256(t.encode()).hexdigest(), t) for t in distinct]
    started = time.perf_counter()
    with cap() as refused:
        outcome = service.embed(items)
    seconds = time.perf_counter() - started
    reference = np.concatenate(
        [
            embedder.embed(distinct[i : i + reference_batch])
            for i in range(0, len(distinct), reference_batch)
        ]
    )
    got = np.stack([outcome.vectors[h] for h, _ in items])
    counts = Counter(counting.embedded)
    cosine = np.sum(got * reference, axis=1)
    result: dict[str, Any] = {
        "chunks": len(distinct),
        "planned_batches": len(outcome.batches),
        "halvings": outcome.halvings,
        "oom_events": len(counting.ooms),
        "oom_causes": sorted({name for _, name, _ in counting.ooms}),
        "first_oom": counting.ooms[0][2] if counting.ooms else None,
        "oom_batch_sizes": [size for size, _, _ in counting.ooms],
        "refused_by_injection": list(refused),
        "embedded_batch_sizes": sorted(Counter(counting.batch_sizes).items(), reverse=True),
        "missing": sum(1 for t in distinct if counts[t] == 0),
        "duplicated": sum(1 for t in distinct if counts[t] > 1),
        "every_chunk_embedded_once": all(counts[t] == 1 for t in distinct)
        and len(counting.embedded) == len(distinct),
        "finite": bool(np.isfinite(got).all()),
        "cosine_min_vs_small_batches": round(float(cosine.min()), 6),
        "seconds": round(seconds, 2),
    }
    result["passed"] = bool(
        result["planned_batches"] == 1
        and result["halvings"] > 0
        and result["oom_causes"] == ["OutOfMemoryError"]
        and result["every_chunk_embedded_once"]
        and result["finite"]
        and result["cosine_min_vs_small_batches"] >= 0.999
    )
    return result

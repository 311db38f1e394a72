"""Device batches by a token budget: length-sorted, padding-aware, halved on out-of-memory.

Owns how texts waiting to be embedded become device batches. A batch costs what the
device computes, its padded size: the longest member's tokens times the number of
members. Sorting by length first keeps members of a batch close in length, so little
padding is computed; a budget in tokens (not a count) keeps both a batch of short
snippets and a batch of full windows at about the same memory and latency.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver or model library.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pipeline.errors import EmbeddingOutOfMemoryError


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """Indices into the caller's texts, one tuple per device batch, longest first."""

    batches: tuple[tuple[int, ...], ...]
    padded_tokens: int
    real_tokens: int


def plan_batches(tokens: Sequence[int], *, batch_tokens: int, max_chunks: int) -> BatchPlan:
    """Pack texts of ``tokens`` word-pieces (already capped at the window) into batches.

    A batch never exceeds ``batch_tokens`` padded tokens nor ``max_chunks`` members; a
    single text longer than the budget still gets a batch of its own.
    """
    if batch_tokens < 1 or max_chunks < 1:
        raise ValueError("batch_tokens and max_chunks must be positive")
    order = sorted(range(len(tokens)), key=lambda i: tokens[i], reverse=True)
    batches: list[tuple[int, ...]] = []
    current: list[int] = []
    longest = 0
    padded = 0
    for index in order:
        length = max(1, tokens[index])
        # Sorted longest first: the batch's first member sets its padded width.
        width = longest or length
        if current and ((len(current) + 1) * width > batch_tokens or len(current) >= max_chunks):
            batches.append(tuple(current))
            padded += len(current) * longest
            current, longest = [], 0
        if not current:
            longest = length
        current.append(index)
    if current:
        batches.append(tuple(current))
        padded += len(current) * longest
    return BatchPlan(tuple(batches), padded, sum(max(1, t) for t in tokens))


EmbedFn = Callable[[Sequence[str]], npt.NDArray[np.float32]]


def embed_halving(
    embed: EmbedFn,
    texts: Sequence[str],
    *,
    on_halve: Callable[[int], None] | None = None,
) -> npt.NDArray[np.float32]:
    """``embed(texts)``; on out-of-memory, the batch in halves (recursively) and again.

    Raises :class:`EmbeddingOutOfMemoryError` only when a single text does not fit.
    ``on_halve`` is told the size of each batch that had to be split.
    """
    try:
        return embed(texts)
    except EmbeddingOutOfMemoryError:
        if len(texts) <= 1:
            raise
        if on_halve is not None:
            on_halve(len(texts))
        middle = len(texts) // 2
        first = embed_halving(embed, texts[:middle], on_halve=on_halve)
        second = embed_halving(embed, texts[middle:], on_halve=on_halve)
        return np.concatenate([first, second])

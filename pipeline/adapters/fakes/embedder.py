"""The fake embedder: deterministic unit vectors from a hash of the text, no model.

Behaves as the Embedder port promises (unit float32 rows, one per text, identical
texts give identical vectors, truncation at ``max_tokens`` whitespace words) and can
simulate a device that runs out of memory above ``max_batch`` texts. It counts every
text it embeds, so tests can assert what was (not) recomputed.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from pipeline.errors import EmbeddingOutOfMemoryError


class InMemoryEmbedder:
    """An :class:`~pipeline.ports.Embedder` for tests: a text's words hashed to a vector."""

    def __init__(
        self,
        *,
        dimension: int = 384,
        max_tokens: int = 256,
        model_id: str = "fake-embedder",
        max_batch: int | None = None,
    ) -> None:
        self._dimension = dimension
        self._max_tokens = max_tokens
        self._model_id = model_id
        self.max_batch = max_batch
        self.embedded_texts: list[str] = []
        self.batch_sizes: list[int] = []

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def device(self) -> str:
        return "cpu (fake)"

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) + 2 for text in texts]

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if self.max_batch is not None and len(texts) > self.max_batch:
            raise EmbeddingOutOfMemoryError(f"fake device holds {self.max_batch} texts")
        self.batch_sizes.append(len(texts))
        self.embedded_texts.extend(texts)
        rows = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = text.split()[: self._max_tokens - 2] or [""]
            for word in words:
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                seed = int.from_bytes(digest, "little")
                rows[row] += np.random.default_rng(seed).standard_normal(self._dimension)
            norm = float(np.linalg.norm(rows[row]))
            rows[row] = rows[row] / norm if norm else 1.0 / np.sqrt(self._dimension)
        return rows

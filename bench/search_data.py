"""Synthetic chunks for the search benchmark, and its figures (recall, percentiles). Pure.

The generator (:class:`SyntheticCorpus`) is seeded and deterministic; it takes the real
chunks' vectors and words:

- **Clusters.** ``ceil(count / chunks_per_cluster)`` clusters. Each centre is the vector
  of a real chunk drawn at random (its *topic* chunk), so synthetic chunks live where
  the model puts code, not all over the sphere. Cluster sizes are uneven: each row picks
  its cluster with probability proportional to a log-normal(0, 1) weight per cluster.
  Rows are ordered by cluster, so the chunks of one synthetic file are alike.
- **Vectors.** ``normalise(centre + s * L z)`` with ``z ~ N(0, I)``, ``L`` the square root
  of the covariance of the real vectors (the noise has the real embedding's anisotropic
  spread, not an isotropic one) and ``s ~ U(spread)`` per cluster.
- **Text.** As many words as a real chunk drawn at random has; each word comes with
  probability ``topic_share`` from the topic chunk's words, else from the corpus-wide
  frequency of the real chunks' lexical words (Zipf-like), so common words are as common
  as in real code and the full-text side pays its real cost. ``WORDS_PER_LINE`` per line.
- **Queries.** A cluster's centre plus half its spread of noise (a perturbed centre),
  with 3-8 words of its topic chunk that are not stop words.

Rows are produced in batches of ``BATCH_ROWS``; each batch has its own generator seeded
by ``(seed, batch)``, so the data do not depend on how they are consumed.

Must not import: torch, api/, any driver.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pipeline.search.query import STOP_WORDS, SearchRequest
from pipeline.statements.sql import ChunkRow

Vectors = npt.NDArray[np.float32]
BATCH_ROWS = 50_000
WORDS_PER_LINE = 10
LINES_PER_SLOT = 200  # chunk j of a synthetic file starts at line 1 + j * LINES_PER_SLOT
MAX_WORDS = LINES_PER_SLOT * WORDS_PER_LINE
SLOT_BYTES = 1 << 20  # byte offsets of chunk j: j * SLOT_BYTES onwards


def normalised(rows: npt.NDArray[np.floating]) -> Vectors:
    """Each row scaled to unit length (a zero row stays zero), as float32."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    out: Vectors = (rows / np.where(norms == 0, 1.0, norms)).astype(np.float32)
    return out


@dataclass(frozen=True)
class Vocabulary:
    """The real chunks' words: the distinct words, their corpus-wide frequency, and each
    chunk's words as ids (chunk ``i``: ``tokens[offsets[i]:offsets[i + 1]]``)."""

    words: npt.NDArray[np.object_]
    probabilities: npt.NDArray[np.float64]
    tokens: npt.NDArray[np.int64]
    offsets: npt.NDArray[np.int64]

    @classmethod
    def of(cls, texts: Sequence[str]) -> Vocabulary:
        """``texts`` are lexical texts (``pipeline.search.lexical.lexical_text``), one per chunk."""
        ids: dict[str, int] = {}
        counts: Counter[int] = Counter()
        tokens: list[int] = []
        offsets = [0]
        for text in texts:
            row = [ids.setdefault(w, len(ids)) for w in text.split()]
            counts.update(row)
            tokens += row
            offsets.append(len(tokens))
        if not ids:
            raise ValueError("the vocabulary needs at least one word")
        frequency = np.array([counts[i] for i in range(len(ids))], dtype=np.float64)
        return cls(
            np.array(list(ids), dtype=object),
            frequency / frequency.sum(),
            np.array(tokens, dtype=np.int64),
            np.array(offsets, dtype=np.int64),
        )

    @property
    def lengths(self) -> npt.NDArray[np.int64]:
        return np.diff(self.offsets)


@dataclass(frozen=True)
class SyntheticBatch:
    """Rows ``start`` .. ``start + len(texts)``: their clusters, vectors and texts."""

    start: int
    clusters: npt.NDArray[np.int64]
    vectors: Vectors
    texts: list[str]


class SyntheticCorpus:
    """``count`` synthetic chunks around the real chunks (see the module docstring)."""

    def __init__(
        self,
        count: int,
        real_vectors: Vectors,
        vocabulary: Vocabulary,
        *,
        seed: int = 7,
        chunks_per_cluster: int = 1000,
        chunks_per_file: int = 20,
        topic_share: float = 0.5,
        spread: tuple[float, float] = (0.5, 1.0),
    ) -> None:
        if len(real_vectors) != len(vocabulary.lengths):
            raise ValueError("one vector per real chunk is needed")
        self.count = count
        self.seed = seed
        self.chunks_per_cluster = chunks_per_cluster
        self.spread = spread
        self.chunks_per_file = chunks_per_file
        self.topic_share = topic_share
        self._vocabulary = vocabulary
        rng = np.random.default_rng([seed, 0])
        clusters = max(1, -(-count // chunks_per_cluster))
        self.topics = rng.integers(0, len(real_vectors), clusters)
        self.centres = real_vectors[self.topics].astype(np.float64)
        self.spreads = rng.uniform(spread[0], spread[1], clusters)
        weights = rng.lognormal(0.0, 1.0, clusters)
        self.assignment = np.sort(rng.choice(clusters, size=count, p=weights / weights.sum()))
        values, vectors = np.linalg.eigh(np.cov(real_vectors.astype(np.float64), rowvar=False))
        self._root = vectors * np.sqrt(np.clip(values, 0.0, None))
        self._lengths = np.clip(vocabulary.lengths, 1, MAX_WORDS)

    @property
    def clusters(self) -> int:
        return len(self.topics)

    @property
    def batches(self) -> int:
        return -(-self.count // BATCH_ROWS)

    def noise(self, rng: np.random.Generator, rows: int) -> npt.NDArray[np.float64]:
        """``rows`` draws of the real vectors' covariance (``L z``)."""
        draws = rng.standard_normal((rows, self._root.shape[0]))
        noise: npt.NDArray[np.float64] = draws @ self._root.T
        return noise

    def batch(self, number: int) -> SyntheticBatch:
        """Batch ``number`` (0-based) of ``BATCH_ROWS`` rows (the last may be shorter)."""
        start = number * BATCH_ROWS
        stop = min(self.count, start + BATCH_ROWS)
        if not 0 <= start < stop:
            raise IndexError(f"batch {number}: out of range (0..{self.batches - 1})")
        rng = np.random.default_rng([self.seed, 1 + number])
        clusters = self.assignment[start:stop]
        scale = self.spreads[clusters][:, None]
        vectors = normalised(self.centres[clusters] + scale * self.noise(rng, stop - start))
        return SyntheticBatch(start, clusters, vectors, self._texts(rng, clusters))

    def _texts(self, rng: np.random.Generator, clusters: npt.NDArray[np.int64]) -> list[str]:
        vocab = self._vocabulary
        lengths = rng.choice(self._lengths, size=len(clusters))
        total = int(lengths.sum())
        topic = np.repeat(self.topics[clusters], lengths)
        own = vocab.offsets[topic] + (rng.random(total) * vocab.lengths[topic]).astype(np.int64)
        common = rng.choice(len(vocab.words), size=total, p=vocab.probabilities)
        ids = np.where(rng.random(total) < self.topic_share, vocab.tokens[own], common)
        words = vocab.words[ids].tolist()
        texts, at = [], 0
        for length in lengths.tolist():
            row = words[at : at + length]
            at += length
            texts.append(
                "\n".join(
                    " ".join(row[i : i + WORDS_PER_LINE]) for i in range(0, length, WORDS_PER_LINE)
                )
            )
        return texts

    def queries(self, count: int, seed: int) -> tuple[list[str], Vectors]:
        """``count`` (text, vector) queries: perturbed centres of clusters drawn by size."""
        rng = np.random.default_rng([self.seed, seed, 2**31])
        clusters = self.assignment[rng.integers(0, self.count, count)]
        noise = self.noise(rng, count) * (self.spreads[clusters][:, None] / 2)
        vectors = normalised(self.centres[clusters] + noise)
        vocab = self._vocabulary
        texts = []
        for cluster in clusters.tolist():
            topic = int(self.topics[cluster])
            own = vocab.words[vocab.tokens[vocab.offsets[topic] : vocab.offsets[topic + 1]]]
            pool = sorted({str(w) for w in own if w not in STOP_WORDS and len(str(w)) > 2})
            if not pool:
                pool = [str(w) for w in vocab.words[:50]]
            size = min(len(pool), int(rng.integers(3, 9)))
            texts.append(" ".join(rng.choice(pool, size=size, replace=False).tolist()))
        return texts, vectors

    def rows(self, batch: SyntheticBatch, model_id: str) -> list[ChunkRow]:
        """The batch as rows for ``pipeline.statements.sql.COPY_CHUNK_STAGING``: chunk ``j`` of a
        file starts at line ``1 + j * LINES_PER_SLOT``; its lexical text is its words."""
        out: list[ChunkRow] = []
        for i, text in enumerate(batch.texts):
            row = batch.start + i
            file, slot = divmod(row, self.chunks_per_file)
            path = synthetic_path(file)
            start_line = 1 + slot * LINES_PER_SLOT
            data = text.encode()
            out.append((
                synthetic_id(row), path, file_sha(path), start_line,
                start_line + text.count("\n"), slot * SLOT_BYTES, slot * SLOT_BYTES + len(data),
                f"module_{file}.function_{slot}", "function", "python", text,
                hashlib.sha256(data).hexdigest(), model_id, batch.vectors[i], text,
            ))  # fmt: skip
        return out


@dataclass(frozen=True)
class BenchQuery:
    """One query: its text, its vector (what ``encode`` returns when cached), its origin."""

    text: str
    vector: Vectors
    source: str


@dataclass(frozen=True)
class Target:
    """Where the searches go (tenant, repository, model id of the rows) and how the index
    and the searcher are set up (the server's settings: ``search_*``)."""

    dsn: str
    tenant: str
    repo: str
    model_id: str
    exact_max_rows: int = 20_000
    lexical_seed: int = 16
    iterative_scan: str = "relaxed_order"
    max_scan_tuples: int = 20_000
    rrf_k: int = 60
    weights: tuple[tuple[str, float], ...] = ()

    def request(self, text: str, k: int, mode: str = "hybrid") -> SearchRequest:
        return SearchRequest(self.tenant, text, repos=(self.repo,), k=k, mode=mode)


def synthetic_path(file: int) -> str:
    return f"synthetic/{file // 1000:04d}/module_{file:07d}.py"


def synthetic_id(row: int) -> str:
    """The chunk id of synthetic row ``row``: 32 hex digits, like a real chunk id."""
    return hashlib.sha256(f"quarry-bench-synthetic:{row}".encode()).hexdigest()[:32]


def file_sha(path: str) -> str:
    return hashlib.sha256(f"quarry-bench-file:{path}".encode()).hexdigest()


def recall_at_k(
    found: Sequence[tuple[str, float]],
    exact: Sequence[tuple[str, float]],
    k: int,
    *,
    tolerance: float = 1e-5,
) -> float:
    """The share of the exact top ``k`` (id, similarity) that ``found``'s first ``k`` hold.

    A found hit counts when its id is in the exact top ``k``, or when its similarity is
    within ``tolerance`` of the ``k``-th exact one (a tie: equal vectors under other ids,
    float rounding between the database and the reference); at most ``k`` count.
    """
    top = exact[:k]
    if not top:
        return 1.0
    ids = {chunk_id for chunk_id, _ in top}
    floor = min(score for _, score in top) - tolerance
    good = sum(1 for chunk_id, score in found[:k] if chunk_id in ids or score >= floor)
    return min(good, len(top)) / len(top)


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """P50, P95 and P99 (linear interpolation) of durations, in ms, rounded to 0.01."""
    if not seconds:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    values = np.asarray(seconds, dtype=np.float64) * 1000
    p50, p95, p99 = np.percentile(values, [50, 95, 99]).tolist()
    return {"p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "p99_ms": round(p99, 2)}

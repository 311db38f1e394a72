"""The real side of the search benchmark: a corpus's chunks, their vectors, its queries.

Chunks: every file Quarry would index (``pipeline.analysis.selection``), chunked by
``pipeline.analysis.analyze.analyze_file`` with the model's token counter, as the chunk workers
do. Vectors: the chunk texts embedded by the API's query embedder (the fp32 ONNX export
of the workers' model: the same function as the torch workers, so the same space),
distinct texts only, longest first in batches; kept in ``<data_dir>/bench`` under a
name made of the model id and a digest of the texts, so a later run reads them back.
Queries: the first sentences of the corpus's function docstrings
(``cli.evaluation.build_set``), a seeded sample.

Must not import: torch, api/.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.search_data import BenchQuery, SyntheticCorpus, Vectors
from cli.evaluation import build_set
from pipeline.adapters.models.onnx_embedder import OnnxEmbedder
from pipeline.adapters.models.vocab import model_token_counter
from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.selection import select_files
from pipeline.models import Chunk, FileVersion
from pipeline.search.lexical import lexical_text

EMBED_BATCH = 32


@dataclass(frozen=True)
class RealCorpus:
    """A corpus's files and chunks; ``shas[i]`` is the file sha256 of ``chunks[i]``."""

    name: str
    root: Path
    files: tuple[FileVersion, ...]
    chunks: tuple[Chunk, ...]
    shas: tuple[str, ...]

    @property
    def lexical(self) -> list[str]:
        return [lexical_text(chunk.text) for chunk in self.chunks]


def load_corpus(root: Path) -> RealCorpus:
    counter = model_token_counter()
    files: list[FileVersion] = []
    chunks: list[Chunk] = []
    shas: list[str] = []
    for rel in select_files(root).files:
        data = (root / rel).read_bytes()
        analysis = analyze_file(rel, data, counter=counter)
        if not isinstance(analysis, FileAnalysis) or not analysis.chunks:
            continue
        sha = hashlib.sha256(data).hexdigest()
        files.append(FileVersion(rel, sha, analysis.source.language, len(data)))
        chunks.extend(analysis.chunks)
        shas.extend([sha] * len(analysis.chunks))
    if not chunks:
        raise ValueError(f"{root}: no file of it gives chunks")
    return RealCorpus(root.name, root, tuple(files), tuple(chunks), tuple(shas))


def embed_chunks(
    embedder: OnnxEmbedder, chunks: Sequence[Chunk], cache_dir: Path
) -> tuple[Vectors, bool]:
    """One vector per chunk, and whether they were read from the cache."""
    distinct = sorted({c.content_hash: c.text for c in chunks}.items())
    digest = hashlib.sha256()
    digest.update(embedder.model_id.encode())
    for content_hash, _ in distinct:
        digest.update(content_hash.encode())
    safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in embedder.model_id)
    cached = cache_dir / f"search-{safe_id}-{digest.hexdigest()[:16]}.npy"
    if cached.is_file():
        table = np.load(cached)
        hit = True
    else:
        texts = [text for _, text in distinct]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        table = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
        for at in range(0, len(order), EMBED_BATCH):
            picked = order[at : at + EMBED_BATCH]
            table[picked] = embedder.embed([texts[i] for i in picked])
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(cached, table)
        hit = False
    row_of = {content_hash: i for i, (content_hash, _) in enumerate(distinct)}
    vectors: Vectors = table[[row_of[c.content_hash] for c in chunks]]
    return vectors, hit


def docstring_queries(root: Path, count: int, seed: int) -> list[str]:
    """At most ``count`` distinct docstring queries of the corpus, a seeded sample."""
    texts = sorted({query.text for query in build_set(root).queries})
    order = np.random.default_rng(seed).permutation(len(texts))
    return [texts[i] for i in order[:count]]


def make_queries(
    root: Path,
    synthetic: SyntheticCorpus,
    embed: Callable[[list[str]], Vectors],
    count: int,
    warmup: int,
    *,
    seed: int,
) -> tuple[list[BenchQuery], list[BenchQuery]]:
    """(measured, warm-up) queries, each half docstrings of the corpus (all of them when
    there are no synthetic chunks), half synthetic; no text twice."""
    real_share = 0.5 if synthetic.count else 1.0
    real_count, real_warm = round(count * real_share), round(warmup * real_share)
    texts = docstring_queries(root, real_count + real_warm, seed)
    real = [BenchQuery(t, v, "docstring") for t, v in zip(texts, embed(texts), strict=True)]
    warm, measured = real[:real_warm], real[real_warm:]
    if synthetic.count:
        more = count - len(measured) + warmup - len(warm)
        made_texts, made_vectors = synthetic.queries(more, seed)
        made = [
            BenchQuery(t, v, "synthetic") for t, v in zip(made_texts, made_vectors, strict=True)
        ]
        split = warmup - len(warm)
        warm, measured = warm + made[:split], measured + made[split:]
    unique = list({q.text: q for q in measured}.values())
    texts_measured = {q.text for q in unique}
    return unique, [q for q in warm if q.text not in texts_measured]

"""The options and prepared data of ``quarry bench search``, shared by the command and
its report (kept apart so that neither imports the other).

Must not import: api/.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.search_data import BenchQuery, SyntheticCorpus, Vectors

if TYPE_CHECKING:
    from bench.search_corpus import RealCorpus
    from pipeline.adapters.models.onnx_embedder import OnnxEmbedder


@dataclass(frozen=True, kw_only=True)
class BenchOptions:
    """The command's options, checked."""

    root: Path
    count: int
    query_count: int
    k: int
    ef_search: int
    sweep: list[int]
    lexical_seed: int
    warmup: int
    seed: int
    shared_buffers: str | None
    hnsw_with: str | None
    dsn: str | None
    existing: str | None
    keep: bool


@dataclass(frozen=True)
class Prepared:
    """The data of a run before any database: real chunks, generator, queries."""

    real: RealCorpus
    real_vectors: Vectors
    synthetic: SyntheticCorpus
    embedder: OnnxEmbedder
    measured: list[BenchQuery]
    warm: list[BenchQuery]
    figures: dict[str, Any]

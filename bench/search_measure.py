"""The timed part of the search benchmark: vector recall against exact search, latencies.

Every phase runs its warm-up queries first (not counted; other queries than the measured
ones), then the measured queries one at a time, as one client would send them:

- :func:`vector_phase`: ``PgSearchIndex.vector_hits`` (k results, the plan the adapter
  picks) for one ``ef_search``; recall@k of each answer against the exact top k, and
  the latency of each call;
- :func:`hybrid_phase`: ``Searcher.search`` in hybrid mode; the wall time of each
  search, and the per-step ``timings_s`` (embed, vector, lexical, fuse).

The exact top k comes from :func:`exact_top`, a FAISS ``IndexFlatIP`` search over the
same unit vectors as the table (inner product = cosine similarity).

Must not import: torch, api/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

import numpy as np

from bench.search_data import BenchQuery, Target, Vectors, percentiles_ms, recall_at_k
from pipeline.adapters.postgres.search_index import PgSearchIndex
from pipeline.search.searcher import Searcher

DIMENSION = 384
Ranked = list[tuple[str, float]]  # (chunk id, cosine similarity), best first


def index_for(target: Target, ef: int) -> PgSearchIndex:
    return PgSearchIndex(
        target.dsn,
        dimension=DIMENSION,
        ef_search=ef,
        exact_max_rows=target.exact_max_rows,
        iterative_scan=target.iterative_scan,
        max_scan_tuples=target.max_scan_tuples,
        lexical_seed=target.lexical_seed,
    )


def exact_top(
    index: Any, ids: Sequence[str], queries: Sequence[BenchQuery], k: int
) -> list[Ranked]:
    """The exact top ``k`` of each query by a FAISS flat inner-product index."""
    matrix = np.ascontiguousarray(np.stack([q.vector for q in queries]), dtype=np.float32)
    scores, rows = index.search(matrix, k)
    return [
        [(ids[int(r)], float(s)) for r, s in zip(row, score, strict=True) if r >= 0]
        for row, score in zip(rows, scores, strict=True)
    ]


def vector_phase(
    target: Target,
    ef: int,
    *,
    warmup: Sequence[BenchQuery],
    queries: Sequence[BenchQuery],
    exact: Sequence[Ranked],
    k: int,
) -> dict[str, Any]:
    """Recall@k and latency of ``vector_hits`` with ``hnsw.ef_search`` = ``ef``."""
    with index_for(target, ef) as index:

        def hits(query: BenchQuery) -> Ranked:
            request = target.request(query.text, k, "vector")
            found = index.vector_hits(request, query.vector, target.model_id, k)
            return [(h.chunk_id, h.score) for h in found]

        for query in warmup:
            hits(query)
        before = dict(index.plans)
        seconds, recalls = [], []
        by_source: dict[str, list[float]] = {}
        for query, truth in zip(queries, exact, strict=True):
            started = perf_counter()
            found = hits(query)
            seconds.append(perf_counter() - started)
            recall = recall_at_k(found, truth, k)
            recalls.append(recall)
            by_source.setdefault(query.source, []).append(recall)
        plans = {name: count - before.get(name, 0) for name, count in index.plans.items()}
    return {
        "ef_search": ef,
        f"recall_at_{k}": round(float(np.mean(recalls)), 4),
        f"recall_at_{k}_by_source": {s: round(float(np.mean(r)), 4) for s, r in by_source.items()},
        "queries_below_recall_0_9": sum(1 for r in recalls if r < 0.9),
        **percentiles_ms(seconds),
        "plans": plans,
    }


def hybrid_phase(
    target: Target,
    ef: int,
    *,
    encode: Callable[[str], Vectors],
    warmup: Sequence[BenchQuery],
    queries: Sequence[BenchQuery],
    k: int,
) -> dict[str, Any]:
    """Wall-time percentiles of hybrid ``Searcher.search`` and of each of its steps."""
    with index_for(target, ef) as index:
        searcher = Searcher(
            index, encode, target.model_id, rrf_k=target.rrf_k, weights=dict(target.weights)
        )
        try:
            for query in warmup:
                searcher.search(target.request(query.text, k))
            before = dict(index.plans)
            seconds: list[float] = []
            steps: dict[str, list[float]] = {}
            empty = 0
            for query in queries:
                started = perf_counter()
                response = searcher.search(target.request(query.text, k))
                seconds.append(perf_counter() - started)
                empty += not response.results
                for step, value in response.timings_s.items():
                    steps.setdefault(step, []).append(value)
        finally:
            searcher.close()
        plans = {name: count - before.get(name, 0) for name, count in index.plans.items()}
    step_figures = {
        step: {key: value for key, value in percentiles_ms(values).items() if key != "p99_ms"}
        for step, values in sorted(steps.items())
    }
    return {**percentiles_ms(seconds), "steps": step_figures, "plans": plans, "empty": empty}

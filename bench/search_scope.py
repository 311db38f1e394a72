"""Full-text and vector retrieval over one repository against all of a tenant's
repositories, on a stack that already holds them (``quarry dev env`` in the
environment): the cost of a search's scope.

``python -m bench.search_scope [--tenant T] [--queries 300] [--out FILE.json]``

Queries are drawn from the stack's own chunks, in a fixed order (md5 of the chunk's
repository and id): 2, 4, 6 or 8 words of one chunk (``lexical_terms``, letters only,
3+ characters), seeded. Each query is searched once to warm up, then timed, by
``PgSearchIndex.lexical_hits`` (k 50, no latency budget: always the exact BM25 top k)
and ``PgSearchIndex.vector_hits`` (the query embedded by the API's query embedder
first, not timed) over

- ``all``: every repository of the tenant (the default scope of ``/v1/search``);
- ``one``: one repository, each query the next one in name order.

The JSON holds per scope and retriever mean/P50/P95/max ms, the plans taken, and a
sha256 of every answer (ids and scores to 1e-6), so that two commits' runs on the same
stack show whether they answer the same.

Must not import: api/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from bench.machine import cpu_model
from bench.search_data import percentiles_ms
from config.endpoints import resolve_endpoints
from config.settings import load_settings
from pipeline.models import Hit
from pipeline.search.query import SearchRequest, lexical_terms
from pipeline.stages.embedding import embed_query
from wiring import models, stores


def draw_queries(texts: Sequence[str], count: int, seed: int) -> list[str]:
    """``count`` queries of 2-8 words, each from one text, seeded."""
    rng = random.Random(seed)
    out = []
    for text in texts:
        words = [w for w in lexical_terms(text) if w.isalpha() and len(w) > 2]
        if len(words) >= 8:
            out.append(" ".join(rng.sample(words, rng.choice([2, 4, 6, 8]))))
        if len(out) == count:
            break
    return out


def _answer(hits: Sequence[Hit]) -> list[tuple[str, str, float]]:
    return [(h.repo, h.chunk_id, round(h.score, 6)) for h in hits]


def _timed(calls: Sequence[Callable[[], list[Hit]]]) -> tuple[list[Any], list[float]]:
    answers, seconds = [], []
    for call in calls:
        call()  # warm-up
        started = time.perf_counter()
        answers.append(_answer(call()))
        seconds.append(time.perf_counter() - started)
    return answers, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenant", help="Default: the tenant with the most repositories.")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    settings = load_settings()
    endpoints = resolve_endpoints(settings)
    with psycopg.connect(endpoints.postgres_dsn) as conn:
        if args.tenant is None:
            row = conn.execute(
                "SELECT tenant_id FROM repositories GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
            ).fetchone()
            if row is None:
                raise SystemExit("this stack holds no repository: index some first")
            args.tenant = str(row[0])
        repos = [
            str(r[0])
            for r in conn.execute(
                "SELECT name FROM repositories WHERE tenant_id = %s ORDER BY name", (args.tenant,)
            )
        ]
        texts = [
            str(r[0])
            for r in conn.execute(
                "SELECT c.content FROM chunks c JOIN repositories r ON r.id = c.repository_id"
                " WHERE r.tenant_id = %s ORDER BY md5(c.repository_id::text || c.id)",
                (args.tenant,),
            )
        ]
        chunks = len(texts)
    queries = draw_queries(texts, args.queries, args.seed)
    # No budget: always exact, so that the answers compare across commits.
    index = stores.search_index(
        settings.model_copy(update={"search_lexical_budget_ms": 0}), endpoints
    )
    embedder = models.query_embedder(settings)
    vectors = [embed_query(embedder, None, q) for q in queries]
    model_id = embedder.model_id
    result: dict[str, Any] = {
        "tenant": args.tenant,
        "repositories": len(repos),
        "chunks": chunks,
        "queries": len(queries),
        "seed": args.seed,
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
        "scopes": {},
    }
    for scope in ("all", "one"):
        requests = [
            SearchRequest(
                tenant=args.tenant,
                query=q,
                repos=() if scope == "all" else (repos[n % len(repos)],),
            )
            for n, q in enumerate(queries)
        ]
        before = dict(index.plans)
        lexical = [
            (lambda r=r: index.lexical_hits(r, lexical_terms(r.query), 50)) for r in requests
        ]
        vector = [
            (lambda r=r, v=v: index.vector_hits(r, v, model_id, 50))
            for r, v in zip(requests, vectors, strict=True)
        ]
        figures = {}
        for name, calls in (("lexical", lexical), ("vector", vector)):
            answers, seconds = _timed(calls)
            digest = hashlib.sha256(json.dumps(answers).encode()).hexdigest()
            figures[name] = percentiles_ms(seconds) | {
                "mean_ms": round(sum(seconds) / len(seconds) * 1000, 2),
                "max_ms": round(max(seconds) * 1000, 2),
                "answers_sha256": digest,
            }
        figures["plans"] = {k: v - before.get(k, 0) for k, v in index.plans.items()}
        result["scopes"][scope] = figures
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    index.close()
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()

"""Full-text retrieval at N chunks, in one run (issue 20 item 1): the exact BM25 top k
from impact-ordered postings, against scoring every match and against the statement it
replaced.

``python -m bench.search_lexical --corpus DIR --chunks N --out FILE.json``

The data of ``quarry bench search`` (the corpus's real chunks and N synthetic ones whose
text is drawn from the real chunks' words at their real frequencies; the same docstring
and topic-word queries) is loaded into a private PostgreSQL (``bench.pg``) by the
vector store's own statements, so the chunks triggers of migration 0020 write the
postings and statistics as the rows go in (their index built afterwards, timed; no HNSW
index: nothing here reads vectors). Then, per measured query (its words as
``lexical_terms`` gives them, ``k`` hits), after the warm-up queries:

1. ``PgSearchIndex.lexical_hits`` (the pruned search) for each ``--seeds`` value:
   latency, and its hits against
2. the same statements with threshold 0 (:func:`every_match`): every row holding a query
   word scored, i.e. exact BM25 by construction; its latency too. Every pruned answer
   must equal it (ids in order, scores to 1e-9): ``mismatches`` counts those that do not;
3. with ``--budgets``, ``PgSearchIndex.lexical_hits`` under each
   ``lexical_budget_ms``: latency, answers equal to the exact ones, recall@k;
4. the statement before migration 0020 (:data:`CAPPED`: BM25 over the first
   ``--cap`` rows the GIN index matches, document frequencies and mean length over those
   rows): latency, and recall@k against the exact top k.

Must not import: torch, api/.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from bench.search import prepare, ram_bytes, say
from bench.search_data import BenchQuery, percentiles_ms
from bench.search_options import BenchOptions
from pipeline.adapters.postgres.search_index import PgSearchIndex, lexical_plan
from pipeline.models import RepoRef
from pipeline.search.query import SearchRequest, lexical_terms
from pipeline.statements import search_sql

TENANT, REPO = "bench", "search-bench"
DIMENSION = 384
Answer = list[tuple[str, float]]  # (chunk id, score), best first

# The full-text statement before migration 0020 (pipeline/statements/search_sql.py at
# ca811c0), kept here as the baseline it is measured against.
CAPPED = """
WITH q AS (
    SELECT to_tsquery('simple', %(tsquery)s) AS query,
           tsvector_to_array(to_tsvector('simple', %(words)s)) AS lexemes
),
matched AS MATERIALIZED (
    SELECT c.id, c.path, c.start_line,
           ts_filter(setweight(c.tsv, 'A', q.lexemes), '{a}') AS held,
           length(c.tsv) AS dl
    FROM q, chunks c
    JOIN refs h ON h.repository_id = c.repository_id
    JOIN files f ON f.snapshot_id = h.snapshot_id AND f.repository_id = c.repository_id
         AND f.path = c.path AND f.content_sha256 = c.file_sha256
    WHERE c.tsv @@ q.query AND c.repository_id = %(repo_id)s
    LIMIT %(cap)s
),
tf AS (
    SELECT m.id, m.dl, u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf
    FROM matched m, unnest(m.held) u
),
df AS (SELECT lexeme, count(*) AS df FROM tf GROUP BY lexeme),
norm AS (SELECT greatest(avg(dl), 1) AS avgdl, greatest(%(n)s, count(*)) AS n FROM matched),
scored AS (
    SELECT tf.id,
           sum(ln(1 + (norm.n - df.df + 0.5) / (df.df + 0.5))
               * tf.tf * 2.2 / (tf.tf + 1.2 * (0.25 + 0.75 * tf.dl / norm.avgdl))) AS score
    FROM tf JOIN df USING (lexeme), norm
    GROUP BY tf.id
)
SELECT m.id, s.score FROM scored s JOIN matched m ON m.id = s.id
ORDER BY s.score DESC, m.path, m.start_line
LIMIT %(limit)s"""


def tsquery(terms: Sequence[str]) -> str:
    return " | ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in terms)


def every_match(conn: psycopg.Connection[Any], scoped: Any, terms: Sequence[str], k: int) -> Answer:
    """The exact BM25 top ``k``: the index's statements with threshold 0."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        plan, _ = lexical_plan(conn, scoped, " ".join(terms))
        if not plan.idf:
            return []
        query = search_sql.lexical_rest(scoped, search_request().filters, plan, theta=0.0, limit=k)
        return [(str(r[1]), float(r[-1])) for r in conn.execute(query.text, query.params)]


def capped(
    conn: psycopg.Connection[Any], repo_id: int, rows: int, terms: Sequence[str], k: int, cap: int
) -> Answer:
    params = {"tsquery": tsquery(terms), "words": " ".join(terms), "repo_id": repo_id,
              "cap": cap, "n": rows, "limit": k}  # fmt: skip
    return [(str(i), float(s)) for i, s in conn.execute(CAPPED, params)]


def pruned(index: PgSearchIndex, text: str, terms: Sequence[str], k: int) -> Answer:
    return [(h.chunk_id, h.score) for h in index.lexical_hits(search_request(text, k), terms, k)]


def search_request(text: str = "q", k: int = 10) -> SearchRequest:
    return SearchRequest(TENANT, text, repos=(REPO,), k=k, mode="lexical")


def timed(calls: Sequence[Callable[[], Answer]]) -> tuple[list[Answer], list[float]]:
    answers, seconds = [], []
    for call in calls:
        started = time.perf_counter()
        answers.append(call())
        seconds.append(time.perf_counter() - started)
    return answers, seconds


def compare(got: Answer, want: Answer) -> bool:
    return [i for i, _ in got] == [i for i, _ in want] and all(
        abs(a - b) <= 1e-9 * max(1.0, abs(b)) for (_, a), (_, b) in zip(got, want, strict=True)
    )


def measure(
    dsn: str,
    queries: list[BenchQuery],
    warm: list[BenchQuery],
    k: int,
    seeds: list[int],
    cap: int,
    exact_queries: int | None = None,
    budgets: Sequence[int] = (),
) -> dict[str, Any]:
    terms = {q.text: lexical_terms(q.text) for q in (*queries, *warm)}
    asked = [q for q in queries if terms[q.text]]
    # Scoring every match takes seconds a query at 1M rows: the exact answers (and the
    # old statement, measured against them) are taken for the first ``exact_queries``.
    checked = asked[: exact_queries or len(asked)]
    out: dict[str, Any] = {"queries": len(asked), "checked": len(checked), "k": k, "phases": {}}
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Again now that the loader's asynchronous commits are flushed: the VACUUM right
        # after the load leaves no page all-visible, so every index-only read would
        # visit the heap (as an insert-only table does until autovacuum reaches it).
        conn.execute("VACUUM (ANALYZE) chunks")
        conn.execute("VACUUM (ANALYZE) lexical_postings")
        out["all_visible_pages"] = {
            str(n): f"{int(v)}/{int(p)}"
            for n, v, p in conn.execute(
                "SELECT relname, relallvisible, relpages FROM pg_class"
                " WHERE relname IN ('chunks', 'lexical_postings')"
            )
        }
        repo_id = int(conn.execute("SELECT id FROM repositories WHERE name = %s", (REPO,))
                      .fetchone()[0])  # type: ignore[index]  # fmt: skip
        scope = search_sql.scope(TENANT, [REPO])
        scoped = [(int(i), int(s), str(n)) for i, n, s in conn.execute(scope.text, scope.params)]
        rows = int(conn.execute(*search_sql.scope_rows(scoped)).fetchone()[0])  # type: ignore[index]
        for q in warm[:5]:
            every_match(conn, scoped, terms[q.text], k)
        say(f"exact: every match scored, {len(checked)} queries")
        exact, seconds = timed(
            [partial(every_match, conn, scoped, terms[q.text], k) for q in checked]
        )
        out["phases"]["every_match"] = percentiles_ms(seconds)
        out["loadavg_exact"] = round(os.getloadavg()[0], 2)
        for q in warm:
            capped(conn, repo_id, rows, terms[q.text], k, cap)
        say(f"the statement before 0020 (first {cap} matches)")
        old, seconds = timed(
            [partial(capped, conn, repo_id, rows, terms[q.text], k, cap) for q in checked]
        )
        recall = [len({i for i, _ in o} & {i for i, _ in e}) / max(1, min(k, len(e)))
                  for o, e in zip(old, exact, strict=True) if e]  # fmt: skip
        out["phases"][f"capped_{cap}"] = percentiles_ms(seconds) | {
            "recall_at_k": round(sum(recall) / max(1, len(recall)), 3),
            "loadavg": round(os.getloadavg()[0], 2),
        }
    indexes = [(f"pruned_seed_{seed}", {"lexical_seed": seed}) for seed in seeds]
    indexes += [(f"budget_{ms}_ms", {"lexical_budget_ms": ms}) for ms in budgets]
    for name, options in indexes:
        with PgSearchIndex(dsn, dimension=DIMENSION, **options) as index:  # type: ignore[arg-type]
            for q in warm:
                index.lexical_hits(search_request(q.text, k), terms[q.text], k)
            say(name)
            answers, seconds = timed(
                [partial(pruned, index, q.text, terms[q.text], k) for q in asked]
            )
            pairs = list(zip(checked, answers, exact, strict=False))
            wrong = [q.text for q, got, want in pairs if not compare(got, want)]
            recall = [len({i for i, _ in got} & {i for i, _ in want}) / min(k, len(want))
                      for _, got, want in pairs if want]  # fmt: skip
            out["phases"][name] = percentiles_ms(seconds) | {
                "mismatches": len(wrong),
                "mismatched_queries": wrong[:5],
                "recall_at_k": round(sum(recall) / max(1, len(recall)), 3),
                "plans": dict(index.plans),
                "loadavg": round(os.getloadavg()[0], 2),
            }
        say(json.dumps(out["phases"][name]))
    by_source: dict[str, int] = {}
    for q in asked:
        by_source[q.source] = by_source.get(q.source, 0) + 1
    out["query_sources"] = by_source
    out["mean_terms"] = round(sum(len(terms[q.text]) for q in asked) / max(1, len(asked)), 2)
    return out


def main() -> None:
    from bench.pg import fresh_database, private_postgres
    from bench.search_load import BuildOptions, database_figures, load_all, row_batches

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--chunks", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seeds", default="4,16,64", help="lexical_seed values")
    parser.add_argument("--cap", type=int, default=2_000, help="the old statement's cap")
    parser.add_argument("--budgets", default="", help="lexical_budget_ms values (e.g. 100,250)")
    parser.add_argument("--exact-queries", type=int, help="check only the first N (default all)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    options = BenchOptions(
        root=args.corpus, count=args.chunks, query_count=args.queries, k=args.k,
        ef_search=100, sweep=[], lexical_seed=16, warmup=args.warmup, seed=args.seed,
        shared_buffers=None, hnsw_with=None, dsn=None, existing=None, keep=False,
    )  # fmt: skip
    import faiss

    out: dict[str, Any] = {"loadavg_start": os.getloadavg(), "args": vars(args) | {
        "corpus": str(args.corpus), "out": str(args.out)}}  # fmt: skip
    data = prepare(options)
    ram = ram_bytes()
    server = {
        "shared_buffers": f"{ram // 4 // 2**20}MB",
        "effective_cache_size": f"{ram * 3 // 4 // 2**20}MB",
    }
    build = BuildOptions(
        maintenance_work_mem=f"{min(8 * 2**10, ram // 3 // 2**20)}MB",
        workers=min(8, max(0, (os.cpu_count() or 1) - 1)),
        skip=("chunks_embedding_hnsw",),
    )
    with private_postgres(server, report=say) as admin:
        db = fresh_database(admin)
        index = faiss.IndexFlatIP(data.real_vectors.shape[1])
        batches = row_batches(data.real, data.real_vectors, data.synthetic, data.embedder.model_id)
        ids, loaded = load_all(
            db, RepoRef(TENANT, REPO), batches=batches, real_files=data.real.files,
            index=index, build=build, report=say,
        )  # fmt: skip
        del index
        out["load"] = loaded | database_figures(db)
        out["rows"] = len(ids)
        say(json.dumps(out["load"]))
        seeds = [int(v) for v in args.seeds.split(",")]
        budgets = [int(v) for v in args.budgets.split(",") if v]
        out |= measure(
            db, data.measured, data.warm, args.k, seeds, args.cap, args.exact_queries, budgets
        )
    out["loadavg_end"] = os.getloadavg()
    args.out.write_text(json.dumps(out, indent=1))
    say(f"wrote {args.out}")


if __name__ == "__main__":
    main()

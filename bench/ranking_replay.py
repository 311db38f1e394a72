"""Replay the held-out sets' retrievals through the ranking, to choose its settings.

Usage (a stack whose index holds the sets, as after ``python -m bench.eval_sets run``;
its environment as for ``quarry dev``):

    python -m bench.ranking_replay dump SET_ID... [--out DIR]   # retrieve once
    python -m bench.ranking_replay replay SET_ID... [--out DIR] # every variant, a table
    python -m bench.ranking_replay replay SET_ID... --around-defaults  # re-tune for a model

``dump`` builds each set's queries as ``quarry eval`` does (``cli.evaluation``), then asks
the stack's index, in this process, what the API's ``Searcher`` asks it for a hybrid
search with ``k = 10``: the vector hits (the query embedded by the API's ONNX model) and
the lexical hits, ``candidates_for(10)`` each, kept raw in ``DIR/<id>.pickle``. The SQL
is the API's (``PgSearchIndex``); only the ranking after retrieval is replayed.

``replay`` runs each variant of :data:`VARIANTS` through ``pipeline.search.ranking.rank``
on the stored hits (no store, no model: a variant costs seconds) and prints hybrid R@10,
MRR@10 and mean lines per set and pooled, as ``quarry eval`` scores them. Tune on the
tuning half only (``bench/eval_sets.toml``).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from cli.evaluation import build_set, score
from pipeline.search.query import SearchRequest, lexical_terms
from pipeline.search.ranking import Ranking, lexical_order, rank
from pipeline.search.searcher import candidates_for
from pipeline.stages.embedding import embed_query

CORPORA = Path(__file__).resolve().parent / "corpora"
OUT = CORPORA / "replay"
K = 10

BASE = Ranking(merge_definitions=False)


def _variants() -> dict[str, Ranking]:
    """Each change alone on the baseline, then the chosen ones together (the labels of
    ``bench/results/eval.md``, "Ranking changes")."""
    out: dict[str, Ranking] = {"baseline (RRF k 10, weights 1/1)": BASE}
    for rrf in (5, 20, 60):
        out[f"RRF k {rrf}"] = replace(BASE, rrf_k=rrf)
    out["(a) merge definitions"] = replace(BASE, merge_definitions=True)
    for boost in (0.02, 0.05, 0.1):
        out[f"(b) name boost {boost}"] = replace(BASE, name_boost=boost)
    for penalty in (0.3, 0.5):
        out[f"(c) path penalty {penalty}"] = replace(BASE, path_penalty=penalty)
    for lexical in (0.6, 0.8, 1.2, 1.5):
        out[f"(d) sentence lexical weight {lexical}"] = replace(BASE, weight_lexical=lexical)
    for vector in (0.8, 1.2):
        out[f"(d) sentence vector weight {vector}"] = replace(BASE, weight_vector=vector)
    for boost in (0.05, 0.1, 0.2):
        out[f"(e) file boost {boost}"] = replace(BASE, file_boost=boost)
    merged = replace(BASE, merge_definitions=True)
    out["(a) + (f) score fusion"] = replace(merged, fusion="scores")
    for vector in (0.8, 1.2, 1.5):
        out[f"(a) + (f), vector weight {vector}"] = replace(
            merged, fusion="scores", weight_vector=vector
        )
    for boost in (0.1, 0.2, 0.3, 0.4):
        out[f"(a) + (f) + (e) file boost {boost}"] = replace(
            merged, fusion="scores", file_boost=boost
        )
    for share in (0.5, 1.0):
        out[f"(h) named first only at identifier share {share}"] = replace(
            BASE, named_first_share=share
        )
    with_boost = replace(merged, fusion="scores", file_boost=0.2)
    out["(a) + (f) + (e) 0.2 + (h) 0.5: chosen"] = chosen = replace(
        with_boost, named_first_share=0.5
    )
    for boost in (0.1, 0.3, 0.5):
        out[f"chosen + (g) symbol words {boost}"] = replace(chosen, symbol_words_boost=boost)
    out["chosen + (b) name boost 0.05"] = replace(chosen, name_boost=0.05)
    out["chosen + (d) sentence lexical weight 0.8"] = replace(chosen, weight_lexical=0.8)
    return out


def _around_defaults() -> dict[str, Ranking]:
    """Today's defaults (``config.settings``), each fusion knob moved alone, and the pairs
    that moved together matter: to re-tune the ranking for another model's vectors
    (``bench/results/eval.md``, "Fusion for the trained model")."""
    from api.state import ranking_from
    from config.settings import QuarrySettings

    base = ranking_from(QuarrySettings())
    out: dict[str, Ranking] = {"defaults": base, "rrf fusion": replace(base, fusion="rrf")}
    for vector in (0.8, 1.2, 1.5, 2.0, 2.5):
        out[f"vector weight {vector}"] = replace(base, weight_vector=vector)
    for lexical in (0.6, 0.8):
        out[f"lexical weight {lexical}"] = replace(base, weight_lexical=lexical)
    for vector in (0.8, 1.5, 2.0):
        out[f"identifier vector weight {vector}"] = replace(base, identifier_weight_vector=vector)
    for boost in (0.0, 0.1, 0.3):
        out[f"file boost {boost}"] = replace(base, file_boost=boost)
    for boost in (0.05, 0.1):
        out[f"name boost {boost}"] = replace(base, name_boost=boost)
    for boost in (0.1, 0.3):
        out[f"symbol words boost {boost}"] = replace(base, symbol_words_boost=boost)
    for penalty in (0.3, 0.5):
        out[f"path penalty {penalty}"] = replace(base, path_penalty=penalty)
    for vector in (1.2, 1.5, 2.0):
        for boost in (0.1, 0.3):
            out[f"vector weight {vector} + file boost {boost}"] = replace(
                base, weight_vector=vector, file_boost=boost
            )
    return out


def dump(ids: list[str], out: Path, limit: int) -> None:
    from cli.console import settings
    from config.endpoints import resolve_endpoints
    from wiring import models, stores

    s = settings()
    index = stores.search_index(s, resolve_endpoints(s))
    embedder = models.query_embedder(s)
    tenant = _tenant(index)
    out.mkdir(parents=True, exist_ok=True)
    for set_id in ids:
        eval_set = build_set(CORPORA / set_id)
        name = f"eval-{set_id}"
        rows = []
        for query in eval_set.queries:
            request = SearchRequest(tenant, query.text, repos=(name,), k=K)
            vector = embed_query(embedder, None, query.text)
            terms = lexical_terms(query.text)
            rows.append(
                {
                    "vector": index.vector_hits(request, vector, embedder.model_id, limit),
                    "lexical": index.lexical_hits(request, terms, limit) if terms else [],
                }
            )
        with (out / f"{set_id}.pickle").open("wb") as f:
            pickle.dump({"queries": eval_set.queries, "rankings": rows}, f)
        print(f"{set_id}: {len(rows)} queries", file=sys.stderr)


def _tenant(index: Any) -> str:
    with index._connection() as conn:  # a bench, reading one row
        row = conn.execute("SELECT DISTINCT tenant_id FROM repositories LIMIT 2").fetchall()
    if len(row) != 1:
        raise SystemExit(f"expected one tenant in the index, found {len(row)}")
    return str(row[0][0])


def figures(data: dict[str, Any], ranking: Ranking) -> dict[str, float]:
    """Hybrid figures of one dumped set ranked by ``ranking``, as the API ranks it
    (``lexical_order`` on the lexical hits, then :func:`rank`)."""
    hits = []
    for query, rankings in zip(data["queries"], data["rankings"], strict=True):
        lexical = lexical_order(rankings["lexical"], query.text, ranking)
        results = rank({"vector": rankings["vector"], "lexical": lexical}, query.text, K, ranking)
        hits.append([(r.hit.path, r.hit.start_line, r.hit.end_line) for r in results])
    return score(data["queries"], hits)


def replay(
    ids: list[str], out: Path, only: list[str] | None = None, *, around_defaults: bool = False
) -> None:
    sets = {}
    for set_id in ids:
        with (out / f"{set_id}.pickle").open("rb") as f:
            sets[set_id] = pickle.load(f)  # our own dump
    variants = _around_defaults() if around_defaults else _variants()
    short = [i.rsplit("-", 1)[0] for i in ids]
    print("| variant | " + " | ".join(short) + " | pooled R@10 | pooled MRR@10 | lines |")
    print("|---|" + "---:|" * (len(ids) + 3))
    for label, ranking in variants.items():
        if only and not any(label.startswith(o) for o in only):
            continue
        cells, n, r10, mrr, lines = [], 0, 0.0, 0.0, 0.0
        for set_id in ids:
            got = figures(sets[set_id], ranking)
            q = len(sets[set_id]["queries"])
            cells.append(f"{got['recall@10']:.3f}/{got['mrr@10']:.3f}")
            n += q
            r10 += got["recall@10"] * q
            mrr += got["mrr@10"] * q
            lines += got["mean_lines"] * q
        print(
            f"| {label} | " + " | ".join(cells) + f" | {r10 / n:.3f} | {mrr / n:.3f} |"
            f" {lines / n:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("dump", "replay"))
    parser.add_argument("ids", nargs="+")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", nargs="*")
    parser.add_argument(
        "--around-defaults",
        action="store_true",
        help="replay today's settings and each knob moved from them (re-tune for a model)",
    )
    parser.add_argument(
        "--limit", type=int, default=candidates_for(K), help="hits per retriever (dump)"
    )
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.ids, args.out, args.limit)
    else:
        replay(args.ids, args.out, args.only, around_defaults=args.around_defaults)


if __name__ == "__main__":
    main()

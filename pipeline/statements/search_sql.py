"""SQL of search: the scope of a request, the vector retriever, the full-text retriever.

Every statement is scoped by the repositories a request may see (resolved first, by
tenant and name, by :func:`scope`) and joins ``files`` of each one's searchable
snapshot, so that only the chunk rows of the file versions that snapshot lists are read:
never a half-written commit, never an older version.

The vector retriever has two plans:

* ``exact``: every row in scope is compared (the ORDER BY is a similarity expression,
  which the HNSW index cannot serve, so the planner never uses it). Exact, and cheap
  while the table is small;
* ``hnsw``: the nearest ``ef`` rows of the HNSW index (``hnsw.ef_search`` = ``ef``, set
  in the same transaction) that pass the scope's repositories, the model and the
  filters, then the snapshot's file versions. With pgvector 0.8's iterative index scans
  (``hnsw.iterative_scan``, :func:`set_iterative_scan`) the index goes on scanning until
  ``ef`` rows pass those conditions (at most ``hnsw.max_scan_tuples`` tuples), so other
  tenants' rows no longer use up the candidates; without them (``off``, and pgvector
  0.6) they do, and a caller that gets fewer than it asked for tries a larger ``ef``,
  then ``exact``. Rows of older file versions still use up candidates in both. The
  index holds the rows with ``indexed`` (migration 0021); the rows a small job wrote
  since, which the vector index task has not added yet, are compared exactly in the
  same statement, so a row is found the moment its job is done; whether to retry is
  decided on what the index scan found alone.

The full-text retriever reads the impact-ordered postings and term statistics of
migration 0020 (:func:`lexical_stats`, :func:`lexical_seed`, :func:`lexical_rest`): the
exact BM25 top k over the scope's repositories' statistics, without scoring every match
(the bounds are in ``pipeline/search/bm25.py``). PostgreSQL's own ``ts_rank`` has no
inverse document frequency, and on docstring-like questions it ranks a chunk full of
common words first.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.embedding_models import LEGACY_STORAGE, check_storage
from pipeline.search import bm25
from pipeline.search.bm25 import Plan
from pipeline.search.query import SearchFilters
from pipeline.statements.sql import Query

HNSW_MAX_EF = 1000  # pgvector's largest hnsw.ef_search
ITERATIVE_SCANS = ("off", "relaxed_order", "strict_order")  # pgvector 0.8 hnsw.iterative_scan
ITERATIVE_MIN_VERSION = (0, 8, 0)  # pgvector's first version with iterative index scans

HIT_COLUMNS = (
    "s.repo, c.id, c.path, c.start_line, c.end_line, c.symbol, c.kind, c.language, c.content,"
    " c.end_byte - c.start_byte AS body_bytes"
)
_VECTOR_JOIN = """ ON c.repository_id = v.repository_id AND c.file_sha256 = v.file_sha256
     AND c.id = v.id"""
_SCOPE_JOIN = """
JOIN unnest(%(repo_ids)s::bigint[], %(snapshot_ids)s::bigint[], %(names)s::text[])
     AS s(repository_id, snapshot_id, repo) ON c.repository_id = s.repository_id
JOIN files f ON f.snapshot_id = s.snapshot_id AND f.repository_id = s.repository_id
     AND f.path = c.path AND f.content_sha256 = c.file_sha256"""


# The snapshot a request reads in each repository: that of the commit asked for when a
# ref holds exactly one snapshot whose commit starts with it, else that of the ref asked
# for, else that of the default ref (pipeline/refs.py).
_AS_OF_COMMIT = (
    "(SELECT min(s.id) FROM snapshots AS s WHERE s.repository_id = r.id"
    " AND s.status = 'ready' AND s.commit_sha LIKE %(commit)s || '%%'"
    " AND EXISTS (SELECT 1 FROM refs AS h WHERE h.snapshot_id = s.id)"
    " HAVING count(*) = 1)"
)
_OF_REF = (
    "(SELECT f.snapshot_id FROM refs AS f WHERE f.repository_id = r.id"
    " AND f.name = coalesce(%(ref)s::text, r.default_ref))"
)


def scope(
    tenant: str, names: Sequence[str], ref: str | None = None, commit: str | None = None
) -> Query:
    """(id, name, snapshot id) of the tenant's repositories: those named, or all when
    ``names`` is empty; the snapshot that of ``commit``, else of ``ref``, else of the
    default ref (None when it holds none: such repositories are included, those being
    deleted left out)."""
    snapshot = _AS_OF_COMMIT if commit else _OF_REF
    text = (
        f"SELECT r.id, r.name, {snapshot} FROM repositories AS r"
        " WHERE r.tenant_id = %(tenant)s AND r.deletion_id IS NULL"
    )
    if names:
        text += " AND r.name = ANY(%(names)s)"
    params = {"tenant": tenant, "names": list(names), "ref": ref, "commit": commit}
    return Query(text + " ORDER BY r.name", params)


def table_rows() -> Query:
    """The planner's estimate of the chunks table's rows (no scan)."""
    return Query("SELECT reltuples::bigint FROM pg_class WHERE oid = 'chunks'::regclass", {})


def _filters(filters: SearchFilters) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    if filters.languages:
        clauses.append("c.language = ANY(%(languages)s)")
        params["languages"] = list(filters.languages)
    if filters.kinds:
        clauses.append("c.kind = ANY(%(kinds)s)")
        params["kinds"] = list(filters.kinds)
    if filters.path_patterns:
        clauses.append("c.path LIKE ANY(%(paths)s)")
        params["paths"] = list(filters.path_patterns)
    return "".join(f" AND {clause}" for clause in clauses), params


def _scope_params(scoped: Sequence[tuple[int, int, str]]) -> dict[str, Any]:
    return {
        "repo_ids": [row[0] for row in scoped],
        "snapshot_ids": [row[1] for row in scoped],
        "names": [row[2] for row in scoped],
    }


def vector_exact(
    scoped: Sequence[tuple[int, int, str]],
    filters: SearchFilters,
    vector: Any,
    model_id: str,
    limit: int,
    *,
    storage: str = LEGACY_STORAGE,
) -> Query:
    """The ``limit`` nearest rows in scope by an exact scan; columns: HIT_COLUMNS, score.
    ``storage``: where the model's vectors are (pipeline.embedding_models)."""
    where, params = _filters(filters)
    if storage == LEGACY_STORAGE:
        source, vectors = "chunks c", "c.model_id = %(model_id)s AND c.embedding IS NOT NULL"
        column = "c.embedding"
    else:
        source = f"{check_storage(storage)} v JOIN chunks c{_VECTOR_JOIN}"
        vectors, column = "v.embedding IS NOT NULL", "v.embedding"
    text = f"""
SELECT {HIT_COLUMNS}, 1 - ({column} <=> %(vector)s) AS score
FROM {source}{_SCOPE_JOIN}
WHERE {vectors}{where}
ORDER BY score DESC, c.path, c.start_line
LIMIT %(limit)s"""
    params |= _scope_params(scoped) | {"vector": vector, "model_id": model_id, "limit": limit}
    return Query(text, params)


def set_ef_search(ef: int) -> Query:
    """``SET LOCAL hnsw.ef_search`` (an int, checked: SET takes no bound parameter)."""
    ef = max(1, min(HNSW_MAX_EF, int(ef)))
    return Query(f"SET LOCAL hnsw.ef_search = {ef}", {})


def set_iterative_scan(mode: str, max_scan_tuples: int) -> list[Query]:
    """``SET LOCAL hnsw.iterative_scan`` and ``hnsw.max_scan_tuples`` (pgvector >= 0.8;
    checked values: SET takes no bound parameter). Nothing for ``off``, so that the
    statement also runs on pgvector 0.6."""
    if mode not in ITERATIVE_SCANS:
        raise ValueError(f"hnsw.iterative_scan must be one of {ITERATIVE_SCANS}, got {mode!r}")
    if mode == "off":
        return []
    tuples = max(1, int(max_scan_tuples))
    return [
        Query(f"SET LOCAL hnsw.iterative_scan = {mode}", {}),
        Query(f"SET LOCAL hnsw.max_scan_tuples = {tuples}", {}),
    ]


def vector_hnsw(
    scoped: Sequence[tuple[int, int, str]],
    filters: SearchFilters,
    vector: Any,
    model_id: str,
    *,
    limit: int,
    ef: int,
    storage: str = LEGACY_STORAGE,
) -> Query:
    """The ``ef`` nearest rows by the HNSW index of the scope's repositories, the model
    and the filters (the conditions an iterative index scan applies as it goes), then
    the snapshot's file versions; re-sorted by distance (a ``relaxed_order`` scan may
    return them slightly out of order). A model in a table of its own (``storage``)
    holds only the repository id beside its vectors: the filters apply after the scan.
    Columns: HIT_COLUMNS, score, and ``from_index``: how many rows in scope the index
    scan gave (beside the waiting rows), which decides whether a larger ``ef`` is needed."""
    where, params = _filters(filters)
    if storage == LEGACY_STORAGE:
        # The index holds the rows with ``indexed`` (migration 0021); the rows small jobs
        # wrote since (INDEX_PENDING adds them after their job) are compared exactly.
        # The waiting rows are read within the snapshots (an exact top ``ef`` of what the
        # request may see), so that rows of a job still running take no place there.
        near = f"""
    (SELECT c.repository_id, c.id, c.file_sha256, c.embedding <=> %(vector)s AS distance,
            false AS waiting
    FROM chunks c
    WHERE c.repository_id = ANY(%(repo_ids)s::bigint[]) AND c.model_id = %(model_id)s
      AND c.indexed AND c.embedding IS NOT NULL{where}
    ORDER BY c.embedding <=> %(vector)s
    LIMIT %(ef)s)
    UNION ALL
    (SELECT c.repository_id, c.id, c.file_sha256, c.embedding <=> %(vector)s AS distance,
            true AS waiting
    FROM chunks c{_SCOPE_JOIN}
    WHERE c.repository_id = ANY(%(repo_ids)s::bigint[]) AND c.model_id = %(model_id)s
      AND NOT c.indexed AND c.embedding IS NOT NULL{where}
    ORDER BY 4
    LIMIT %(ef)s)"""
        after = ""
    else:
        near = f"""
    SELECT v.repository_id, v.id, v.file_sha256, v.embedding <=> %(vector)s AS distance,
           false AS waiting
    FROM {check_storage(storage)} v
    WHERE v.repository_id = ANY(%(repo_ids)s::bigint[]) AND v.embedding IS NOT NULL
    ORDER BY v.embedding <=> %(vector)s
    LIMIT %(ef)s"""
        after = f"\nWHERE true{where}"
    text = f"""
WITH near AS MATERIALIZED ({near}
)
SELECT {HIT_COLUMNS}, 1 - n.distance AS score,
       count(*) FILTER (WHERE NOT n.waiting) OVER () AS from_index
FROM near n
JOIN chunks c ON c.repository_id = n.repository_id AND c.file_sha256 = n.file_sha256
     AND c.id = n.id{_SCOPE_JOIN}{after}
ORDER BY n.distance, c.path, c.start_line
LIMIT %(limit)s"""
    params |= _scope_params(scoped)
    params |= {"vector": vector, "model_id": model_id, "limit": limit, "ef": ef}
    return Query(text, params)


def vector_storage(model_id: str) -> Query:
    """Where a registered model's vectors are (no row: chunks.embedding)."""
    return Query(
        "SELECT storage FROM embedding_models WHERE model_id = %(model_id)s AND dropped_at IS NULL",
        {"model_id": model_id},
    )


def scope_rows(scoped: Sequence[tuple[int, int, str]]) -> Query:
    """How many chunk rows the scope's searchable snapshots hold."""
    text = f"""
SELECT count(*) FROM chunks c{_SCOPE_JOIN}"""
    return Query(text, _scope_params(scoped))


def lexical_stats(scoped: Sequence[tuple[int, int, str]], words: str) -> Query:
    """BM25's statistics over the scope's repositories (migration 0020's lexical_stats,
    summed): rows (lexeme ''), then per query word its document frequency and its best
    posting's impact. Columns: lexeme, df, total length, max impact."""
    text = """
WITH q AS (
    SELECT DISTINCT unnest(tsvector_to_array(to_tsvector('simple', %(words)s))) AS lexeme
),
st AS (
    SELECT s.lexeme, sum(s.df) AS df, sum(s.len) AS len
    FROM lexical_stats s
    WHERE s.repository_id = ANY(%(repo_ids)s::bigint[])
      AND (s.lexeme = '' OR s.lexeme IN (SELECT lexeme FROM q))
    GROUP BY s.lexeme
)
SELECT st.lexeme, st.df, st.len,
       (SELECT max(top.impact) FROM unnest(%(repo_ids)s::bigint[]) AS r(id),
            LATERAL (SELECT p.impact FROM lexical_postings p
                     WHERE p.repository_id = r.id AND p.lexeme = st.lexeme
                     ORDER BY p.impact DESC LIMIT 1) AS top)
FROM st"""
    return Query(text, _scope_params(scoped) | {"words": words})


# Scoring a row from its tsvector costs about as much as reading this many postings
# (bench/results/search.md): the crossing point of the two ways of scoring candidates.
SCORED_PER_POSTING = 80


def _weight(tf: str, dl: str) -> str:
    """BM25's term weight (bm25.weight) of ``tf`` in a row of length ``dl`` at the
    scope's mean length, as SQL over those two expressions."""
    return f"{tf} * %(k1_1)s / ({tf} + %(k1)s * (1 - %(b)s + %(b)s * {dl} / %(avgdl)s))"


# A posting's weight, and a row's exact BM25 score from its tsvector: its words among
# the query's, with their idf (w).
_WEIGHT = _weight("p.tf", "p.dl")
_EXACT_SCORE = f"""
LATERAL (
    SELECT coalesce(sum(w.idf * {_weight("x.tf", "length(c.tsv)")}), 0) AS score
    FROM (SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf
          FROM unnest(c.tsv) u) x
    JOIN w ON w.lexeme = x.lexeme
) bm"""
_WORDS = "w AS (SELECT * FROM unnest(%(lexemes)s::text[], %(idf)s::float8[]) AS w(lexeme, idf))"


def _bm25_params(plan: Plan) -> dict[str, Any]:
    lexemes = plan.lexemes
    return {
        "lexemes": lexemes,
        "idf": [plan.idf[t] for t in lexemes],
        "avgdl": plan.avgdl,
        "k1": bm25.K1,
        "k1_1": bm25.K1 + 1,
        "b": bm25.B,
    }


def _in_scope(source: str, where: str, extra: str = "", more: str = "") -> str:
    """``source``'s rows (a CTE of ``seq``) each read from ``chunks`` by its ``seq`` and
    kept when in scope and passing ``where`` (columns: HIT_COLUMNS, then ``extra``;
    ``more``: lateral joins after the scope's). One row at a time, by index (OFFSET 0
    keeps the planner from flattening it): joined as a set, the planner estimated one
    row on each side (the scope's arrays, a HAVING) and scanned every row of the scope
    once per candidate, 0.9 s for 3,663 rows in 13 repositories."""
    return f"""{source}, LATERAL (
    SELECT {HIT_COLUMNS}{extra}
    FROM chunks c{_SCOPE_OF_ROW}{more}
    WHERE c.seq = {source}.seq{where}
    OFFSET 0
) AS hit"""


# The scope of one chunk row, as _SCOPE_JOIN's but found by the row's repository's place
# in the arrays (array_position) rather than by joining them: a search over R
# repositories would otherwise build R rows for each candidate.
_SCOPE_OF_ROW = """
CROSS JOIN LATERAL (
    SELECT (%(snapshot_ids)s::bigint[])[pos.i] AS snapshot_id, (%(names)s::text[])[pos.i] AS repo
    FROM (SELECT array_position(%(repo_ids)s::bigint[], c.repository_id) AS i) AS pos
    WHERE pos.i IS NOT NULL
) AS s
JOIN files f ON f.snapshot_id = s.snapshot_id AND f.repository_id = c.repository_id
     AND f.path = c.path AND f.content_sha256 = c.file_sha256"""


_HIT_ORDER = "hit.path, hit.start_line, hit.repo, hit.id"


def _scored(source: str, where: str = "") -> str:
    """The best ``%(limit)s`` rows in scope of ``source`` (a CTE of ``seq``), passing
    ``where``, scored exactly from their tsvectors (columns: HIT_COLUMNS, score)."""
    return f"""
SELECT hit.*
FROM {_in_scope(source, where, ", bm.score", "," + _EXACT_SCORE)}
ORDER BY hit.score DESC, {_HIT_ORDER}
LIMIT %(limit)s"""


def lexical_seed(
    scoped: Sequence[tuple[int, int, str]],
    filters: SearchFilters,
    plan: Plan,
    *,
    per_word: int,
    limit: int,
) -> Query:
    """The best ``limit`` rows in scope among each query word's ``per_word`` postings of
    highest impact, scored exactly (columns: HIT_COLUMNS, score): the seed whose
    ``limit``-th score is the threshold (pipeline/search/bm25.py)."""
    where, params = _filters(filters)
    text = f"""
WITH {_WORDS},
seed AS (
    SELECT DISTINCT t.seq
    FROM unnest(%(repo_ids)s::bigint[]) AS r(id) CROSS JOIN w,
         LATERAL (SELECT p.seq FROM lexical_postings p
                  WHERE p.repository_id = r.id AND p.lexeme = w.lexeme
                  ORDER BY p.impact DESC LIMIT %(per_word)s) AS t
)
{_scored("seed", where)}"""
    params |= _scope_params(scoped) | _bm25_params(plan)
    return Query(text, params | {"per_word": per_word, "limit": limit})


def lexical_seed_matches(
    scoped: Sequence[tuple[int, int, str]],
    filters: SearchFilters,
    plan: Plan,
    *,
    rows: int,
    limit: int,
) -> Query:
    """The best ``limit`` of at most ``rows`` rows in scope, passing the filters, that
    hold any query word (the GIN index on ``chunks.tsv``), scored exactly (columns:
    HIT_COLUMNS, score): a seed for a scope or filters that the best postings of each
    word miss."""
    where, params = _filters(filters)
    text = f"""
WITH {_WORDS},
matched AS MATERIALIZED (
    SELECT c.seq
    FROM chunks c{_SCOPE_JOIN}
    WHERE c.tsv @@ (SELECT to_tsquery('simple', string_agg(quote_literal(w.lexeme), ' | '))
                    FROM w){where}
    LIMIT %(rows)s
)
{_scored("matched")}"""
    params |= _scope_params(scoped) | _bm25_params(plan)
    return Query(text, params | {"rows": rows, "limit": limit})


def lexical_rest(
    scoped: Sequence[tuple[int, int, str]],
    filters: SearchFilters,
    plan: Plan,
    *,
    theta: float,
    limit: int,
) -> Query:
    """The best ``limit`` rows in scope that reach ``theta``: each essential word's
    postings from its read-from impact (pipeline/search/bm25.py), a row kept when its
    weights read there plus the caps of what was not read reach ``theta``; those rows
    scored exactly, and only those at ``theta`` or above read from ``chunks`` for the
    scope, the filters and the hit (columns: HIT_COLUMNS, score). The exact score
    comes from each kept row's tsvector while they are few (about 20 us a row), else
    from every query word's postings (index-only, about 0.25 us a posting): the
    statement counts the kept rows and runs one branch. With ``theta`` 0: every row
    holding a query word, scored exactly (the plan without pruning)."""
    where, params = _filters(filters)
    start = plan.read_from(theta)
    essential = sorted(start)
    caps = [plan.unread_cap(t, start[t]) for t in essential]
    text = f"""
WITH {_WORDS},
e AS (
    SELECT * FROM unnest(%(e_lexemes)s::text[], %(e_from)s::real[], %(e_idf)s::float8[],
                         %(e_cap)s::float8[]) AS e(lexeme, from_impact, idf, cap)
),
found AS MATERIALIZED (
    SELECT p.seq
    FROM unnest(%(repo_ids)s::bigint[]) AS r(id) CROSS JOIN e,
         LATERAL (SELECT p.seq, p.tf, p.dl FROM lexical_postings p
                  WHERE p.repository_id = r.id AND p.lexeme = e.lexeme
                    AND p.impact >= e.from_impact) AS p
    GROUP BY p.seq
    HAVING sum(e.idf * {_WEIGHT} - e.cap) >= %(needed)s
),
kept AS (SELECT count(*) AS rows FROM found),
exact AS (
    SELECT p.seq, sum(w.idf * {_WEIGHT}) AS score
    FROM unnest(%(repo_ids)s::bigint[]) AS r(id) CROSS JOIN w,
         LATERAL (SELECT p.seq, p.tf, p.dl FROM lexical_postings p
                  WHERE p.repository_id = r.id AND p.lexeme = w.lexeme
                  OFFSET 0) AS p  -- each list read whole, then probed: never per row
    WHERE p.seq IN (SELECT seq FROM found)
      AND (SELECT rows FROM kept) > %(many)s
    GROUP BY p.seq
    HAVING sum(w.idf * {_WEIGHT}) >= %(floor)s
    UNION ALL
    SELECT found.seq, bm.score
    FROM found JOIN chunks c ON c.seq = found.seq,{_EXACT_SCORE}
    WHERE (SELECT rows FROM kept) <= %(many)s AND bm.score >= %(floor)s
)
SELECT hit.*, exact.score
FROM {_in_scope("exact", where)}
ORDER BY exact.score DESC, {_HIT_ORDER}
LIMIT %(limit)s"""
    needed = theta * (1.0 - bm25.MARGIN) - sum(caps) - plan.not_essential_bound(theta)
    params |= _scope_params(scoped) | _bm25_params(plan)
    params |= {
        "e_lexemes": essential,
        "e_from": [start[t] for t in essential],
        "e_idf": [plan.idf[t] for t in essential],
        "e_cap": caps,
        "needed": needed,
        "floor": theta * (1.0 - bm25.MARGIN),
        "many": plan.postings // SCORED_PER_POSTING,
        "limit": limit,
    }
    return Query(text, params)

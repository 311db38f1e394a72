"""Settings fields: Hybrid search: retrieval sizes, fusion and the query embedder.

A group of :class:`config.settings.QuarrySettings`, whose fields they are (flat:
``settings.<field>``, env var ``QUARRY_<FIELD>``); validators live on that class.

Must not import: anything of Quarry but config (config is the leaf).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

Port = int


class SearchFields(BaseModel):
    """Settings: search."""

    search_ef_search: int = Field(
        400,
        ge=1,
        le=1000,
        description="HNSW candidate list of a vector search (pgvector hnsw.ef_search); raised "
        "to the hits asked for when fewer. 400 with the index's m 32 / ef_construction 200: "
        "recall@10 0.991, real docstring queries 0.950, at 200k chunks (bench/results/search.md).",
    )
    search_exact_max_rows: int = Field(
        20_000,
        ge=0,
        description="Up to this many chunk rows in the table, vector search scans exactly "
        "instead of using the HNSW index.",
    )
    search_iterative_scan: Literal["off", "relaxed_order", "strict_order"] = Field(
        "relaxed_order",
        description="pgvector's hnsw.iterative_scan for vector search (needs pgvector >= 0.8): "
        "the index goes on scanning until ef_search rows pass the repository and filters, "
        "so other tenants' rows do not use up the candidates; off: they do, and a search "
        "retries with a larger ef_search, then exactly.",
    )
    search_max_scan_tuples: int = Field(
        20_000,
        ge=1,
        le=10_000_000,
        description="Most index tuples an iterative HNSW scan visits (pgvector "
        "hnsw.max_scan_tuples): bounds the cost of a scope the index finds few rows of.",
    )
    search_lexical_seed: int = Field(
        16,
        ge=1,
        le=10_000,
        description="Postings of highest impact read per query word to seed the exact "
        "BM25 top-k (pipeline/search/bm25.py): the seed's k-th score is the threshold "
        "below which the rest of each word's postings are not read. Any value gives the "
        "same hits; it only moves the cost (bench/results/search.md).",
    )
    search_lexical_budget_ms: int = Field(
        250,
        ge=0,
        le=60_000,
        description="Most milliseconds the exact part of a full-text search (after its "
        "seed) may take; past it the seed's hits are returned (the best postings of each "
        "word, scored exactly: bench/results/search.md has their recall). 0: no "
        "budget, always exact.",
    )
    search_max_lexical_matches: int = Field(
        2_000,
        ge=1,
        description="When the best postings of each query word hold fewer than k rows in "
        "the request's scope and filters, the threshold of the exact BM25 top-k comes from "
        "at most this many rows matching any query word there (the full-text GIN index) "
        "instead; bounds what a filtered search reads before it can prune.",
    )
    search_rrf_k: int = Field(
        10,
        ge=1,
        le=10_000,
        description="The k of reciprocal rank fusion, 1 / (k + rank): smaller trusts the top "
        "ranks more (10 beat the usual 60 on `quarry eval`, bench/results/eval.md).",
    )
    search_fusion: Literal["scores", "rrf"] = Field(
        "scores",
        description="How the two retrievers' rankings are fused: `scores` sums each "
        "retriever's scores scaled to [0, 1] over its hits (weighted), `rrf` sums "
        "weight / (search_rrf_k + rank) (bench/results/eval.md, Ranking changes).",
    )
    search_weight_vector: float = Field(
        1.0,
        ge=0,
        le=100,
        description="Weight of the vector retriever in the fusion (queries in words).",
    )
    search_weight_lexical: float = Field(
        1.0,
        ge=0,
        le=100,
        description="Weight of the full-text retriever in the fusion (queries in words).",
    )
    search_identifier_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A query whose share of code-shaped tokens (`snake_case`, `camelCase`, "
        "`a.b`, `f()`; a one-word query) reaches this is identifier-like and takes the "
        "search_identifier_weight_* weights.",
    )
    search_identifier_weight_vector: float = Field(
        1.0, ge=0, le=100, description="Weight of the vector retriever for identifier-like queries."
    )
    search_identifier_weight_lexical: float = Field(
        1.0,
        ge=0,
        le=100,
        description="Weight of the full-text retriever for identifier-like queries.",
    )
    search_named_first_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Lexical hits whose symbol the query names (`get_netrc_auth`) go first "
        "for queries with at least this share of code-shaped tokens (0: every query); in a "
        "sentence, a name more often names another function.",
    )
    search_merge_definitions: bool = Field(
        True,
        description="Chunks of one function or method (same path and symbol, overlapping or "
        "adjacent lines) take one place in the results, that of the best; chunks named by a "
        "module or class pack several definitions and are not merged.",
    )
    search_file_boost: float = Field(
        0.2,
        ge=0,
        le=10,
        description="A result gains this times the fused score of the best other result of "
        "its file (several matching chunks in one file); 0: off.",
    )
    search_name_boost: float = Field(
        0.0,
        ge=0,
        le=10,
        description="Added to the fused score of a chunk whose symbol (or its last part) the "
        "query spells as an identifier; 0: off (it cost MRR on the held-out sets).",
    )
    search_symbol_words_boost: float = Field(
        0.0,
        ge=0,
        le=10,
        description="Added to the fused score times the share of the words of a chunk's "
        "symbol (`get_netrc_auth`: get, netrc, auth) found in the query; 0: off (within "
        "noise on the held-out sets).",
    )
    search_path_penalty: float = Field(
        0.0,
        ge=0,
        le=1,
        description="A chunk in a test, mock, example, vendored or generated path has its "
        "fused score scaled by 1 - this; 0: off.",
    )
    search_tenant_concurrency: int = Field(
        4,
        ge=0,
        le=10_000,
        description="Searches (and graph reads) of one tenant that run at once in one API "
        "process; more wait in that tenant's own line (on the event loop, holding no thread "
        "or connection), so one tenant's burst cannot take every tenant's share. 0: no bound. "
        "One tenant's own: quarry quota set --search-concurrency N.",
    )
    search_pool_size: int = Field(
        4,
        ge=2,
        le=1000,
        description="PostgreSQL connections of an API process's search (a hybrid search "
        "holds two at once, one per retriever), shared by every tenant in arrival order: "
        "below twice search_tenant_concurrency (the defaults are), one tenant's running "
        "searches can hold them all (bench/results/search.md, One tenant's burst).",
    )
    search_tenant_waiting: int = Field(
        32,
        ge=0,
        le=100_000,
        description="Searches of one tenant that may wait for a slot in one API process; one "
        "more is refused at once with 429 and Retry-After naming the tenant's bound.",
    )
    search_tenant_wait_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Longest a search waits in its tenant's line before a 429.",
    )
    query_embed_threads: int = Field(
        1, ge=1, le=64, description="Threads of the API's query embedder (onnxruntime)."
    )
    search_warm_on_start: bool = Field(
        True,
        description="Load the API's query embedder when the API starts, not on the first search.",
    )
    search_query_model_idle_s: float = Field(
        600,
        ge=0,
        description="Unload the API's query model after this long without a query; the next "
        "query loads it again (0: keep it loaded).",
    )
    query_model_dir: Path | None = Field(
        None,
        description="Folder of the model's ONNX exports: the query model's, made by `quarry "
        "model export` where the API runs (the API never exports), and the embed workers' "
        "on the `onnx-*` backends (the CPU default), which export there when it is missing. "
        "Unset: `<data_dir>/models`.",
    )

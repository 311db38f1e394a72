"""``quarry bench search``: hybrid search latency and HNSW recall at N chunks, one run.

The table holds the real chunks of a corpus (chunked as the workers do, embedded with
the fp32 ONNX export of the workers' model) and ``--chunks`` synthetic ones clustered
around them (``bench.search_data``), in one repository with a published snapshot,
in a fresh database: a private PostgreSQL + pgvector (``bench.pg``; its
``shared_buffers`` is ``--shared-buffers``, default a quarter of the RAM) unless
``--dsn`` names a running server. Loaded by ``bench.search_load`` (indexes built
after the rows); measured by ``bench.search_measure``:

1. recall@k of ``PgSearchIndex.vector_hits`` against FAISS ``IndexFlatIP`` over the same
   vectors, and its latency, for each ``--ef-sweep`` value and ``--ef-search``;
2. hybrid ``Searcher.search`` with the query vector cached (``encode`` returns it);
3. hybrid ``Searcher.search`` end to end (``encode`` runs the query embedder, 1 thread).

Queries: half the corpus's docstring sentences (embedded), half perturbed cluster
centres with words of their topic; ``--warmup`` more of each kind run first, uncounted.

Must not import: torch (faiss is imported when the command runs), api/.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bench.search_data import SyntheticCorpus, Target, Vectors, Vocabulary
from bench.search_options import BenchOptions, Prepared
from bench.search_report import report
from cli.console import err, guarded, settings
from pipeline.models import RepoRef

if TYPE_CHECKING:
    pass

CORPORA = Path(__file__).resolve().parents[1] / "bench" / "corpora"
DEFAULT_CORPORA = ("django-5.2.19", "requests-2.32.3")
TENANT = "bench"
REPO = "search-bench"
HNSW_WITH = re.compile(r"[a-z_]+ *= *[0-9]+( *, *[a-z_]+ *= *[0-9]+)*")


def default_corpus() -> Path:
    for name in DEFAULT_CORPORA:
        for base in (CORPORA, Path("bench/corpora")):
            if (base / name).is_dir():
                return base / name
    raise typer.BadParameter(f"no corpus under {CORPORA}: pass --corpus", param_hint="--corpus")


def ram_bytes() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def bench_search(
    chunks: Annotated[int, typer.Option("--chunks", min=0, help="Synthetic chunks.")] = 100_000,
    *,
    corpus: Annotated[
        Path | None,
        typer.Option(help="Real chunks from this folder (default: django, else requests)."),
    ] = None,
    queries: Annotated[int, typer.Option(min=2, help="Measured queries (half real).")] = 500,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="Results per search.")] = 10,
    ef_search: Annotated[
        int | None, typer.Option(min=1, max=1000, help="hnsw.ef_search (default: the setting).")
    ] = None,
    lexical_seed: Annotated[
        int | None,
        typer.Option(
            min=1, help="Postings read per query word to seed BM25 (default: the setting)."
        ),
    ] = None,
    ef_sweep: Annotated[str, typer.Option(help="More ef_search values for recall.")] = "40,200",
    warmup: Annotated[int, typer.Option(min=0, help="Uncounted queries per phase.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the generator and the samples.")] = 7,
    shared_buffers: Annotated[
        str | None, typer.Option(help="Private server's shared_buffers (default: RAM / 4).")
    ] = None,
    hnsw_with: Annotated[
        str | None,
        typer.Option(help="HNSW storage parameters, e.g. 'm = 24, ef_construction = 128'."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    dsn: Annotated[
        str | None, typer.Option(help="Admin DSN of a running server (default: start one).")
    ] = None,
    existing: Annotated[
        str | None,
        typer.Option(
            help="DSN of a database an earlier run kept (same corpus, --chunks and"
            " --seed): measure it again, load nothing."
        ),
    ] = None,
    keep: Annotated[bool, typer.Option(help="Keep the data folder / database.")] = False,
) -> None:
    """Latency (P50/P95/P99) of hybrid search and recall@k of its HNSW plan at N chunks."""
    root = corpus or default_corpus()
    if not root.is_dir():
        raise typer.BadParameter(f"{root}: not a folder", param_hint="--corpus")
    if hnsw_with is not None and not HNSW_WITH.fullmatch(hnsw_with):
        raise typer.BadParameter(
            f"{hnsw_with!r}: expected 'name = int, ...'", param_hint="--hnsw-with"
        )
    conf = settings()
    ef_search = ef_search or conf.search_ef_search
    sweep = sorted({int(v) for v in ef_sweep.split(",") if v.strip()} | {ef_search})
    options = BenchOptions(
        root=root, count=chunks, query_count=queries, k=k, ef_search=ef_search, sweep=sweep,
        lexical_seed=lexical_seed or conf.search_lexical_seed,
        warmup=warmup, seed=seed, shared_buffers=shared_buffers, hnsw_with=hnsw_with,
        dsn=dsn, existing=existing, keep=keep,
    )  # fmt: skip
    result = guarded(lambda: run(options))
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    for key, value in result.items():
        typer.echo(f"{key:>22}: {value}")


def say(line: str) -> None:
    err.print(f"[{time.strftime('%H:%M:%S')}] {line}", markup=False)


def prepare(options: BenchOptions) -> Prepared:
    from bench.search_corpus import embed_chunks, load_corpus, make_queries
    from pipeline.adapters.models.query_embedder import query_embedder_from

    conf = settings()
    started = time.perf_counter()
    real = load_corpus(options.root.resolve())
    figures: dict[str, Any] = {"chunk_s": round(time.perf_counter() - started, 1)}
    say(f"{options.root.name}: {len(real.chunks)} chunks of {len(real.files)} files; embedding")
    bulk = query_embedder_from(conf, threads=os.cpu_count() or 1, exporting=True)
    started = time.perf_counter()
    vectors, figures["real_embed_cached"] = embed_chunks(bulk, real.chunks, conf.data_dir / "bench")
    figures["real_embed_s"] = round(time.perf_counter() - started, 1)
    synthetic = SyntheticCorpus(
        options.count, vectors, Vocabulary.of(real.lexical), seed=options.seed
    )
    embedder = query_embedder_from(conf, exporting=True)  # one thread, as the API embeds
    measured, warm = make_queries(
        options.root, synthetic, embedder.embed, options.query_count, options.warmup,
        seed=options.seed,
    )  # fmt: skip
    return Prepared(real, vectors, synthetic, embedder, measured, warm, figures)


def run(options: BenchOptions) -> dict[str, Any]:
    import faiss

    from bench.pg import drop_database, fresh_database, private_postgres
    from bench.search_load import BuildOptions, database_figures, load_all, row_batches

    load_before = round(os.getloadavg()[0], 2)
    data = prepare(options)
    ram = ram_bytes()
    server = {
        "shared_buffers": options.shared_buffers or f"{ram // 4 // 2**20}MB",
        "effective_cache_size": f"{ram * 3 // 4 // 2**20}MB",
    }
    build = BuildOptions(
        maintenance_work_mem=f"{min(8 * 2**10, ram // 3 // 2**20)}MB",
        workers=min(8, max(0, (os.cpu_count() or 1) - 1)),
        hnsw_with=options.hnsw_with,
    )
    figures = dict(data.figures) | {"loadavg_before": load_before}
    with contextlib.ExitStack() as stack:
        if options.existing:
            admin, db = None, options.existing
        else:
            admin = options.dsn or stack.enter_context(
                private_postgres(server, keep=options.keep, report=say)
            )
            db = fresh_database(admin)
        say(f"database {db}: {options.count} synthetic chunks")
        index = faiss.IndexFlatIP(data.real_vectors.shape[1])
        batches = row_batches(data.real, data.real_vectors, data.synthetic, data.embedder.model_id)
        ids, loaded = load_all(
            None if options.existing else db, RepoRef(TENANT, REPO), batches=batches,
            real_files=data.real.files, index=index, build=build, report=say,
        )  # fmt: skip
        figures |= loaded | database_figures(db)
        phases = measure(
            options, data, Target(db, TENANT, REPO, data.embedder.model_id), index, ids
        )
        del index
        if admin and options.dsn and not options.keep:
            drop_database(admin, db)
        elif options.keep:
            say(f"kept: {db}")
    return report(options, data, rows=len(ids), phases=phases, figures=figures, ram=ram)


def target(options: BenchOptions, db: str, model_id: str) -> Target:
    """Where the searches go, with the server's search settings (as api/state.py)."""
    conf = settings()
    return Target(
        db, TENANT, REPO, model_id,
        exact_max_rows=conf.search_exact_max_rows,
        iterative_scan=conf.search_iterative_scan,
        max_scan_tuples=conf.search_max_scan_tuples,
        lexical_seed=options.lexical_seed,
        rrf_k=conf.search_rrf_k,
        weights=(("vector", conf.search_weight_vector), ("lexical", conf.search_weight_lexical)),
    )  # fmt: skip


def measure(
    options: BenchOptions, data: Prepared, target: Target, index: Any, ids: list[str]
) -> dict[str, Any]:
    """The vector phases (one per ef_search), then hybrid cached, then end to end."""
    from bench.search_measure import exact_top, hybrid_phase, vector_phase

    k, measured, warm = options.k, data.measured, data.warm
    say(f"exact top {k} of {len(measured)} queries over {index.ntotal} vectors (FAISS)")
    exact = exact_top(index, ids, measured, k)
    vector = []
    for ef in options.sweep:
        say(f"vector_hits with ef_search {ef}")
        vector.append(vector_phase(target, ef, warmup=warm, queries=measured, exact=exact, k=k))
    say("hybrid search, query vector cached")
    vectors = {q.text: q.vector for q in (*warm, *measured)}
    cached = hybrid_phase(
        target, options.ef_search, encode=vectors.__getitem__, warmup=warm, queries=measured, k=k
    )
    say("hybrid search, end to end (query embedded)")

    def encode(text: str) -> Vectors:
        out: Vectors = data.embedder.embed([text])[0]
        return out

    full = hybrid_phase(
        target, options.ef_search, encode=encode, warmup=warm, queries=measured, k=k
    )
    return {"vector": vector, "cached": cached, "full": full}

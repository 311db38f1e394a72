"""HNSW parameters and iterative index scans, measured in one run (issue 20 item 2).

``python -m bench.search_params --corpus DIR --chunks N --out FILE.json``: the data of
``quarry bench search`` (the corpus's real chunks and N synthetic ones around them, the
same queries), loaded once into a private PostgreSQL (``bench.pg``); then, for each
``--hnsw`` parameter set, the HNSW index is built again (seconds and size) and
``PgSearchIndex.vector_hits`` is measured (recall@k against FAISS, per query source, and
latency) for each ``hnsw.iterative_scan`` mode and ``ef_search``. Last, the filtered
case: ``--small-share`` of the synthetic files move to another tenant's repository, whose
searches (forced onto the HNSW plan: ``exact_max_rows`` 0) are measured against the exact
plan over that repository, with and without iterative scans.

Must not import: torch, api/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.search import prepare, ram_bytes, say
from bench.search_data import BenchQuery, Target
from bench.search_options import BenchOptions
from pipeline.models import RepoRef

TENANT, REPO = "bench", "search-bench"
SMALL = RepoRef("small-tenant", "small-repo")


def build_index(dsn: str, params: str, workers: int, memory: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX IF EXISTS chunks_embedding_hnsw")
        conn.execute("SELECT set_config('maintenance_work_mem', %s, false)", (memory,))
        conn.execute(
            "SELECT set_config('max_parallel_maintenance_workers', %s, false)", (str(workers),)
        )
        started = time.perf_counter()
        conn.execute(
            "CREATE INDEX chunks_embedding_hnsw ON chunks"
            f" USING hnsw (embedding vector_cosine_ops) WITH ({params}) WHERE indexed"
        )
        seconds = time.perf_counter() - started
        conn.execute("ANALYZE chunks")
        row = conn.execute("SELECT pg_relation_size('chunks_embedding_hnsw')").fetchone()
    return {"build_s": round(seconds, 1), "size_mb": round(int(row[0]) / 2**20, 1) if row else 0}


def phase(
    target: Target,
    ef: int,
    queries: list[BenchQuery],
    warm: list[BenchQuery],
    truth: list[list[tuple[str, float]]],
    k: int,
) -> dict[str, Any]:
    from bench.search_measure import vector_phase

    return vector_phase(target, ef, warmup=warm, queries=queries, exact=truth, k=k)


def halfvec_phase(
    dsn: str,
    params: str,
    efs: list[int],
    queries: list[BenchQuery],
    truth: list[Any],
    k: int,
    memory: str,
) -> dict[str, Any]:
    """An HNSW expression index over ``embedding::halfvec(384)`` (16-bit floats, the
    column unchanged): build seconds, size, and recall@k / latency of a plain top-k scan
    of the whole table (no scope join: the one-repository table of the first phases)."""
    from pgvector.psycopg import register_vector

    out: dict[str, Any] = {"params": params, "phases": []}
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("SELECT set_config('maintenance_work_mem', %s, false)", (memory,))
        started = time.perf_counter()
        conn.execute(
            "CREATE INDEX chunks_embedding_halfvec ON chunks USING hnsw"
            f" ((embedding::halfvec(384)) halfvec_cosine_ops) WITH ({params})"
        )
        out["build_s"] = round(time.perf_counter() - started, 1)
        row = conn.execute("SELECT pg_relation_size('chunks_embedding_halfvec')").fetchone()
        out["size_mb"] = round(int(row[0]) / 2**20, 1) if row else 0
        conn.execute("ANALYZE chunks")
        statement = (
            "SELECT id FROM chunks ORDER BY embedding::halfvec(384) <=> %s::vector::halfvec(384)"
            " LIMIT %s"
        )
        for ef in efs:
            seconds, recalls, by_source = [], [], {}  # type: ignore[var-annotated]
            for query, expected in zip(queries, truth, strict=True):
                with conn.transaction():
                    conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
                    started = time.perf_counter()
                    found = [str(r[0]) for r in conn.execute(statement, (query.vector, k))]
                    seconds.append(time.perf_counter() - started)
                wanted = {chunk_id for chunk_id, _ in expected}
                recall = len(wanted & set(found)) / max(1, len(wanted))
                recalls.append(recall)
                by_source.setdefault(query.source, []).append(recall)
            out["phases"].append(
                {
                    "ef_search": ef,
                    f"recall_at_{k}": round(sum(recalls) / len(recalls), 4),
                    "by_source": {s: round(sum(r) / len(r), 4) for s, r in by_source.items()},
                    "p95_ms": round(sorted(seconds)[int(0.95 * (len(seconds) - 1))] * 1000, 2),
                }
            )
        plan = conn.execute("EXPLAIN " + statement, (queries[0].vector, k)).fetchall()
        out["plan_uses"] = "chunks_embedding_halfvec" in " ".join(str(r[0]) for r in plan)
        conn.execute("DROP INDEX chunks_embedding_halfvec")
    return out


def move_small_tenant(dsn: str, share: float) -> int:
    """Move ``share`` of the synthetic files' rows to another tenant's repository, with
    its own published snapshot; returns the rows moved."""
    step = max(1, round(1 / share))
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("INSERT INTO tenants (id) VALUES (%s) ON CONFLICT DO NOTHING", (SMALL.tenant,))
        row = conn.execute(
            "INSERT INTO repositories (tenant_id, name, default_ref) VALUES (%s, %s, 'main')"
            " RETURNING id",
            (SMALL.tenant, SMALL.name),
        ).fetchone()
        assert row is not None
        repo_id = int(row[0])
        row = conn.execute(
            "INSERT INTO snapshots (repository_id, commit_sha, status, finished_at)"
            " VALUES (%s, 'quarry-bench-small', 'ready', now()) RETURNING id",
            (repo_id,),
        ).fetchone()
        assert row is not None
        snapshot_id = int(row[0])
        moved = conn.execute(
            "UPDATE chunks SET repository_id = %s WHERE path LIKE 'synthetic/%%'"
            " AND (substring(path from 'module_([0-9]+)')::bigint %% %s) = 0",
            (repo_id, step),
        ).rowcount
        conn.execute(
            "INSERT INTO files (snapshot_id, repository_id, path, content_sha256, language,"
            " size_bytes) SELECT DISTINCT ON (path) %s, %s, path, file_sha256, language, 1"
            " FROM chunks WHERE repository_id = %s ORDER BY path",
            (snapshot_id, repo_id, repo_id),
        )
        conn.execute(
            "INSERT INTO refs (repository_id, name, snapshot_id) VALUES (%s, 'main', %s)",
            (repo_id, snapshot_id),
        )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) chunks")
    return int(moved)


def exact_truth(target: Target, queries: list[BenchQuery], k: int) -> list[Any]:
    from bench.search_measure import index_for

    exact = dataclasses.replace(target, exact_max_rows=10**12)
    with index_for(exact, 100) as index:
        return [
            [
                (h.chunk_id, h.score)
                for h in index.vector_hits(
                    exact.request(q.text, k, "vector"), q.vector, exact.model_id, k
                )
            ]
            for q in queries
        ]


def fresh_database(admin: str, *, old: bool) -> str:
    """A migrated database; on a pre-0.8 server, without 0018 (which refuses it)."""
    import uuid

    from bench.pg import fresh_database as fresh
    from migrations.runner import discover, run
    from pipeline.adapters.postgres.connect import ensure_database
    from pipeline.adapters.postgres.migrations import PgMigrationTarget

    if not old:
        return fresh(admin)
    dsn = admin.rsplit("/", 1)[0] + f"/bench_{uuid.uuid4().hex[:8]}"
    ensure_database(dsn)
    run(PgMigrationTarget(dsn), [m for m in discover("sql") if m.version < 18])
    return dsn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--chunks", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--ef", default="40,100,200")
    parser.add_argument("--modes", default="off,relaxed_order,strict_order")
    parser.add_argument(
        "--hnsw", action="append", help="'m = 16, ef_construction = 64' (repeat; first = load)"
    )
    parser.add_argument("--small-share", type=float, default=0.05)
    parser.add_argument(
        "--old-pg-bin",
        type=Path,
        help="a PostgreSQL bin/ with pgvector < 0.8 (e.g. pgserver's): the baseline, run"
        " with the migrations before 0018 and --modes off",
    )
    parser.add_argument("--halfvec", help="also an HNSW halfvec expression index WITH (...)")
    parser.add_argument("--max-scan-tuples", type=int, default=20_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sets = args.hnsw or ["m = 16, ef_construction = 64"]
    efs = [int(v) for v in args.ef.split(",")]
    modes = args.modes.split(",")
    options = BenchOptions(
        root=args.corpus, count=args.chunks, query_count=args.queries, k=args.k,
        ef_search=100, sweep=efs, lexical_seed=16, warmup=args.warmup,
        seed=args.seed, shared_buffers=None, hnsw_with=sets[0], dsn=None, existing=None,
        keep=False,
    )  # fmt: skip
    import faiss

    from bench.pg import private_postgres
    from bench.search_load import BuildOptions, database_figures, load_all, row_batches
    from bench.search_measure import exact_top

    if args.old_pg_bin:
        import devstack.services

        devstack.services._pg_bin_dir = lambda: args.old_pg_bin
        modes = ["off"]
    args_json = {name: str(value) if isinstance(value, Path) else value
                 for name, value in vars(args).items()}  # fmt: skip
    out: dict[str, Any] = {"loadavg_start": os.getloadavg(), "args": args_json}
    data = prepare(options)
    ram = ram_bytes()
    server = {
        "shared_buffers": f"{ram // 4 // 2**20}MB",
        "effective_cache_size": f"{ram * 3 // 4 // 2**20}MB",
    }
    memory = f"{min(8 * 2**10, ram // 3 // 2**20)}MB"
    workers = min(8, max(0, (os.cpu_count() or 1) - 1))
    build = BuildOptions(maintenance_work_mem=memory, workers=workers, hnsw_with=sets[0])
    k = args.k
    with private_postgres(server, report=say) as admin:
        db = fresh_database(admin, old=args.old_pg_bin is not None)
        index = faiss.IndexFlatIP(data.real_vectors.shape[1])
        batches = row_batches(data.real, data.real_vectors, data.synthetic, data.embedder.model_id)
        ids, loaded = load_all(
            db, RepoRef(TENANT, REPO), batches=batches, real_files=data.real.files,
            index=index, build=build, report=say,
        )  # fmt: skip
        out["load"] = loaded | database_figures(db)
        out["rows"] = len(ids)
        say(f"exact top {k} (FAISS) over {index.ntotal} vectors")
        truth = exact_top(index, ids, data.measured, k)
        del index
        out["sets"] = []
        for at, params in enumerate(sets):
            built = (
                {"build_s": loaded.get("index_build_s"), "size_mb": None}
                if at == 0
                else build_index(db, params, workers, memory)
            )
            if at == 0:
                built["size_mb"] = out["load"]["sizes_mb"].get("chunks_embedding_hnsw")
            say(f"hnsw {params}: {built}; load {os.getloadavg()[0]:.2f}")
            entry: dict[str, Any] = {"params": params, **built, "phases": []}
            for mode in modes if at == 0 else [m for m in modes if m != "strict_order"]:
                target = Target(
                    db,
                    TENANT,
                    REPO,
                    data.embedder.model_id,
                    exact_max_rows=20_000,
                    iterative_scan=mode,
                    max_scan_tuples=args.max_scan_tuples,
                )
                for ef in efs:
                    result = phase(target, ef, data.measured, data.warm, truth, k)
                    result |= {"mode": mode, "loadavg": round(os.getloadavg()[0], 2)}
                    say(json.dumps(result))
                    entry["phases"].append(result)
            out["sets"].append(entry)
            args.out.write_text(json.dumps(out, indent=1))
        if args.halfvec:
            say(f"halfvec {args.halfvec}")
            out["halfvec"] = halfvec_phase(db, args.halfvec, efs, data.measured, truth, k, memory)
            say(json.dumps(out["halfvec"]))
            args.out.write_text(json.dumps(out, indent=1))
        # The filtered case, on the last index built.
        moved = move_small_tenant(db, args.small_share)
        small = Target(
            db,
            SMALL.tenant,
            SMALL.name,
            data.embedder.model_id,
            exact_max_rows=0,
            max_scan_tuples=args.max_scan_tuples,
        )
        say(f"small tenant: {moved} rows; exact truth")
        small_truth = exact_truth(small, data.measured, k)
        out["small"] = {"rows": moved, "share": args.small_share, "phases": []}
        for mode in modes:
            for ef in efs:
                target = dataclasses.replace(small, iterative_scan=mode)
                result = phase(target, ef, data.measured, data.warm, small_truth, k)
                result |= {"mode": mode, "loadavg": round(os.getloadavg()[0], 2)}
                say(json.dumps(result))
                out["small"]["phases"].append(result)
        out["loadavg_end"] = os.getloadavg()
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""Graph store write throughput (nodes + edges per second) on a private local Bolt server.

Usage: .venv/bin/python bench/stores_graph.py --corpus bench/corpora/django-5.2.19
       [--batch-size 500] [--files-per-call 100] [--max-files N] [--heap-mb 1024]
       [--breakdown] [--json]

Chunks and extracts every .py file of the corpus with pipeline.analysis.analyze.analyze_file and
resolves calls across files (not timed), then starts a private ArcadeDB exactly as the
dev stack does (devstack.services.GraphService, own folder and free ports),
applies the shipped Cypher migrations and times Neo4jGraphStore.write_files from one
client: ``cold`` (first write, fresh JVM), ``warm`` (a second repository, fresh nodes),
``replay`` (the second repository again: every file replaces what it held) and
``delete`` (all files of the second repository, ``--files-per-call`` at a time).
``--breakdown`` adds the time per statement kind (server work and round trip).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from machine import cpu_model, free_ports  # bench/ is the script folder, so on sys.path

import pipeline.adapters.neo4j.graph_store as store_module
from config.endpoints import StackSecrets, resolve_endpoints
from config.settings import load_settings
from devstack.layout import StackLayout
from devstack.services import GraphService
from migrations.runner import discover, run
from pipeline.adapters.models.vocab import model_token_counter
from pipeline.adapters.neo4j.driver import make_driver
from pipeline.adapters.neo4j.graph_store import Neo4jGraphStore
from pipeline.adapters.neo4j.migrations import Neo4jMigrationTarget
from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.imports import RepoPaths
from pipeline.analysis.resolution import resolve_across_files
from pipeline.analysis.selection import select_files
from pipeline.models import FileGraph, FileVersion, RepoRef


def file_graphs(corpus: Path, max_files: int | None) -> list[FileGraph]:
    selection = select_files(corpus)
    paths = [p for p in selection.files if p.endswith(".py")][:max_files]
    blobs = {p: (corpus / p).read_bytes() for p in paths}
    counter, repo = model_token_counter(), RepoPaths(selection.files)
    analyses = {}
    for path, data in blobs.items():
        analysis = analyze_file(path, data, counter=counter, repo=repo)
        if isinstance(analysis, FileAnalysis):
            analyses[path] = analysis
    graphs = []
    for extraction in resolve_across_files([a.extraction for a in analyses.values()]):
        data = blobs[extraction.path]
        version = FileVersion(
            extraction.path, hashlib.sha256(data).hexdigest(), extraction.language, len(data)
        )
        chunks = tuple((c.chunk_id, c.symbol) for c in analyses[extraction.path].chunks)
        graphs.append(FileGraph(version, extraction, chunks))
    return graphs


@contextmanager
def private_graph_server(heap_mb: int) -> Iterator[tuple[str, str, str, str]]:
    """(uri, user, password, database) of a fresh ArcadeDB, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="quarry-bench-graph-") as root:
        bolt, http = free_ports(2)
        settings = load_settings(
            env={
                "QUARRY_DATA_DIR": f"{root}/data",
                "QUARRY_STACK_BOLT_PORT": str(bolt),
                "QUARRY_STACK_GRAPH_HTTP_PORT": str(http),
                "QUARRY_STACK_GRAPH_HEAP_MB": str(heap_mb),
            }
        )
        layout = StackLayout(settings.data_dir)
        layout.prepare()
        stack_secrets = StackSecrets(secrets.token_urlsafe(18), "unused", "unused")
        endpoints = resolve_endpoints(settings, stack_secrets)
        service = GraphService(settings, layout, endpoints, stack_secrets)
        service.start()
        try:
            service.wait_healthy(120)
            database = endpoints.neo4j_database
            yield endpoints.neo4j_uri, endpoints.neo4j_user, endpoints.neo4j_password, database
        finally:
            service.stop()


@contextmanager
def statement_breakdown(enabled: bool) -> Iterator[dict[str, list[float]]]:
    """Wall time per statement kind (its first words), by wrapping the adapter's runner."""
    timings: dict[str, list[float]] = defaultdict(list)
    original: Callable[..., Any] = store_module._run
    if enabled:

        def timed(tx: Any, statement: tuple[str, dict[str, Any]]) -> Any:
            start = time.perf_counter()
            try:
                return original(tx, statement)
            finally:
                words = statement[0].split()
                timings[" ".join(words[4:10])].append(time.perf_counter() - start)

        store_module._run = timed
    try:
        yield timings
    finally:
        store_module._run = original


def timed_writes(
    store: Neo4jGraphStore, repo: RepoRef, graphs: Sequence[FileGraph], per_call: int
) -> dict[str, float]:
    start, written = time.perf_counter(), 0
    for i in range(0, len(graphs), per_call):
        written += store.write_files(repo, graphs[i : i + per_call])
    wall_s = time.perf_counter() - start
    return {"written": written, "wall_s": round(wall_s, 2), "per_s": round(written / wall_s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=Path("bench/corpora/django-5.2.19"))
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--files-per-call", type=int, default=100)
    parser.add_argument("--max-files", type=int, default=None)
    parser.add_argument("--heap-mb", type=int, default=1024)
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    t0 = time.perf_counter()
    graphs = file_graphs(args.corpus, args.max_files)
    analysis_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "corpus": args.corpus.name,
        "files": len(graphs),
        "symbols": sum(len(g.extraction.symbols) for g in graphs),
        "edges_extracted": sum(len(g.extraction.edges) for g in graphs),
        "edges_resolved": sum(e.resolved for g in graphs for e in g.extraction.edges),
        "chunks": sum(len(g.chunks) for g in graphs),
        "analysis_s": round(analysis_s, 1),
        "batch_size": args.batch_size,
        "files_per_call": args.files_per_call,
        "heap_mb": args.heap_mb,
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
    }
    timings: dict[str, dict[str, list[float]]] = {}
    with private_graph_server(args.heap_mb) as (uri, user, password, database):
        driver = make_driver(uri, user, password, timeout_s=30)
        try:
            run(Neo4jMigrationTarget(driver, database), discover("cypher"))
            store = Neo4jGraphStore(driver, database, batch_size=args.batch_size)
            cold, warm = RepoRef("bench", "cold"), RepoRef("bench", "warm")
            result["cold"] = timed_writes(store, cold, graphs, args.files_per_call)
            with statement_breakdown(args.breakdown) as timings["warm"]:
                result["warm"] = timed_writes(store, warm, graphs, args.files_per_call)
            with statement_breakdown(args.breakdown) as timings["replay"]:
                result["replay"] = timed_writes(store, warm, graphs, args.files_per_call)
            start = time.perf_counter()
            with statement_breakdown(args.breakdown) as timings["delete"]:
                paths = [g.file.path for g in graphs]
                per_call = args.files_per_call
                removed = sum(
                    store.delete_files(warm, paths[i : i + per_call])
                    for i in range(0, len(paths), per_call)
                )
            result["delete"] = {"removed": removed, "wall_s": round(time.perf_counter() - start, 2)}
            result["nodes"] = len(store.node_ids(cold))
            result["graph_edges"] = len(store.edges(cold))
        finally:
            driver.close()
    for phase, phase_timings in timings.items() if args.breakdown else ():
        result[f"{phase}_breakdown_s"] = {
            kind: f"{sum(t):.2f} s in {len(t)} statements"
            for kind, t in sorted(phase_timings.items(), key=lambda kv: -sum(kv[1]))
        }
    result["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()

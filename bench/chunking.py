"""Chunking + graph extraction throughput on a real corpus (files/s and MB/s per core).

Usage: .venv/bin/python bench/chunking.py --corpus bench/corpora/django-5.2.19 [--json]
       [--all-languages] [--approximate-tokens] [--profile]

Single process, so the figures are per core. Selection (the walk) is timed apart from
the per-file work; reading files is excluded from the per-file time.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import time
from pathlib import Path

from machine import cpu_model  # bench/ is the script folder, so on sys.path

from pipeline.adapters.models.vocab import model_token_counter
from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.chunking import ChunkingOptions
from pipeline.analysis.imports import RepoPaths
from pipeline.analysis.resolution import resolve_across_files
from pipeline.analysis.selection import select_files
from pipeline.analysis.tokens import CharBoundTokenCounter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--all-languages", action="store_true", help="not only *.py files")
    parser.add_argument("--approximate-tokens", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    t0 = time.perf_counter()
    selection = select_files(args.corpus)
    select_s = time.perf_counter() - t0
    paths = [p for p in selection.files if args.all_languages or p.endswith(".py")]
    blobs = [(p, (args.corpus / p).read_bytes()) for p in paths]
    counter = CharBoundTokenCounter() if args.approximate_tokens else model_token_counter()
    options = ChunkingOptions()
    repo = RepoPaths(selection.files)

    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    cpu0, t1 = time.process_time(), time.perf_counter()
    analyses = [
        analyze_file(p, data, options=options, counter=counter, repo=repo) for p, data in blobs
    ]
    resolved = resolve_across_files([a.extraction for a in analyses if isinstance(a, FileAnalysis)])
    wall_s, cpu_s = time.perf_counter() - t1, time.process_time() - cpu0
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)

    done = [a for a in analyses if isinstance(a, FileAnalysis)]
    total_bytes = sum(len(d) for _, d in blobs)
    result = {
        "corpus": args.corpus.name,
        "files": len(blobs),
        "files_chunked": len(done),
        "files_skipped_in_analysis": len(blobs) - len(done),
        "bytes": total_bytes,
        "chunks": sum(len(a.chunks) for a in done),
        "symbols": sum(len(e.symbols) for e in resolved),
        "edges": sum(len(e.edges) for e in resolved),
        "parse_timeouts": sum(a.parse_timed_out for a in done),
        "wall_s": round(wall_s, 3),
        "cpu_s": round(cpu_s, 3),
        "files_per_s": round(len(blobs) / wall_s, 1),
        "mb_per_s_per_core": round(total_bytes / 1e6 / cpu_s, 2),
        "mb_per_s_wall": round(total_bytes / 1e6 / wall_s, 2),
        "selection_s": round(select_s, 3),
        "selected": len(selection.files),
        "skipped": {k.value: v for k, v in selection.skipped_by_reason().items()},
        "token_counter": type(counter).__name__,
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")


if __name__ == "__main__":
    main()

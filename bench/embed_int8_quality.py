"""Retrieval quality of the int8 ONNX embedder against the fp32 torch one.

Usage: .venv/bin/python bench/embed_int8_quality.py --corpus bench/corpora/requests-2.32.3
       [--corpus bench/corpora/attrs-25.3.0 ...] [--threads 2] [--batch-size 32]
       [--cache-dir bench/corpora/.onnx-cache] [--json]

The issue's bar: the int8 path loses at most 1 point of Recall@10. This uses
header_ablation.py's CodeSearchNet-style set (``cli.evaluation``, the set of
``quarry eval``; queries = the first sentence of each function docstring, targets = the
functions, docstrings blanked in the indexed copy), ranked by cosine over all chunks. Per
corpus the set is built and chunked once (header on, the default); the same chunk and
query texts are embedded by ``SentenceTransformerEmbedder`` (torch fp32, CPU) and
``OnnxInt8Embedder`` (onnxruntime int8), in batches sorted by token count, at the same
thread count. Reported per corpus and path: Recall@1/5/10, MRR@10, embed seconds; then
int8 - fp32 for Recall@10 and MRR@10 with paired bootstrap 95% intervals, hits
gained/lost, and the chunk cosine.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from header_ablation import _ranks, build_set, chunk_all
from machine import cpu_model  # bench/ is the script folder, so on sys.path

from cli.evaluation import EvalQuery, bootstrap_mrr_diff, is_relevant, metrics
from pipeline.adapters.models.onnx_embedder import OnnxInt8Embedder
from pipeline.adapters.models.torch_embedder import SentenceTransformerEmbedder, resolve_model_path
from pipeline.models import Chunk
from pipeline.ports import Embedder

MODEL = "all-MiniLM-L6-v2"
Vectors = npt.NDArray[np.float32]
Ranks = list[int | None]


@dataclass(frozen=True, slots=True)
class PathResult:
    """Retrieval figures of one embedding path on one corpus."""

    path: str
    queries: int
    chunks: int
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    mrr_at_10: float
    embed_s: float
    query_embed_s: float


def embed_sorted(
    embedder: Embedder, texts: Sequence[str], lengths: Sequence[int], batch_size: int
) -> tuple[Vectors, float]:
    """Vectors of ``texts`` in their order, embedded in length-sorted batches; seconds."""
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    out = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    started = time.perf_counter()
    for i in range(0, len(order), batch_size):
        picks = order[i : i + batch_size]
        out[picks] = embedder.embed([texts[j] for j in picks])
    return out, time.perf_counter() - started


def _full_rank(query: EvalQuery, chunks: Sequence[Chunk], scores: Vectors) -> int:
    """1-based rank of the first relevant chunk among all chunks (no top-10 cut)."""
    for position, index in enumerate(np.argsort(-scores), start=1):
        c = chunks[int(index)]
        if is_relevant(query, c.path, c.start_line, c.end_line):
            return position
    return len(chunks) + 1


def _figures(name: str, ranks: Ranks, chunks: int, embed_s: float, query_s: float) -> PathResult:
    f = metrics(ranks)
    return PathResult(
        name,
        len(ranks),
        chunks,
        f["recall@1"],
        f["recall@5"],
        f["recall@10"],
        f["mrr@10"],
        embed_s,
        query_s,
    )


def evaluate(
    corpus: Path, embedders: dict[str, Embedder], counter: OnnxInt8Embedder, batch_size: int
) -> dict[str, Any]:
    """Both paths over one corpus: per-path figures and the paired int8 - fp32 comparison."""
    queries, blanked = build_set(corpus)
    chunks = chunk_all(blanked, include_header=True)
    chunk_texts = [c.text for c in chunks]
    query_texts = [q.text for q in queries]
    chunk_lengths = counter.count_tokens(chunk_texts)
    query_lengths = counter.count_tokens(query_texts)
    results: list[PathResult] = []
    ranks: dict[str, Ranks] = {}
    vectors: dict[str, Vectors] = {}
    scores: dict[str, Vectors] = {}
    for name, embedder in embedders.items():
        c_emb, embed_s = embed_sorted(embedder, chunk_texts, chunk_lengths, batch_size)
        q_emb, query_s = embed_sorted(embedder, query_texts, query_lengths, batch_size)
        scores[name] = q_emb @ c_emb.T
        ranks[name] = _ranks(queries, chunks, scores[name])
        vectors[name] = c_emb
        results.append(_figures(name, ranks[name], len(chunks), embed_s, query_s))

    fp32, int8 = results
    a, b = ranks[int8.path], ranks[fp32.path]
    # A rank of 1 inside the top 10, else none: the MRR bootstrap then resamples hit@10.
    hits_a: Ranks = [1 if r is not None else None for r in a]
    hits_b: Ranks = [1 if r is not None else None for r in b]
    # Where hit@10 flipped, the full ranks say whether it was a near-tie at the cut.
    flipped = [
        [_full_rank(queries[i], chunks, scores[p.path][i]) for p in (fp32, int8)]
        for i in range(len(queries))
        if (a[i] is None) != (b[i] is None)
    ]
    cosine = np.sum(vectors[int8.path] * vectors[fp32.path], axis=1)
    return {
        "corpus": corpus.name,
        "files": len(blanked),
        "max_chunk_tokens": max(chunk_lengths),
        "paths": [asdict(r) for r in results],
        "recall10_diff_int8_minus_fp32": int8.recall_at_10 - fp32.recall_at_10,
        "recall10_diff_bootstrap_95ci": list(bootstrap_mrr_diff(hits_a, hits_b)),
        "mrr10_diff_int8_minus_fp32": int8.mrr_at_10 - fp32.mrr_at_10,
        "mrr10_diff_bootstrap_95ci": list(bootstrap_mrr_diff(a, b)),
        "hit10_gained": sum(1 for x, y in zip(a, b, strict=True) if x and not y),
        "hit10_lost": sum(1 for x, y in zip(a, b, strict=True) if y and not x),
        "hit10_flipped_full_ranks_fp32_int8": flipped,
        "queries_int8_better": sum(1 for x, y in zip(a, b, strict=True) if (x or 99) < (y or 99)),
        "queries_int8_worse": sum(1 for x, y in zip(a, b, strict=True) if (x or 99) > (y or 99)),
        "chunk_cosine_mean": float(cosine.mean()),
        "chunk_cosine_min": float(cosine.min()),
    }


def _print_table(report: dict[str, Any]) -> None:
    print(f"cpu {report['cpu']} (nproc {report['nproc']}, threads {report['threads']})")
    print("| corpus | path | queries | chunks | R@1 | R@5 | R@10 | MRR@10 | embed s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for c in report["corpora"]:
        for r in c["paths"]:
            print(
                f"| {c['corpus']} | {r['path']} | {r['queries']} | {r['chunks']} | "
                f"{r['recall_at_1']:.3f} | {r['recall_at_5']:.3f} | {r['recall_at_10']:.3f} | "
                f"{r['mrr_at_10']:.3f} | {r['embed_s']:.1f} |"
            )
    for c in report["corpora"]:
        r_lo, r_hi = c["recall10_diff_bootstrap_95ci"]
        m_lo, m_hi = c["mrr10_diff_bootstrap_95ci"]
        print(
            f"{c['corpus']}: int8 - fp32 R@10 {c['recall10_diff_int8_minus_fp32']:+.3f} "
            f"(95% CI {r_lo:+.3f} .. {r_hi:+.3f}; hit@10 gained {c['hit10_gained']}, "
            f"lost {c['hit10_lost']}), MRR@10 {c['mrr10_diff_int8_minus_fp32']:+.3f} "
            f"(95% CI {m_lo:+.3f} .. {m_hi:+.3f}); int8 ranks better on "
            f"{c['queries_int8_better']}, worse on {c['queries_int8_worse']}; chunk cosine "
            f"mean {c['chunk_cosine_mean']:.4f} min {c['chunk_cosine_min']:.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, action="append", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cache-dir", type=Path, default=Path("bench/corpora/.onnx-cache"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    os.environ["HF_HUB_OFFLINE"] = "1"  # the bench, not the library, pins offline loading
    model_path = resolve_model_path(MODEL)
    int8 = OnnxInt8Embedder(model_path, args.cache_dir, threads=args.threads)
    fp32 = SentenceTransformerEmbedder(
        model_path, model_id=MODEL, device="cpu", threads=args.threads
    )
    started = time.perf_counter()
    int8.load()  # exports once into the cache (imports torch) before fp32 sets its threads
    fp32.load()
    load_s = time.perf_counter() - started
    embedders: dict[str, Embedder] = {"fp32 torch": fp32, "int8 onnx": int8}
    for embedder in embedders.values():
        embedder.embed(["def warm_up(): pass"] * args.batch_size)

    report: dict[str, Any] = {
        "model": MODEL,
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "load_s": round(load_s, 1),
        "onnx_exported_now": int8.exports,
        "onnx_file": str(int8.onnx_file),
        "corpora": [evaluate(c, embedders, int8, args.batch_size) for c in args.corpus],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_table(report)


if __name__ == "__main__":
    main()

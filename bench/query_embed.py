"""The API's query embedder: export time, per-query latency, cosine to the torch path.

Usage: .venv/bin/python bench/query_embed.py [--precision fp32|int8] [--queries 200]
       [--threads 1] [--cache-dir DIR] [--json]

In one fresh process: (1) exports the model with ``pipeline.adapters.models.onnx_export`` into
an empty cache (torch imported by the export, as on an API's first start) and times it,
then times a second, cached open; (2) embeds ``--queries`` short natural-language queries
one at a time, as the search route does, with ``intra_op_num_threads = --threads``, after
a warm-up of 10, and reports P50/P95/max; (3) embeds the same queries and real code
chunks (stdlib ``textwrap`` + ``shlex``, chunked by the pipeline) with the workers' torch
fp32 path (``SentenceTransformerEmbedder``, CPU) and reports the cosine of each pair.
Queries are the first sentences of function docstrings from stdlib modules (3-14 words).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import cpu_model  # bench/ is the script folder, so on sys.path

from pipeline.adapters.models.onnx_embedder import OnnxEmbedder
from pipeline.adapters.models.torch_embedder import BUNDLED_MODEL, resolve_model_path
from pipeline.adapters.models.vocab import model_token_counter
from pipeline.analysis.analyze import FileAnalysis, analyze_file

_MODULES = (
    "argparse", "textwrap", "shlex", "json.decoder", "http.client", "logging", "pathlib",
    "email.message", "urllib.parse", "csv", "tarfile", "zipfile", "configparser", "subprocess",
    "shutil", "tempfile", "calendar", "difflib", "inspect", "functools", "gettext", "smtplib",
)  # fmt: skip


def docstring_queries(count: int) -> list[str]:
    found: list[str] = []
    for name in _MODULES:
        source = Path(str(importlib.import_module(name).__file__)).read_text("utf-8")
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            doc = ast.get_docstring(node) or ""
            sentence = doc.split("\n\n")[0].replace("\n", " ").split(". ")[0].strip(" .")
            if 3 <= len(sentence.split()) <= 14 and sentence not in found:
                found.append(sentence)
    if len(found) < count:
        raise SystemExit(f"only {len(found)} docstring queries, asked for {count}")
    return found[:count]


def code_chunks() -> list[str]:
    counter = model_token_counter()
    texts: list[str] = []
    for name in ("textwrap", "shlex"):
        path = Path(str(importlib.import_module(name).__file__))
        result = analyze_file(path.name, path.read_bytes(), counter=counter)
        assert isinstance(result, FileAnalysis)
        texts.extend(chunk.text for chunk in result.chunks)
    return texts


def measure(args: argparse.Namespace, cache_dir: Path) -> dict[str, Any]:
    model_path = resolve_model_path(BUNDLED_MODEL)
    queries = docstring_queries(args.queries)
    chunks = code_chunks()

    def make() -> OnnxEmbedder:
        return OnnxEmbedder(model_path, cache_dir, precision=args.precision, threads=args.threads)

    started = time.perf_counter()
    first = make()
    first.load()
    export_s = time.perf_counter() - started
    assert first.exports == 1, "the cache was not empty"
    started = time.perf_counter()
    onnx = make()
    onnx.load()
    open_s = time.perf_counter() - started

    for query in queries[:10]:
        onnx.embed([query])
    latencies_ms, rows = [], []
    for query in queries:
        started = time.perf_counter()
        rows.append(onnx.embed([query])[0])
        latencies_ms.append((time.perf_counter() - started) * 1000)
    got_queries = np.stack(rows)
    got_chunks = np.concatenate([onnx.embed(chunks[i : i + 16]) for i in range(0, len(chunks), 16)])

    from pipeline.adapters.models.torch_embedder import SentenceTransformerEmbedder

    torch_fp32 = SentenceTransformerEmbedder(
        model_path, model_id=BUNDLED_MODEL, device="cpu", threads=args.threads
    )
    cos_q = np.sum(got_queries * torch_fp32.embed(queries), axis=1)
    want_chunks = np.concatenate(
        [torch_fp32.embed(chunks[i : i + 16]) for i in range(0, len(chunks), 16)]
    )
    cos_c = np.sum(got_chunks * want_chunks, axis=1)
    tokens = onnx.count_tokens(queries)
    return {
        "precision": args.precision,
        "model_id": onnx.model_id,
        "threads": args.threads,
        "export_s": round(export_s, 2),
        "cached_open_s": round(open_s, 3),
        "onnx_mb": round((onnx.onnx_file or Path()).stat().st_size / 1e6, 1),
        "queries": len(queries),
        "query_tokens_mean": round(float(np.mean(tokens)), 1),
        "latency_ms_p50": round(float(np.percentile(latencies_ms, 50)), 2),
        "latency_ms_p95": round(float(np.percentile(latencies_ms, 95)), 2),
        "latency_ms_max": round(max(latencies_ms), 2),
        "cosine_queries_min": float(cos_q.min()),
        "cosine_chunks_min": float(cos_c.min()),
        "chunks": len(chunks),
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, help="an empty folder (default: a temporary one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"  # the bench, not the library, pins offline loading
    if args.cache_dir:
        result = measure(args, args.cache_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="quarry-query-embed-") as tmp:
            result = measure(args, Path(tmp))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()

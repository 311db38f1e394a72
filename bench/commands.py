"""``quarry bench embed``: Quarry's embed stage against raw ``model.encode``, in one run.

Chunks a real corpus, then, on the same distinct chunk texts and the same thread
count: (1) times ``SentenceTransformer.encode`` over all of them; (2) starts a private
local stack with only the embed worker (real Redis, PostgreSQL, Celery), empties the
embedding cache, enqueues one embed message per file and times until the last file's
write message is on the write queue (no write worker runs, so they wait there). The
ratio of the two throughputs is the embed stage's overhead.

Must not import: api/.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.api_load import bench_load
from bench.api_memory import bench_api_memory
from bench.corpus import Corpus, corpus_root, load_corpus
from bench.e2e import bench_e2e, bench_incremental
from bench.e2e_stack import run_quarry
from bench.fairness import bench_fairness
from bench.machine import cpu_model
from bench.multi_host import bench_multi_host
from bench.refs import bench_refs
from bench.scale import bench_scale
from bench.search import bench_search
from config.endpoints import resolve_endpoints
from config.settings import QuarrySettings, child_environment, load_settings
from devstack.ports import private_stack_ports
from pipeline.adapters.models.torch_embedder import (
    BUNDLED_MODEL,
    raw_encode_seconds,
    resolve_model_path,
)
from pipeline.messages import encode_file_chunks
from pipeline.models import RepoRef

bench_app = typer.Typer(help="Benchmarks on a real corpus.", no_args_is_help=True)
bench_app.command("search")(bench_search)
bench_app.command("e2e")(bench_e2e)
bench_app.command("incremental")(bench_incremental)
bench_app.command("scale")(bench_scale)
bench_app.command("multi-host")(bench_multi_host)
bench_app.command("api-memory")(bench_api_memory)
bench_app.command("load")(bench_load)
bench_app.command("refs")(bench_refs)
bench_app.command("fairness")(bench_fairness)


def embed_stack_settings(root: Path, threads: int, backend: str) -> QuarrySettings:
    """The embed benchmark's private stack: only the embed worker, in ``root``, on free
    ports for everything it binds (a local stack may hold the defaults)."""
    ports: dict[str, Any] = private_stack_ports()
    return load_settings(
        data_dir=root / "data",
        stack_workers=("embed",),
        embed_torch_threads=threads,
        embed_backend=backend,
        stack_start_timeout_s=300,
        **ports,
    )


def quarry_embed_s(corpus: Corpus, threads: int, backend: str) -> float:
    """Seconds from the first embed message to the last write message, cold cache."""
    from celery import Celery

    from pipeline.adapters.redis.client import connect_redis

    root = Path(tempfile.mkdtemp(prefix="quarry-bench-", dir="/tmp"))
    root.chmod(0o711)
    settings = embed_stack_settings(root, threads, backend)
    env = child_environment(settings)
    try:
        run_quarry("dev", "up", env=env, timeout_s=900)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        redis_url = resolve_endpoints(settings).redis_url
        client = connect_redis(redis_url, timeout_s=5)
        app = Celery("quarry-bench", broker=redis_url)
        app.conf.task_routes = {"quarry.*": {"queue": "quarry.embed"}}
        started = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for batch in corpus.batches:
                app.send_task(
                    "quarry.embed.chunks",
                    kwargs={"message": encode_file_chunks(batch)},
                    queue="quarry.embed",
                    producer=producer,
                )
        while int(client.llen("quarry.write")) < len(corpus.batches):
            time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        run_quarry("dev", "down", env=env, timeout_s=600)
        shutil.rmtree(root, ignore_errors=True)


@bench_app.command("embed")
def bench_embed(
    corpus: Annotated[Path, typer.Option(help="A source folder or a .tar.gz sdist.")],
    *,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    limit_files: Annotated[int | None, typer.Option(help="Only the first N files.")] = None,
    threads: Annotated[
        int, typer.Option(help="Torch threads for both runs (default: all cores).")
    ] = 0,
    batch_size: Annotated[int, typer.Option(help="Raw encode's batch size.")] = 32,
    backend: Annotated[
        str, typer.Option(help="Quarry's embed backend: torch or onnx-int8 (raw is fp32 torch).")
    ] = "torch",
) -> None:
    """Raw model.encode vs Quarry's embed stage through real Celery workers, one run."""
    if not corpus.exists():
        typer.echo(f"quarry: error: corpus does not exist: {corpus}", err=True)
        raise typer.Exit(2)
    threads = threads or os.cpu_count() or 1
    with corpus_root(corpus) as root:
        loaded = load_corpus(root, RepoRef("bench", corpus.name), limit_files)
    texts = loaded.texts
    chunk_total = sum(len(b.chunks) for b in loaded.batches)
    model_path = resolve_model_path(BUNDLED_MODEL)
    raw_s, device = raw_encode_seconds(model_path, texts, threads=threads, batch_size=batch_size)
    quarry_s = quarry_embed_s(loaded, threads, backend)
    result: dict[str, Any] = {
        "corpus": corpus.name,
        "files": len(loaded.batches),
        "chunks": len(texts),
        "chunks_with_duplicates": chunk_total,
        "raw_s": round(raw_s, 2),
        "quarry_s": round(quarry_s, 2),
        "raw_chunks_per_s": round(len(texts) / raw_s, 1),
        "quarry_chunks_per_s": round(len(texts) / quarry_s, 1),
        "ratio": round(raw_s / quarry_s, 3),
        "device": device,
        "backend": backend,
        "threads": threads,
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    for key, value in result.items():
        typer.echo(f"{key:>24}: {value}")

"""Job latency through a real local stack: a tiny job's overhead, a one-file change.

Usage: .venv/bin/python bench/jobs.py [--corpus bench/corpora/django-5.2.19]
       [--limit-files 1000] [--runs 5] [--busy-cores 0] [--poll-ms 2] [--api-poll-ms 10]
       [--json]
       .venv/bin/python bench/jobs.py --small-jobs --work-dir /work/stacks/x/run
       --corpus DJANGO_SDIST --small-corpus ITSDANGEROUS_SDIST [--runs 5] [--seed N] [--json]

Starts a private stack (``quarry dev up``: Redis, PostgreSQL, the graph server, the
``cpu`` and ``embed`` workers with the real model, the API, Flower) in a mode-711 folder
under /tmp on free ports (tests/stackutil.py), copies the first ``--limit-files``
``.py`` files of the corpus by sorted path into a scratch folder and, through the API
(``POST /v1/jobs`` with a folder source), one job at a time:

1. cold: indexes that folder as a new repository (once, for the record);
2. overhead, ``--runs`` times after one warm-up: a NEW repository holding one small file
   of unique content (so the embedding cache misses): POST -> first chunk embedded;
3. change, ``--runs`` times after one warm-up: another file of the indexed repository
   each time gets a small function appended: POST -> status ``done``;
4. with ``--busy-cores N``, 2 and 3 again while N processes spin on the CPU (another
   tenant of a shared machine): ``overhead_busy`` and ``change_busy``.

Each run is followed by bench/job_timeline.py: its events in ms from just before the
POST, from the job board in Redis, the job row in PostgreSQL and ``GET /v1/jobs/{id}``
polled while it runs (``--poll-ms``, ``--api-poll-ms``), and the workers' log lines
(task runtimes, embed flushes). Reported: median and max of the timed runs, every raw
value, the median of each event and task runtime (the breakdown), the machine.
``quarry dev down`` runs at the end whatever happened.

``--small-jobs`` (issue 22 item 3) measures, with the stack's real default settings
(only its folder, ports and the source root set), in a persistent ``--work-dir`` (the
stack's data and the copied trees survive, so a large repository is indexed once and
measured again after a code change):

- ``change``: a one-file change in the WHOLE ``--corpus`` (every ``.py`` file; the cold
  index runs once, the first time): POST -> ``done``. Every invocation first puts a
  stand-in vector in the embedding cache for each of its chunks that has none, so that a
  change embeds only the chunks it changed;
- ``cached``: the first ``--cached-files`` ``.py`` files of ``--corpus``, indexed once as
  a base repository, then each run as a NEW repository (every chunk from the embedding
  cache): POST -> ``done``;
- ``cold_small``: every file of ``--small-corpus`` as a NEW repository with the
  embedding cache rows of its chunks deleted first (every chunk embedded): POST ->
  ``done``, and the fixed cost = ``done`` less the embed flushes' device time
  (``fixed_ms``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis

# bench/ is the script folder, so on sys.path
from job_timeline import Watch, breakdown, follow_job, stats
from machine import cpu_model

from config.endpoints import resolve_endpoints
from config.settings import load_settings
from pipeline.adapters.postgres.connect import connect

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests/ is a namespace package under the repository root
    sys.path.append(str(ROOT))
from tests.stackutil import PORT_KEYS, run_quarry, stack_env, stack_folder  # noqa: E402

CORPUS = ROOT / "bench" / "corpora" / "django-5.2.19"
PACKAGES = (
    "celery",
    "kombu",
    "celery-batches",
    "redis",
    "psycopg",
    "torch",
    "sentence-transformers",
    "arcadedb-embedded",
    "fastapi",
    "uvicorn",
)
OVERHEAD_FIGURES = {"first_embedded": "embedded", "api_embedded": "api_embedded", "done": "done"}
CHANGE_FIGURES = {"done": "done", "finished": "finished", "api_done": "api_done"}
SERIES = ("overhead", "change", "overhead_busy", "change_busy", "cached", "cold_small")
SMALL_FIGURES = {"done": "done", "api_done": "api_done"}
COLD_SMALL_FIGURES = {"done": "done", "fixed": "fixed", "api_done": "api_done"}


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """``count`` processes spinning on the CPU, as another tenant of a shared machine."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5 if spinners else 0)
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def overhead_runs(watch: Watch, scratch: Path, runs: int) -> list[dict[str, Any]]:
    """A new repository of one small, unique file per run (the first is a warm-up)."""
    results = []
    for i in range(runs + 1):
        tag = uuid.uuid4().hex
        folder = scratch / f"overhead-{tag}"
        folder.mkdir()
        (folder / "probe.py").write_text(
            f'def probe_{tag}(value):\n    """Add one; run {i}."""\n    return value + 1\n'
        )
        results.append(follow_job(watch, folder, f"overhead-{tag[:12]}", timeout_s=120))
    return results


def index_caught_up(watch: Watch, timeout_s: float = 300.0) -> float:
    """Wait until no chunk row waits for the HNSW index (migration 0021: the vector index
    task adds a job's rows after it is done); the ms waited. Each measured job then
    starts on a quiet stack, and the wait is the deferred index work of the job before."""
    started = time.perf_counter()
    while watch.pg.execute("SELECT count(*) FROM chunks WHERE NOT indexed").fetchone()[0]:
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"rows still wait for the vector index after {timeout_s} s")
        time.sleep(0.02)
    return round((time.perf_counter() - started) * 1000, 1)


def follow_quiet(watch: Watch, tree: Path, repo: str, timeout_s: float) -> dict[str, Any]:
    """:func:`follow_job`, then the wait for its rows to reach the vector index
    (``index_after_ms``, from the end of the job's follow-up)."""
    result = follow_job(watch, tree, repo, timeout_s=timeout_s)
    result["index_after_ms"] = index_caught_up(watch)
    return result


def change_runs(watch: Watch, tree: Path, repo: str, runs: int, seed: int) -> list[dict[str, Any]]:
    """Append a function to another file of the indexed tree each run (first: warm-up);
    the files (of 1 KB or more) are drawn with ``seed``."""
    files = sorted(p for p in tree.rglob("*.py") if p.stat().st_size >= 1000)
    picks = random.Random(seed).sample(files, runs + 1)
    results = []
    for i, path in enumerate(picks):
        with path.open("a") as handle:
            handle.write(f"\n\ndef quarry_bench_probe_{seed}_{i}(value):\n    return value * 2\n")
        result = follow_quiet(watch, tree, repo, timeout_s=300)
        result["path"] = path.relative_to(tree).as_posix()
        result["path_bytes"] = path.stat().st_size
        results.append(result)
    return results


def copy_corpus(corpus: Path, limit: int, dest: Path, pattern: str = "*.py") -> dict[str, Any]:
    """The first ``limit`` (0: all) files matching ``pattern`` of ``corpus`` by sorted
    path, copied into ``dest``."""
    paths = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob(pattern) if p.is_file())[
        : limit or None
    ]
    if not paths:
        raise SystemExit(f"bench/jobs.py: no .py files under {corpus}")
    for rel in paths:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / rel, dest / rel)
    return {
        "name": corpus.name,
        "files": len(paths),
        "bytes": sum((dest / p).stat().st_size for p in paths),
        "first": paths[0],
        "last": paths[-1],
    }


@contextlib.contextmanager
def private_stack() -> Iterator[tuple[dict[str, str], Path]]:
    """``quarry dev up`` in its own folder and ports; ``quarry dev down`` always."""
    with stack_folder("quarry-bench-jobs-") as data_dir:
        env = stack_env(data_dir)
        try:
            up = run_quarry("dev", "up", env=env, timeout_s=600)
            if up.returncode:
                raise RuntimeError(f"quarry dev up failed:\n{up.stdout}{up.stderr}")
            yield env, data_dir
        finally:
            down = run_quarry("dev", "down", env=env, timeout_s=300)
            if down.returncode:
                print(f"quarry dev down failed:\n{down.stdout}{down.stderr}", file=sys.stderr)


def default_stack_env(data_dir: Path, source_root: Path) -> dict[str, str]:
    """The stack's real default settings: only its folder, free ports, the shared query
    model and the folder jobs may read (tests/stackutil.py's stack_env changes many)."""
    test_env = stack_env(data_dir)
    keep = ("QUARRY_DATA_DIR", "QUARRY_QUERY_MODEL_DIR", *PORT_KEYS)
    env = {k: v for k, v in test_env.items() if k in keep}
    env["QUARRY_SOURCE_ALLOWED_ROOTS"] = str(source_root)
    env["QUARRY_WORKER_METRICS_PORT_CPU"] = "0"
    env["QUARRY_WORKER_METRICS_PORT_EMBED"] = "0"
    return env


@contextlib.contextmanager
def persistent_stack(work_dir: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """``quarry dev up`` on ``work_dir``/stack/data (kept between invocations: the
    repositories indexed there stay); ``quarry dev down`` always."""
    root = work_dir / "stack"
    root.mkdir(parents=True, exist_ok=True)
    for folder in (work_dir, root):
        folder.chmod(0o711)
    env = default_stack_env(root / "data", work_dir / "trees")
    try:
        up = run_quarry("dev", "up", env=env, timeout_s=600)
        if up.returncode:
            raise RuntimeError(f"quarry dev up failed:\n{up.stdout}{up.stderr}")
        yield env, root / "data"
    finally:
        down = run_quarry("dev", "down", env=env, timeout_s=300)
        if down.returncode:
            print(f"quarry dev down failed:\n{down.stdout}{down.stderr}", file=sys.stderr)


def chunk_hashes(env: dict[str, str], tree: Path) -> tuple[set[str], str, int]:
    """The content hashes of every chunk of ``tree``, keyed exactly as the pipeline keys
    them (the stack's chunking settings, token counter and model id); with the model id
    and the number of files."""
    from pipeline.adapters.models.torch_embedder import model_id_for
    from pipeline.analysis.analyze import analyze_file
    from pipeline.analysis.chunking import ChunkingOptions
    from pipeline.analysis.imports import RepoPaths
    from pipeline.analysis.inventory import take_inventory
    from pipeline.models import SkippedFile
    from wiring.models import token_counter

    settings = load_settings(env=env)
    inventory = take_inventory(tree, max_file_bytes=settings.chunk_max_file_bytes)
    paths = RepoPaths(sorted(f.path for f in inventory.files))
    options = ChunkingOptions(
        max_tokens=settings.chunk_max_tokens, max_file_bytes=settings.chunk_max_file_bytes
    )
    counter = token_counter()
    hashes: set[str] = set()
    for file in inventory.files:
        data = (tree / file.path).read_bytes()
        result = analyze_file(file.path, data, options=options, counter=counter, repo=paths)
        if not isinstance(result, SkippedFile):
            hashes.update(c.content_hash for c in result.chunks)
    return hashes, model_id_for(settings.embed_model), len(inventory.files)


def seed_embedding_cache(env: dict[str, str], tree: Path, pg: Any) -> dict[str, Any]:
    """Stand-in vectors (random unit vectors) in the embedding cache for every chunk of
    ``tree`` that has none there: the cold index of a large repository then costs its
    chunking and writes, not an hour of CPU encoding, and a change run embeds only the
    chunks it changed, as it would on a stack that embedded the repository itself. Run
    on every invocation (the tree's files change between them); only the base
    repository is seeded, and what a measured job changes is embedded by the real model."""
    hashes, model_id, files = chunk_hashes(env, tree)
    have = {
        str(row[0])
        for row in pg.execute(
            "SELECT content_sha256 FROM embedding_cache"
            " WHERE model_id = %s AND content_sha256 = ANY(%s)",
            (model_id, sorted(hashes)),
        )
    }
    rng = random.Random(22)
    rows = []
    for content_hash in sorted(hashes - have):
        vector = [rng.gauss(0.0, 1.0) for _ in range(384)]
        norm = sum(v * v for v in vector) ** 0.5
        rows.append(
            (model_id, content_hash, "[" + ",".join(f"{v / norm:.6f}" for v in vector) + "]")
        )
    with pg.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO embedding_cache (model_id, content_sha256, embedding)"
            " VALUES (%s, %s, %s::vector) ON CONFLICT DO NOTHING",
            rows,
        )
    return {"files": files, "chunks": len(hashes), "seeded": len(rows), "model_id": model_id}


def repo_done(pg: Any, repo: str) -> bool:
    """Whether ``repo`` has a job that ended ``done`` (its cold index is there)."""
    row = pg.execute(
        "SELECT 1 FROM jobs j JOIN repositories r ON r.id = j.repository_id"
        " WHERE r.name = %s AND j.status = 'done' LIMIT 1",
        (repo,),
    ).fetchone()
    return row is not None


def cached_runs(watch: Watch, tree: Path, runs: int) -> list[dict[str, Any]]:
    """``tree`` as a NEW repository each run (the first is a warm-up): every chunk is in
    the embedding cache (the base repository indexed it before)."""
    return [
        follow_quiet(watch, tree, f"cached-{uuid.uuid4().hex[:12]}", timeout_s=120)
        for _ in range(runs + 1)
    ]


def cold_small_runs(
    watch: Watch, env: dict[str, str], tree: Path, runs: int
) -> list[dict[str, Any]]:
    """``tree`` as a NEW repository each run (the first is a warm-up), with the embedding
    cache rows of its chunks deleted first: every chunk is embedded. Only those rows: the
    base repository's stay, or its change runs would embed whole files again.
    ``fixed`` = ``done`` less the embed flushes' device time."""
    hashes, model_id, _ = chunk_hashes(env, tree)
    results = []
    for _ in range(runs + 1):
        watch.pg.execute(
            "DELETE FROM embedding_cache WHERE model_id = %s AND content_sha256 = ANY(%s)",
            (model_id, sorted(hashes)),
        )
        result = follow_quiet(watch, tree, f"cold-{uuid.uuid4().hex[:12]}", timeout_s=600)
        device_ms = sum(f["device_ms"] for f in result["flushes"])
        result["device_ms"] = round(device_ms, 1)
        result["events_ms"]["fixed"] = round(result["events_ms"]["done"] - device_ms, 1)
        results.append(result)
    return results


def measure_small(args: argparse.Namespace) -> dict[str, Any]:
    """Issue 22 item 3's three figures; see the module docstring."""
    work = args.work_dir.resolve()
    trees = work / "trees"
    whole, cached_tree, small = (trees / n for n in ("whole", "cached", "small"))
    corpora = {}
    for tree, corpus, limit, pattern in (
        (whole, args.corpus, 0, "*.py"),
        (cached_tree, args.corpus, args.cached_files, "*.py"),
        (small, args.small_corpus, 0, "*"),
    ):
        if not tree.exists():
            tree.mkdir(parents=True)
            copy_corpus(corpus, limit, tree, pattern)
        files = [p for p in tree.rglob("*") if p.is_file()]
        corpora[tree.name] = {
            "name": corpus.name,
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
        }
    load_start = os.getloadavg()
    with persistent_stack(work) as (env, data_dir):
        endpoints = resolve_endpoints(load_settings(env=env))
        headers = {"Authorization": f"Bearer {endpoints.api_token}"}
        with (
            httpx.Client(base_url=endpoints.api_url, headers=headers, timeout=30) as api,
            connect(endpoints.postgres_dsn, autocommit=True) as pg,
        ):
            client: redis.Redis[Any] = redis.Redis.from_url(endpoints.redis_url)
            logs = data_dir / "logs"
            slow = Watch(api, client, pg, logs, poll_s=0.5, api_poll_s=1.0)
            cold: dict[str, Any] = {}
            cold["seeded"] = seed_embedding_cache(env, whole, pg)
            for repo, tree in (("whole", whole), ("cached-base", cached_tree)):
                if not repo_done(pg, repo):
                    started = time.perf_counter()
                    run = follow_job(slow, tree, repo, timeout_s=args.cold_timeout_s)
                    cold[repo] = {
                        "seconds": round(time.perf_counter() - started, 1),
                        "status": run["status"],
                        "files": run["files"],
                        "chunks": run["chunks"],
                        "tasks": task_totals(run),
                    }
            watch = Watch(api, client, pg, logs, args.poll_ms / 1000, args.api_poll_ms / 1000)
            series: dict[str, Any] = {"index_wait_before_ms": index_caught_up(watch)}
            wanted = set(args.series.split(","))
            if "change" in wanted:
                seed = args.seed if args.seed is not None else int(time.time())
                change = change_runs(watch, whole, "whole", args.runs, seed)
                series["change"] = summarise(change, CHANGE_FIGURES)
            if "cached" in wanted:
                series["cached"] = summarise(
                    cached_runs(watch, cached_tree, args.runs), SMALL_FIGURES
                )
            if "cold_small" in wanted:
                series["cold_small"] = summarise(
                    cold_small_runs(watch, env, small, args.runs), COLD_SMALL_FIGURES
                )
            versions = software(watch)
            client.close()
    return {
        "corpora": corpora,
        "cold": cold,
        **series,
        "targets_ms": {"cached_done": 500, "cold_small_fixed": 1000, "change_done": 250},
        "poll_ms": args.poll_ms,
        "api_poll_ms": args.api_poll_ms,
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": cpu_model(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
        },
        "software": versions,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def software(watch: Watch) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    found["redis-server"] = str(watch.redis.info("server").get("redis_version"))
    found["postgresql"] = str(watch.pg.execute("SHOW server_version").fetchone()[0])
    git = ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]
    head = subprocess.run(git, capture_output=True, text=True, check=False).stdout.strip()
    found["quarry_commit"] = head or "?"
    return found


def measure(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    tree = scratch / args.corpus.name
    tree.mkdir()
    corpus = copy_corpus(args.corpus, args.limit_files, tree)
    load_start = os.getloadavg()
    with private_stack() as (env, data_dir):
        endpoints = resolve_endpoints(load_settings(env=env))
        headers = {"Authorization": f"Bearer {endpoints.api_token}"}
        with (
            httpx.Client(base_url=endpoints.api_url, headers=headers, timeout=30) as api,
            connect(endpoints.postgres_dsn, autocommit=True) as pg,
        ):
            client: redis.Redis[Any] = redis.Redis.from_url(endpoints.redis_url)
            logs = data_dir / "logs"
            slow = Watch(api, client, pg, logs, poll_s=0.5, api_poll_s=1.0)
            started = time.perf_counter()
            cold = follow_job(slow, tree, "django", timeout_s=args.cold_timeout_s)
            cold_s = time.perf_counter() - started
            watch = Watch(api, client, pg, logs, args.poll_ms / 1000, args.api_poll_ms / 1000)
            series = {}
            for seed, (name, busy) in enumerate({"": 0, "_busy": args.busy_cores}.items()):
                if name and not busy:
                    continue
                with busy_cores(busy):
                    overhead = overhead_runs(watch, scratch, args.runs)
                    change = change_runs(watch, tree, "django", args.runs, seed)
                series[f"overhead{name}"] = summarise(overhead, OVERHEAD_FIGURES)
                series[f"change{name}"] = summarise(change, CHANGE_FIGURES)
            versions = software(watch)
            client.close()
    chunks = cold["chunks"]["total"]
    return {
        "corpus": {**corpus, "chunks": chunks},
        "cold": {
            "seconds": round(cold_s, 1),
            "chunks_per_s": round(chunks / cold_s, 1),
            "status": cold["status"],
            "files": cold["files"],
            "tasks": task_totals(cold),
        },
        **series,
        "busy_cores": args.busy_cores,
        "targets_ms": {"overhead_first_embedded": 200, "change_done": 1000},
        "poll_ms": args.poll_ms,
        "api_poll_ms": args.api_poll_ms,
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": cpu_model(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
        },
        "software": versions,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def task_totals(run: dict[str, Any]) -> dict[str, Any]:
    """Count and summed runtime of each task of a (big) run, and of its embed flushes."""
    totals: dict[str, Any] = {}
    for task in run["tasks"]:
        entry = totals.setdefault(task["task"], {"count": 0, "runtime_s": 0.0})
        entry["count"] += 1
        entry["runtime_s"] += task.get("runtime_ms", 0.0) / 1000
    flushes = run["flushes"]
    totals["embed.flush"] = {
        "count": len(flushes),
        "runtime_s": sum(f["device_ms"] for f in flushes) / 1000,
        "embedded": sum(f["embedded"] for f in flushes),
    }
    return {k: {**v, "runtime_s": round(v["runtime_s"], 1)} for k, v in totals.items()}


def summarise(runs: list[dict[str, Any]], figures: dict[str, str]) -> dict[str, Any]:
    """Figures over the timed runs (the first run is the warm-up, kept apart)."""
    warmup, timed = runs[0], runs[1:]
    return {
        **{name: stats([r["events_ms"][e] for r in timed]) for name, e in figures.items()},
        **breakdown(timed),
        "warmup": warmup,
        "runs": timed,
    }


def report(result: dict[str, Any]) -> None:
    print(f"corpus: {json.dumps(result.get('corpus', result.get('corpora')))}")
    print(f"cold: {json.dumps(result['cold'])}")
    for part in (p for p in SERIES if p in result):
        section = result[part]
        for name, value in section.items():
            if isinstance(value, dict) and "median_ms" in value:
                print(f"{part} {name}: median {value['median_ms']} ms, max {value['max_ms']} ms")
        for name, value in section["events_median_ms"].items():
            print(f"{part}   {name:>18}: {value:8.1f} ms (median)")
        for name, value in section["task_runtime_median_ms"].items():
            print(f"{part}   task {name:>13}: {value:8.1f} ms (median runtime)")
        print(f"{part}   flush device median: {section['flush_device_median_ms']} ms")
        other = [r["cpu"]["other_core_s"] for r in section["runs"]]
        print(f"{part}   other_core_s per run: {other}")
    for key in ("machine", "software"):
        print(f"{key}: {json.dumps(result[key])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--limit-files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each kind")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="Redis + job row poll")
    parser.add_argument("--api-poll-ms", type=float, default=10.0, help="GET /v1/jobs/{id}")
    parser.add_argument("--cold-timeout-s", type=float, default=3600.0)
    parser.add_argument(
        "--busy-cores",
        type=int,
        default=0,
        help="then both series again with N CPU spinners running (a shared machine)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--small-jobs", action="store_true", help="issue 22 item 3 figures")
    parser.add_argument("--work-dir", type=Path, help="--small-jobs: persistent folder")
    parser.add_argument("--small-corpus", type=Path, help="--small-jobs: the cold job's tree")
    parser.add_argument("--cached-files", type=int, default=40)
    parser.add_argument("--series", default="change,cached,cold_small")
    parser.add_argument(
        "--seed", type=int, help="--small-jobs: draws the changed files (default: the clock)"
    )
    args = parser.parse_args()
    # `kill` (SIGTERM) ends the run through its finally blocks: the stack goes down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.small_jobs:
        if args.work_dir is None or args.small_corpus is None:
            parser.error("--small-jobs needs --work-dir and --small-corpus")
        result = measure_small(args)
        print(json.dumps(result)) if args.json else report(result)
        return
    scratch = Path(tempfile.mkdtemp(prefix="quarry-bench-jobs-src-", dir="/tmp"))
    try:
        result = measure(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        report(result)


if __name__ == "__main__":
    main()

"""``quarry bench scale``: a generated repository of 500,000 files through the stages
whose work grows with a repository (ingest and its slices, chunk, the graph stage, the
commit), each task timed and its process's peak memory read, to show that no task
grows with the repository beyond what it must list.

What runs: a private stack (``quarry dev up`` with no workers: Redis, PostgreSQL, the
graph server, the API) and, in this process and a pool of chunk processes, the stage
functions themselves (pipeline.stages.*) on the real stores, handing each other the
messages the workers would. The embed and write stages are the one stand-in: a file's
chunks settle it as written at once (``--embed`` off: their cost per file is measured by
``quarry bench e2e`` and does not depend on the repository's size), so the run shows
the stages that do.

The tree: ``--files`` small Python modules in folders of 1,000, each with a class that
inherits a base of another module, a method ``run`` (a name defined in every module:
the worst case for resolution by name), a function that calls a function it imports
from another module and one that no module defines. Generated once per size under
``--scratch`` and kept.

Must not import: api/, workers/, tasks/, torch.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import resource
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.e2e_stack import private_stack
from bench.machine import cpu_model
from config.endpoints import resolve_endpoints
from config.settings import QuarrySettings
from pipeline import flow
from pipeline.analysis.chunking import ChunkingOptions
from pipeline.jobs import JobRequest, JobSource, JobStatus, SourceKind
from pipeline.messages import decode_file, decode_repo
from pipeline.models import RepoRef
from pipeline.sources.blobs import blob_reader
from pipeline.stages.chunk import RepoPathsCache, chunk_files
from pipeline.stages.commit import commit_job
from pipeline.stages.graph import write_graph_files
from pipeline.stages.indexing import JobContext, plan_graph, settle
from pipeline.stages.ingest import IngestOptions, ingest, ingest_more
from wiring import models, stores

PER_FOLDER = 1_000
Message = tuple[str, dict[str, Any]]
STAGE_OF_TASK = {s.task: s.name for s in flow.STAGES}


def module_text(i: int, files: int) -> str:
    """Module ``i`` of ``files``: imports a function of module ``j``, inherits a base of
    module ``k``."""
    j, k = (i * 7919 + 1) % files, (i * 104_729 + 3) % files
    return (
        f'"""Generated module {i}."""\n'
        f"from {_module(j)} import step_{j}\n"
        f"from {_module(k)} import Node{k}\n\n\n"
        f"class Node{i}(Node{k}):\n"
        f"    def run(self, value):\n"
        f"        return step_{j}(value) + self.size()\n\n\n"
        f"def step_{i}(value):\n"
        f"    return helper(value) * {i % 7 + 1}\n"
    )


def _module(i: int) -> str:
    return f"pkg{i // PER_FOLDER:04d}.mod{i:07d}"


def generate(root: Path, files: int) -> dict[str, Any]:
    """The tree of ``files`` modules under ``root`` (kept: made once per size)."""
    done = root.parent / f"{root.name}.complete"
    started = time.perf_counter()
    if not done.exists():
        for i in range(files):
            path = root / (_module(i).replace(".", "/") + ".py")
            if i % PER_FOLDER == 0:
                path.parent.mkdir(parents=True, exist_ok=True)
                (path.parent / "__init__.py").write_text("")
            path.write_text(module_text(i, files))
        done.write_text(str(files))
    total = sum(p.stat().st_size for p in root.rglob("*.py"))
    return {
        "files": files,
        "folders": -(-files // PER_FOLDER),
        "bytes": total,
        "generate_s": round(time.perf_counter() - started, 1),
    }


class Timings:
    """Per task kind: how many ran, their summed and longest wall time."""

    def __init__(self) -> None:
        self.kinds: dict[str, dict[str, float]] = {}

    def add(self, kind: str, seconds: float) -> None:
        row = self.kinds.setdefault(kind, {"tasks": 0, "total_s": 0.0, "max_s": 0.0})
        row["tasks"] += 1
        row["total_s"] += seconds
        row["max_s"] = max(row["max_s"], seconds)

    def table(self) -> dict[str, dict[str, float]]:
        return {
            kind: {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
            for kind, row in self.kinds.items()
        }


class _Timed:
    """A store whose calls add their time to ``timings`` (under ``prefix`` + method)."""

    def __init__(self, inner: Any, timings: Timings, prefix: str) -> None:
        self._inner, self._timings, self._prefix = inner, timings, prefix

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        if not callable(method):
            return method

        def timed(*args: Any, **kwargs: Any) -> Any:
            tick = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._timings.add(self._prefix + name, time.perf_counter() - tick)

        return timed


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def _context(settings: QuarrySettings, sent: list[Message]) -> JobContext:
    endpoints = resolve_endpoints(settings)

    def send(task: str, kwargs_list: Sequence[Mapping[str, Any]]) -> None:
        sent.extend((task, dict(kwargs)) for kwargs in kwargs_list)

    return stores.job_context(endpoints, stores.redis_client(endpoints), send=send)


# --- the chunk processes --------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_chunk_worker(settings_json: str) -> None:
    settings = QuarrySettings.model_validate_json(settings_json)
    sent: list[Message] = []
    endpoints = resolve_endpoints(settings)
    _WORKER.update(
        settings=settings,
        sent=sent,
        ctx=_context(settings, sent),
        blobs=stores.blob_store(endpoints),
        counter=models.token_counter(),
        paths=RepoPathsCache(),
        options=ChunkingOptions(
            max_tokens=settings.chunk_max_tokens, max_file_bytes=settings.chunk_max_file_bytes
        ),
    )


def _chunk(message: dict[str, Any]) -> tuple[float, float, list[Message]]:
    """One CHUNK message, as the chunk task runs it; the embed and write stages stand in
    as settling each file with chunks as written. (seconds, peak RSS MB, sent on)."""
    w = _WORKER
    ctx: JobContext = w["ctx"]
    sent: list[Message] = w["sent"]
    sent.clear()
    started = time.perf_counter()
    job_id, snapshot_id = message["job_id"], message["snapshot_id"]
    chunk_files(
        ctx,
        job_id,
        decode_repo(message["repo"]),
        [decode_file(f, f"files[{i}]") for i, f in enumerate(message["files"])],
        read=blob_reader(w["blobs"]),
        options=w["options"],
        counter=w["counter"],
        repo_paths=lambda: w["paths"].get(ctx, snapshot_id),
    )
    embedded = [kw["message"] for task, kw in sent if task == flow.EMBED.task]
    on = [(task, kw) for task, kw in sent if task != flow.EMBED.task]
    sent.clear()
    settle(ctx, job_id, "files.written", [m["file"]["path"] for m in embedded])
    on.extend(sent)
    return time.perf_counter() - started, _peak_rss_mb(), on


# --- the run ---------------------------------------------------------------------------


def run_job(settings: QuarrySettings, tree: Path, processes: int) -> dict[str, Any]:
    """One cold job of ``tree``, every message handled until the commit; the figures."""
    sent: list[Message] = []
    ctx = _context(settings, sent)
    endpoints = resolve_endpoints(settings)
    blobs, uploads = stores.blob_store(endpoints), stores.upload_store(endpoints)
    fetcher = stores.source_fetcher(settings, uploads)
    timings = Timings()
    graph = _Timed(stores.graph_store(settings, endpoints), timings, "graph store: ")
    ctx = dataclasses.replace(ctx, snapshots=_Timed(ctx.snapshots, timings, "snapshot store: "))
    vectors = stores.vector_store(endpoints)
    options = IngestOptions(
        max_file_bytes=settings.chunk_max_file_bytes,
        batch_max_files=settings.job_batch_files,
        batch_max_bytes=settings.job_batch_bytes,
        slice_files=settings.job_ingest_slice_files,
    )
    job_id = str(uuid.uuid4())
    repo = RepoRef("default", f"scale-{tree.name}")
    request = JobRequest(repo, JobSource(SourceKind.PATH, str(tree)), commit=None)
    ctx.jobs.create(request, job_id=job_id, commit=None)
    most_sent = 0
    chunk_peak_mb = 0.0
    queue: deque[Message] = deque([(flow.INGEST.task, {"job_id": job_id})])
    started = time.perf_counter()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        processes,
        mp_context=context,
        initializer=_init_chunk_worker,
        initargs=(settings.model_dump_json(),),
    ) as pool:
        pending: deque[Future[tuple[float, float, list[Message]]]] = deque()
        while queue or pending:
            while pending and (not queue or pending[0].done()):
                seconds, peak, on = pending.popleft().result()
                timings.add(flow.CHUNK.name, seconds)
                chunk_peak_mb = max(chunk_peak_mb, peak)
                queue.extend(on)
            if not queue:
                continue
            task, kwargs = queue.popleft()
            if task == flow.CHUNK.task:
                pending.append(pool.submit(_chunk, kwargs))
                continue
            sent.clear()
            tick = time.perf_counter()
            deps = {"fetcher": fetcher, "blobs": blobs, "graph": graph, "vectors": vectors}
            _handle(task, kwargs, ctx, scratch=tree.parent, options=options, settings=settings,
                    **deps)  # fmt: skip
            timings.add(STAGE_OF_TASK[task], time.perf_counter() - tick)
            most_sent = max(most_sent, len(sent))
            queue.extend(sent)
    wall = time.perf_counter() - started
    job = ctx.jobs.get(job_id)
    return {
        "job_id": job_id,
        "status": None if job is None else job.status.value,
        "message": None if job is None else job.message,
        "wall_s": round(wall, 1),
        "tasks": timings.table(),
        "most_messages_sent_by_one_task": most_sent,
        "peak_rss_mb": {
            "driver (ingest, graph, commit)": round(_peak_rss_mb(), 1),
            "chunk process": round(chunk_peak_mb, 1),
        },
        "searchable_files": len(ctx.snapshots.searchable_files(repo)),
        "graph_files": len(graph.file_versions(repo)),
    }


def _handle(
    task: str, kwargs: dict[str, Any], ctx: JobContext, *, scratch: Path, **deps: Any
) -> None:
    job_id = kwargs["job_id"]
    settings: QuarrySettings = deps["settings"]
    if task == flow.INGEST.task:
        workdir = scratch / f"fetch-{uuid.uuid4().hex[:8]}"
        workdir.mkdir()
        ingest(ctx, job_id, fetcher=deps["fetcher"], blobs=deps["blobs"], workdir=workdir,
               options=deps["options"])  # fmt: skip
    elif task == flow.INGEST_MORE.task:
        ingest_more(ctx, job_id, kwargs["after"], options=deps["options"])
    elif task == flow.GRAPH.task:
        plan_graph(ctx, job_id)
    elif task == flow.GRAPH_FILES.task:
        write_graph_files(ctx, job_id, graph=deps["graph"], batch_files=settings.graph_task_files)
    elif task == flow.COMMIT.task:
        commit_job(ctx, job_id, vectors=deps["vectors"], graph=deps["graph"])
    elif task == flow.WEBHOOK.task:
        pass
    else:
        raise RuntimeError(f"unexpected message {task}")


@contextmanager
def _stack(tree: Path) -> Iterator[QuarrySettings]:
    with private_stack(
        stack_workers=(),
        job_stall_s=86_400,  # no sweeper runs here; and nothing is idle that long
        source_allowed_roots=(tree.parent,),
        stack_graph_heap_mb=4096,
    ) as stack:
        yield stack.settings


def measure(files: int, processes: int, scratch: Path) -> dict[str, Any]:
    tree = scratch / f"tree-{files}"
    tree.mkdir(parents=True, exist_ok=True)
    corpus = generate(tree, files)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    with _stack(tree) as settings:
        figures = run_job(settings, tree, processes)
    return {
        "command": f"quarry bench scale --files {files} --processes {processes}",
        "started": started,
        "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model()},
        "corpus": corpus,
        "settings": {
            "job_ingest_slice_files": settings.job_ingest_slice_files,
            "job_batch_files": settings.job_batch_files,
            "graph_task_files": settings.graph_task_files,
            "task_time_limit_s": settings.task_time_limit_s,
        },
        "run": figures,
        "ok": figures["status"] == JobStatus.DONE.value
        and figures["searchable_files"] == files + corpus["folders"]
        and figures["graph_files"] == figures["searchable_files"],
    }


def bench_scale(
    files: Annotated[int, typer.Option(min=10, help="Modules in the generated tree.")] = 500_000,
    processes: Annotated[int, typer.Option(min=1, help="Chunk processes.")] = 2,
    scratch: Annotated[
        Path, typer.Option(help="Where the tree is generated (kept, one per size).")
    ] = Path("/tmp/quarry-bench-scale"),
    out: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
) -> None:
    """A generated repository of --files modules through ingest, chunk, the graph stage
    and the commit on real stores; each task kind timed (see bench/scale.py)."""
    result = measure(files, processes, scratch)
    text = json.dumps(result, indent=2)
    print(text)
    if out is not None:
        out.write_text(text + "\n")
    if not result["ok"]:
        raise typer.Exit(1)

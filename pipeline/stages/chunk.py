"""The chunk stage: a batch of one job's files read, checked, chunked and handed on.

For each file of the batch: read its bytes (from the blob store, where the ingest stage
put them, so any host can run this stage), check that they are the version the ingest
listed (a file edited since is a failed file, with the reason), analyse it (content
checks, one parse, chunks and graph), then

* send its chunks to the embed queue (one message per file version), or, when the
  embedding cache holds every chunk of the file for the active model, straight to the
  write queue with those vectors (grouped per job, as the embed stage groups them);
* keep its graph extraction for the job's graph stage (pipeline.stages.graph), which
  resolves calls across files once every file is known, and its symbols by version;
* settle the files that end here: skipped on content, no chunks (written: the graph
  stage still writes the file node), or failed.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline import flow
from pipeline.analysis.analyze import analyze_file
from pipeline.analysis.chunking import ChunkingOptions
from pipeline.analysis.imports import RepoPaths
from pipeline.analysis.tokens import TokenCounter
from pipeline.messages import FileChunks, encode_file_chunks
from pipeline.models import FileGraph, FileVersion, RepoRef, SkippedFile
from pipeline.sources.blobs import Reader
from pipeline.stages.embed import CacheLookup, write_cached
from pipeline.stages.graph import kept_symbols, pack_graph
from pipeline.stages.indexing import JobContext, record_error, settle


def fail_batch(ctx: JobContext, payload: Mapping[str, Any], exc: Exception) -> None:
    """A chunk batch that failed for good fails its files (the job then fails at commit);
    the first three carry the reason in the job's errors."""
    job_id = str(payload.get("job_id", ""))
    files = payload.get("files")
    paths = (
        [str(f.get("path")) for f in files if isinstance(f, Mapping)]
        if isinstance(files, list)
        else []
    )
    for path in paths[:3]:
        record_error(ctx, job_id, path, f"chunking failed: {exc}")
    settle(ctx, job_id, "files.failed", paths)


class RepoPathsCache:
    """Every path of a snapshot, for import resolution: one query per job and process
    (the ``size`` most recent snapshots are kept)."""

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._paths: OrderedDict[int, RepoPaths] = OrderedDict()

    def get(self, ctx: JobContext, snapshot_id: int) -> RepoPaths:
        paths = self._paths.get(snapshot_id)
        if paths is None:
            paths = RepoPaths(sorted(ctx.snapshots.snapshot_files(snapshot_id)))
            self._paths[snapshot_id] = paths
            while len(self._paths) > self._size:
                self._paths.popitem(last=False)
        return paths


def chunk_files(
    ctx: JobContext,
    job_id: str,
    repo: RepoRef,
    files: Sequence[FileVersion],
    *,
    read: Reader,
    options: ChunkingOptions,
    counter: TokenCounter,
    repo_paths: Callable[[], RepoPaths | None],
    cached: CacheLookup | None = None,
) -> int:
    """Chunk ``files``, their bytes given by ``read`` (the blob store in the pipeline:
    pipeline.sources.blobs); see the module docstring. With ``cached``, files whose
    every chunk the embedding cache holds go to the write stage at once (pipeline.stages
    .embed.write_cached); returns the chunks served that way."""
    if ctx.board.cancelled(job_id):
        return 0
    paths = repo_paths()
    batches: list[FileChunks] = []
    served = 0
    graphs: dict[str, FileGraph] = {}
    chunk_counts: dict[str, int] = {}
    skipped: dict[str, list[str]] = {}
    empty: list[str] = []
    failed: list[str] = []
    contents = read(files)
    for file in files:
        data = contents.get(file.path, KeyError(file.path))
        if isinstance(data, Exception):
            failed.append(file.path)
            reason = getattr(data, "strerror", None) or data
            record_error(ctx, job_id, file.path, f"unreadable: {reason}")
            continue
        if len(data) != file.size_bytes or hashlib.sha256(data).hexdigest() != file.sha256:
            failed.append(file.path)
            record_error(ctx, job_id, file.path, "changed while the job was running")
            continue
        result = analyze_file(file.path, data, options=options, counter=counter, repo=paths)
        if isinstance(result, SkippedFile):
            skipped.setdefault(result.reason.value, []).append(file.path)
            continue
        chunks = result.chunks
        graph = FileGraph(file, result.extraction, tuple((c.chunk_id, c.symbol) for c in chunks))
        graphs[file.path] = graph
        if chunks:
            batches.append(FileChunks(job_id, repo, file, chunks))
            chunk_counts[file.path] = len(chunks)
        else:
            empty.append(file.path)

    # The graph first: once a file's chunks are sent, its write may settle the job's
    # last file and start the graph stage, which must find every extraction and symbol.
    ctx.snapshots.put_symbols(repo, kept_symbols(graphs))
    ctx.snapshots.stage_graphs(job_id, {p: pack_graph(job_id, repo, g) for p, g in graphs.items()})
    sizes = {f.path: f.size_bytes for f in files}
    chunked = [*chunk_counts, *empty]
    ctx.board.mark(
        job_id,
        "files.chunked",
        chunked,
        {p: {"chunks.total": chunk_counts.get(p, 0), "bytes.processed": sizes[p]} for p in chunked},
    )
    if cached is not None and batches:
        route = write_cached(ctx, batches, cached)
        if route.outgoing is not None:
            ctx.send(flow.WRITE.task, list(route.outgoing.messages))
        batches, served = route.to_embed, route.chunks
    if batches:
        ctx.send(flow.EMBED.task, [{"message": encode_file_chunks(b)} for b in batches])
    for reason, reason_paths in skipped.items():
        count = {p: {f"skipped.{reason}": 1} for p in reason_paths}
        ctx.board.mark(job_id, f"skipped_paths.{reason}", reason_paths, count)
        settle(ctx, job_id, "files.skipped_content", reason_paths)
    settle(ctx, job_id, "files.written", empty)
    settle(ctx, job_id, "files.failed", failed)
    return served

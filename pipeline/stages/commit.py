"""The end of a job: the graph stage, then the commit that makes the snapshot searchable.

Runs once every file of the job has settled. In order, each step idempotent, so that a
commit redelivered after a crash (or retried while a store's breaker is open) ends in
the same state:

1. graph: the extractions the chunk stage kept are resolved across files, with the kept
   symbols of the files this job did not re-read, and written in batches; files
   deleted since the searchable snapshot are removed from the graph;
2. commit: one transaction makes the new snapshot searchable (search reads chunks
   through the searchable snapshot's file list, so it switches from the old commit to
   the new one at once); then the chunk rows of versions no longer current go.

The kept symbols of the files a job did not re-read are needed by every commit; a
:class:`KeptSymbols` keeps them in the worker process by file version (a version's
symbols never change), so that a commit reads and builds only those of versions it has
not seen, instead of every file's of the repository again.

A job with failed files is not published: it fails, naming them, and the previous
snapshot stays searchable (a new job for the commit redoes the work, from the cache).

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from pipeline.analysis.resolution import resolve_across_files
from pipeline.jobs import Job, JobStatus, Stage
from pipeline.messages import decode_file_graph
from pipeline.models import (
    FileExtraction,
    FileGraph,
    FileVersion,
    RepoRef,
    Span,
    Symbol,
    SymbolKind,
)
from pipeline.ports import GraphStore, VectorStore
from pipeline.stages.indexing import JobContext, finish, flush_progress, public_counters

log = logging.getLogger("quarry.jobs")
_NO_SPAN = Span(1, 1, 0, 0)


class KeptSymbols:
    """The kept symbols of file versions as context extractions, by (repository, path,
    sha256), least recently used first out past ``max_symbols``.

    Measured on a 1,000-file repository (14k kept symbols): reading them is 22-30 ms,
    building them 17-20 ms, and the garbage collections their allocation triggers in a
    worker's heap 50-70 ms, on every commit; with this cache a commit reads and builds
    only the versions it has not seen.
    """

    def __init__(self, max_symbols: int = 200_000) -> None:
        self._max_symbols = max_symbols
        self._entries: OrderedDict[tuple[str, str, str], FileExtraction] = OrderedDict()
        self._symbols = 0
        self._lock = threading.Lock()

    def context(
        self, ctx: JobContext, repo: RepoRef, files: Mapping[str, str]
    ) -> list[FileExtraction]:
        """Context extractions of ``files`` (path -> sha256), read once per version."""
        found: dict[str, FileExtraction] = {}
        with self._lock:
            for path, sha in files.items():
                entry = self._entries.get((repo.key, path, sha))
                if entry is not None:
                    self._entries.move_to_end((repo.key, path, sha))
                    found[path] = entry
        missing = {path: sha for path, sha in files.items() if path not in found}
        if missing:
            kept = ctx.snapshots.symbols(repo, missing)
            fresh = {path: _context_extraction(path, kept.get(path, ())) for path in missing}
            found.update(fresh)
            self._keep(repo, missing, fresh)
        return [found[path] for path in files]

    def _keep(
        self, repo: RepoRef, files: Mapping[str, str], fresh: Mapping[str, FileExtraction]
    ) -> None:
        with self._lock:
            for path, extraction in fresh.items():
                key = (repo.key, path, files[path])
                # A version without kept symbols is not cached: a later commit (a
                # reconcile's re-index) may store them.
                if extraction.symbols and key not in self._entries:
                    self._entries[key] = extraction
                    self._symbols += len(extraction.symbols)
            while self._symbols > self._max_symbols and self._entries:
                _key, old = self._entries.popitem(last=False)
                self._symbols -= len(old.symbols)


def _context_extraction(path: str, symbols: Sequence[tuple[str, str, str]]) -> FileExtraction:
    return FileExtraction(
        path=path,
        language="",
        module="",
        symbols=tuple(
            Symbol(name, qualified, SymbolKind(kind), path, _NO_SPAN)
            for name, qualified, kind in symbols
        ),
    )


def commit_job(
    ctx: JobContext,
    job_id: str,
    *,
    vectors: VectorStore,
    graph: GraphStore,
    graph_batch_files: int = 100,
    kept: KeptSymbols | None = None,
) -> JobStatus | None:
    """Write the graph and publish the snapshot; the job's final status (None: skipped)."""
    job = ctx.jobs.get(job_id)
    if job is None or job.status.terminal:
        return None
    if ctx.board.cancelled(job_id):
        return None
    if job.snapshot_id is None:
        finish(ctx, job, JobStatus.FAILED, "internal error: the job has no snapshot")
        return JobStatus.FAILED
    counters = public_counters(ctx.board.counters(job_id))
    failed = counters.get("files.failed", 0)
    if failed:
        flush_progress(ctx, job_id, force=True)
        ctx.snapshots.abandon(job.snapshot_id, "failed")
        finish(
            ctx, job, JobStatus.FAILED, f"{failed} files failed; see errors and `quarry dlq list`"
        )
        return JobStatus.FAILED

    ctx.jobs.set_stage(job_id, Stage.GRAPH)
    current = ctx.snapshots.snapshot_files(job.snapshot_id)
    previous = ctx.snapshots.searchable_files(job.repo)
    graphs = [decode_file_graph(json.loads(raw))[2] for raw in ctx.board.stashed(job_id).values()]
    graphs = [g for g in graphs if g.file.path in current]
    resolved = _resolve(ctx, job, graphs, current, kept or KeptSymbols())
    for start in range(0, len(resolved), graph_batch_files):
        graph.write_files(job.repo, resolved[start : start + graph_batch_files])
    deleted = sorted(set(previous) - set(current))
    if deleted:
        graph.delete_files(job.repo, deleted)
    ctx.snapshots.put_symbols(
        job.repo,
        {
            (g.file.path, g.file.sha256): [
                (s.name, s.qualified_name, s.kind.value) for s in g.extraction.symbols
            ]
            for g in resolved
        },
    )

    ctx.jobs.set_stage(job_id, Stage.COMMIT)
    ctx.snapshots.publish(job.repo, job.snapshot_id)
    vectors.retain_versions(job.repo, {path: f.sha256 for path, f in current.items()})
    ctx.jobs.set_stage(job_id, Stage.DONE)
    finish(ctx, job, JobStatus.DONE)
    ctx.board.clear(job_id)
    log.info(
        "job %s published %s@%s: %d files written, %d deleted",
        job_id,
        job.repo.key,
        job.commit,
        len(resolved),
        len(deleted),
    )
    return JobStatus.DONE


def _resolve(
    ctx: JobContext,
    job: Job,
    graphs: Sequence[FileGraph],
    current: Mapping[str, FileVersion],
    kept: KeptSymbols,
) -> list[FileGraph]:
    """The job's file graphs with calls and bases resolved against the whole commit."""
    if not graphs:
        return []
    mine = {g.file.path for g in graphs}
    others = {path: f.sha256 for path, f in current.items() if path not in mine}
    context = kept.context(ctx, job.repo, others) if others else []
    extractions = resolve_across_files([g.extraction for g in graphs] + context)
    return [
        FileGraph(g.file, extraction, g.chunks)
        for g, extraction in zip(graphs, extractions[: len(graphs)], strict=True)
    ]

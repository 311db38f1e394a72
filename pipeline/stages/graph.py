"""The graph stage, in bounded tasks: the job's file graphs resolved and written a batch
at a time, whatever the size of the repository.

The chunk stage keeps each file's graph extraction in the snapshot store (waiting rows,
``SnapshotStore.stage_graphs``) and each file version's symbols by name
(``put_symbols``). Once every file of the job has settled:

1. :func:`plan_graph` (one small task) reads the waiting paths a page at a time and sends
   one :func:`write_graph_files` message per ``batch_files`` of them; with none waiting it
   sends the commit at once;
2. each :func:`write_graph_files` reads its files' graphs, looks up only the candidates of
   the names their unresolved calls and bases use (``symbol_candidates``: bounded per name,
   however common the name), resolves them exactly as resolving against every symbol of
   the commit would (pipeline.analysis.resolution), writes them to the graph and marks them
   done by deleting their waiting rows; the batch that finds none left sends the commit.

Each step is idempotent: the graph write is a merge, a redelivered batch whose rows are
gone does nothing, and a plan sent again (the sweeper's recovery) sends only the paths
still waiting. Two batches ending together may both send the commit, which is safe.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Mapping, Sequence

from pipeline import flow
from pipeline.analysis.resolution import resolve_against, wanted
from pipeline.jobs import Job, Stage
from pipeline.messages import decode_file_graph, encode_file_graph
from pipeline.models import FileGraph, RepoRef, Span, Symbol, SymbolKind
from pipeline.ports import GraphStore
from pipeline.stages.indexing import JobContext, public_counters

log = logging.getLogger("quarry.jobs")
_NO_SPAN = Span(1, 1, 0, 0)
PLAN_PAGE = 5_000  # waiting paths read per query while planning


def pack_graph(job_id: str, repo: RepoRef, graph: FileGraph) -> bytes:
    """A file graph as it waits for the graph stage: compressed JSON."""
    raw = json.dumps(encode_file_graph(job_id, repo, graph), separators=(",", ":"))
    return zlib.compress(raw.encode("utf-8"), 3)


def unpack_graph(data: bytes) -> FileGraph:
    return decode_file_graph(json.loads(zlib.decompress(data)))[2]


def plan_graph(ctx: JobContext, job_id: str, *, batch_files: int) -> int:
    """Send the job's graph batches (or its commit when none is left); how many batches."""
    job = _live(ctx, job_id)
    if job is None:
        return 0
    if public_counters(ctx.board.counters(job_id)).get("files.failed", 0):
        ctx.send(flow.COMMIT.task, [{"job_id": job_id}])  # which fails the job, naming them
        return 0
    ctx.jobs.set_stage(job_id, Stage.GRAPH)
    sent, after, batch = 0, "", []
    while True:
        page = ctx.snapshots.staged_paths(job_id, after, PLAN_PAGE)
        for path in page:
            batch.append(path)
            if len(batch) >= batch_files:
                ctx.send(flow.GRAPH_FILES.task, [{"job_id": job_id, "paths": batch}])
                sent, batch = sent + 1, []
        if len(page) < PLAN_PAGE:
            break
        after = page[-1]
    if batch:
        ctx.send(flow.GRAPH_FILES.task, [{"job_id": job_id, "paths": batch}])
        sent += 1
    if not sent:
        ctx.send(flow.COMMIT.task, [{"job_id": job_id}])
    log.info("job %s: graph stage in %d batches of up to %d files", job_id, sent, batch_files)
    return sent


def write_graph_files(
    ctx: JobContext, job_id: str, paths: Sequence[str], *, graph: GraphStore
) -> int:
    """Resolve and write the graphs of ``paths`` (those still waiting); how many written.
    The batch that leaves none waiting sends the job's commit."""
    job = _live(ctx, job_id)
    if job is None or job.snapshot_id is None:
        return 0
    packed = ctx.snapshots.staged_graphs(job_id, paths)
    graphs = [unpack_graph(packed[p]) for p in sorted(packed)]
    if graphs:
        resolved = resolve_batch(ctx, job.snapshot_id, graphs)
        graph.write_files(job.repo, resolved)
        ctx.snapshots.unstage(job_id, [g.file.path for g in graphs])
    if not ctx.snapshots.any_staged(job_id):
        ctx.send(flow.COMMIT.task, [{"job_id": job_id}])
    return len(graphs)


def resolve_batch(
    ctx: JobContext, snapshot_id: int, graphs: Sequence[FileGraph]
) -> list[FileGraph]:
    """The graphs with their calls and bases resolved against the snapshot's symbols, read
    by name: only the candidates of the names the batch uses."""
    extractions = [g.extraction for g in graphs]
    need = wanted(extractions)
    found = (
        ctx.snapshots.symbol_candidates(snapshot_id, need.names, need.kinds, need.preferred)
        if need.names
        else []
    )
    symbols = [
        Symbol(name, qualified, SymbolKind(kind), path, _NO_SPAN)
        for name, qualified, kind, path in found
    ]
    resolved = resolve_against(extractions, symbols)
    return [
        FileGraph(g.file, extraction, g.chunks)
        for g, extraction in zip(graphs, resolved, strict=True)
    ]


def kept_symbols(
    graphs: Mapping[str, FileGraph],
) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
    """(path, sha256) -> [(name, qualified name, kind)] of each graph's file version."""
    return {
        (g.file.path, g.file.sha256): [
            (s.name, s.qualified_name, s.kind.value) for s in g.extraction.symbols
        ]
        for g in graphs.values()
    }


def _live(ctx: JobContext, job_id: str) -> Job | None:
    job = ctx.jobs.get(job_id)
    if job is None or job.status.terminal or ctx.board.cancelled(job_id):
        return None
    return job

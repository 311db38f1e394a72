"""The graph stage, in bounded tasks: the job's file graphs resolved and written a batch
at a time, whatever the size of the repository.

The chunk stage keeps each file's graph extraction in the snapshot store (waiting rows,
``SnapshotStore.stage_graphs``) and each file version's symbols by name
(``put_symbols``). Once every file of the job has settled:

1. the graph plan (:func:`pipeline.stages.indexing.plan_graph`, run by the task that
   settles the job's last file, or by the GRAPH task the sweeper sends to recover a
   stalled job) starts the job's batches, or sends the commit at once when no graph
   waits (or files failed: the commit fails the job);
2. each :func:`write_graph_files` takes the first ``batch_files`` waiting graphs, looks up
   only the candidates of the names their unresolved calls and bases use
   (``symbol_candidates``: bounded per name, however common the name), resolves them
   exactly as resolving against every symbol of the commit would
   (pipeline.analysis.resolution), writes them to the graph and marks them done by
   deleting their waiting rows; then it sends the next batch, or, when none is left,
   runs the commit itself (the worker's task passes it; pipeline.stages.commit).

One job's batches run one after another, as its graph writes always did: two writes of
one repository at once made ArcadeDB fail with BrokenChunkChainException (both append
edges to the repository's node), seen in the multi-host benchmark. Jobs of different
repositories still write at once. Each step is idempotent: the graph write is a merge,
and a redelivered batch (or a plan sent again by the sweeper) takes the graphs still
waiting; a redelivery may run beside the batch it already sent, which costs a write
twice, never a wrong graph.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Mapping, Sequence

from pipeline import flow
from pipeline.analysis.resolution import resolve_against, wanted
from pipeline.errors import TransientError
from pipeline.messages import decode_file_graph, encode_file_graph
from pipeline.models import FileGraph, RepoRef, Span, Symbol, SymbolKind
from pipeline.ports import GraphStore
from pipeline.stages.indexing import JobContext, running_job, writes_graph

log = logging.getLogger("quarry.jobs")
_NO_SPAN = Span(1, 1, 0, 0)


def pack_graph(job_id: str, repo: RepoRef, graph: FileGraph) -> bytes:
    """A file graph as it waits for the graph stage: compressed JSON."""
    raw = json.dumps(encode_file_graph(job_id, repo, graph), separators=(",", ":"))
    return zlib.compress(raw.encode("utf-8"), 3)


def unpack_graph(data: bytes) -> FileGraph:
    return decode_file_graph(json.loads(zlib.decompress(data)))[2]


def write_graph_files(
    ctx: JobContext,
    job_id: str,
    *,
    graph: GraphStore,
    batch_files: int,
    commit: Callable[[], object] | None = None,
) -> int:
    """Resolve and write the first ``batch_files`` waiting graphs of the job; how many.
    Then the next batch is sent, or, when none waits, the commit: run here by ``commit``
    when given (the task that wrote the last batch commits, one queue hop and task
    fewer), else, or when it fails transiently, sent as its own task (the commit is
    idempotent)."""
    job = running_job(ctx, job_id)
    if job is None or job.snapshot_id is None:
        return 0
    if not writes_graph(ctx, job):  # overtaken since its plan: the graph keeps the ref's
        ctx.snapshots.drop_staged(job_id)
        _commit(ctx, job_id, commit)
        return 0
    paths = ctx.snapshots.staged_paths(job_id, "", batch_files)
    packed = ctx.snapshots.staged_graphs(job_id, paths)
    graphs = [unpack_graph(packed[p]) for p in sorted(packed)]
    if graphs:
        resolved = resolve_batch(ctx, job.snapshot_id, graphs)
        graph.write_files(job.repo, resolved)
        ctx.snapshots.unstage(job_id, [g.file.path for g in graphs])
    if ctx.snapshots.any_staged(job_id):
        ctx.send(flow.GRAPH_FILES.task, [{"job_id": job_id}])
    else:
        _commit(ctx, job_id, commit)
    return len(graphs)


def _commit(ctx: JobContext, job_id: str, commit: Callable[[], object] | None) -> None:
    """The commit, here when given; one that fails transiently is sent as its own COMMIT
    task, which retries with its own attempts (not those this task has used up)."""
    if commit is not None:
        try:
            commit()
            return
        except TransientError as exc:
            log.info("job %s: commit failed here (%s), sent as its own task", job_id, exc)
    ctx.send(flow.COMMIT.task, [{"job_id": job_id}])


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

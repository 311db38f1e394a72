"""``quarry.write.chunks`` and ``quarry.write.graph``: one file version into one store.

A write is idempotent (an upsert keyed by the file version, a graph write that replaces
the file's nodes), so a message delivered twice, after a worker was killed or a retry,
leaves the same state. Stores sit behind their circuit breakers; the retry policy is
StageTask's (tasks/base.py).

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from config.queues import WRITE_CHUNKS_TASK, WRITE_GRAPH_TASK
from pipeline.messages import decode_file_chunks, decode_file_graph, decode_vectors
from pipeline.models import StoredChunk
from tasks import metrics
from tasks.base import StageTask
from tasks.context import current


@shared_task(bind=True, base=StageTask, name=WRITE_CHUNKS_TASK)  # type: ignore[untyped-decorator]
def write_chunks(self: StageTask, message: dict[str, Any], attempt: int = 0) -> int | None:
    """Upsert one file version's chunks with their vectors; returns the rows written."""

    def run() -> int:
        batch = decode_file_chunks(message)
        model_id = message.get("model_id")
        vectors = decode_vectors(message.get("vectors"), len(batch.chunks))
        rows = [
            StoredChunk(chunk, batch.file.sha256, str(model_id or ""), vector)
            for chunk, vector in zip(batch.chunks, vectors, strict=True)
        ]
        store = current().vectors
        if store is None:
            raise RuntimeError("this worker has no vector store (run the `cpu` profile)")
        store.ensure_repository(batch.repo)
        written = store.upsert_chunks(batch.repo, rows)
        metrics.WRITTEN.labels("postgres", "chunks").inc(written)
        return written

    return self.guarded({"message": message}, attempt, run)


@shared_task(bind=True, base=StageTask, name=WRITE_GRAPH_TASK)  # type: ignore[untyped-decorator]
def write_graph(self: StageTask, message: dict[str, Any], attempt: int = 0) -> int | None:
    """Write one file version's symbols, edges and chunk nodes; returns nodes + edges."""

    def run() -> int:
        _job_id, repo, graph = decode_file_graph(message)
        store = current().graph
        if store is None:
            raise RuntimeError("this worker has no graph store (run the `cpu` profile)")
        written = store.write_files(repo, [graph])
        metrics.WRITTEN.labels("graph", "nodes_and_edges").inc(written)
        return written

    return self.guarded({"message": message}, attempt, run)

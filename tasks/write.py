"""``quarry.write.chunks`` and ``quarry.write.graph``: one file version into one store.

A write is idempotent (an upsert keyed by the file version, a graph write that replaces
the file's nodes), so a message delivered twice, after a worker was killed or a retry,
leaves the same state. Stores sit behind their circuit breakers; the retry policy is
StageTask's (tasks/base.py).

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import shared_task

from config.queues import WRITE_CHUNKS_TASK, WRITE_GRAPH_TASK
from pipeline.indexing import record_error, settle
from pipeline.messages import decode_file_chunks, decode_file_graph, decode_vectors
from pipeline.models import StoredChunk
from tasks import metrics
from tasks.base import StageTask
from tasks.context import current


def fail_file(message: Any, exc: Exception) -> None:
    """A file's message that failed for good fails the file in its job (if it has one)."""
    if not isinstance(message, Mapping):
        return
    job_id, file = message.get("job_id"), message.get("file")
    jobs = current().jobs
    if not isinstance(job_id, str) or not isinstance(file, Mapping) or jobs is None:
        return
    path = str(file.get("path", ""))
    record_error(jobs, job_id, path, str(exc))
    settle(jobs, job_id, "files.failed", [path])


class WriteTask(StageTask):
    abstract = True

    def on_dead_letter(self, payload: Mapping[str, Any], exc: Exception) -> None:
        fail_file(payload.get("message"), exc)


@shared_task(bind=True, base=WriteTask, name=WRITE_CHUNKS_TASK)  # type: ignore[untyped-decorator]
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
        resources = current()
        store = resources.vectors
        if store is None:
            raise RuntimeError("this worker has no vector store (run the `cpu` profile)")
        jobs = resources.jobs
        if batch.job_id and jobs is not None and jobs.board.cancelled(batch.job_id):
            return 0  # cancel stops new work; rows already written stay unsearchable
        store.ensure_repository(batch.repo)
        written = store.upsert_chunks(batch.repo, rows)
        metrics.WRITTEN.labels("postgres", "chunks").inc(written)
        if batch.job_id and jobs is not None:
            settle(jobs, batch.job_id, "files.written", [batch.file.path])
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

"""The CHUNK stage's Celery shim (pipeline.flow.CHUNK; the work: pipeline.stages.chunk).

A batch that fails for good fails its files (the job then fails at its commit).

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import shared_task

from pipeline import flow
from pipeline.errors import InvalidInputError
from pipeline.messages import decode_file, decode_repo
from pipeline.sources.blobs import blob_reader
from pipeline.stages.chunk import RepoPathsCache, chunk_files, fail_batch
from tasks import recording
from tasks.base import StageTask
from tasks.context import cpu_profile, job_resources

_REPO_PATHS = RepoPathsCache()  # each forked process fills its own


class ChunkTask(StageTask):
    abstract = True

    def on_dead_letter(self, payload: Mapping[str, Any], exc: Exception) -> None:
        fail_batch(job_resources()[1], payload, exc)


@shared_task(bind=True, base=ChunkTask, name=flow.CHUNK.task)  # type: ignore[untyped-decorator]
def chunk_files_task(
    self: StageTask,
    *,
    job_id: str,
    repo: dict[str, Any],
    snapshot_id: int,
    files: list[dict[str, Any]],
    attempt: int = 0,
    root: str | None = None,
) -> int | None:
    """Chunk a batch of one job's files and send their chunks to the embed queue.

    The files' bytes come from the blob store; ``root`` is ignored (messages of releases
    whose chunk stage read the ingest host's disk carried it)."""
    payload = {"job_id": job_id, "repo": repo, "snapshot_id": snapshot_id}

    def run() -> int:
        ctx = job_resources()[1]
        cpu = cpu_profile()[1]
        if not isinstance(files, list):
            raise InvalidInputError("files: expected a list")
        versions = [decode_file(f, f"files[{i}]") for i, f in enumerate(files)]
        served = chunk_files(
            ctx,
            job_id,
            decode_repo(repo),
            versions,
            read=blob_reader(cpu.blobs),
            options=cpu.chunking,
            counter=cpu.counter,
            repo_paths=lambda: _REPO_PATHS.get(ctx, snapshot_id),
            cached=cpu.cached,
        )
        recording.record_cached_route(served)
        return len(versions)

    return self.guarded({**payload, "files": files}, attempt, run)

"""``quarry.ingest.job``, ``quarry.chunk.files`` and ``quarry.write.commit``: a job's
own stages; and ``quarry.ingest.sweep``, which sends stalled jobs on (pipeline.recovery).
Each decodes its arguments and calls its use case (pipeline.producer,
pipeline.chunk_stage, pipeline.commit); the retry policy is StageTask's. A task that
fails for good fails what it was responsible for: the job (ingest, commit) or the
batch's files (chunk), so that a job always ends.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
import random
import shutil
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery import shared_task

from config.queues import CHUNK_FILES_TASK, COMMIT_JOB_TASK, INGEST_JOB_TASK, SWEEP_JOBS_TASK
from pipeline.chunk_stage import chunk_files
from pipeline.commit import KeptSymbols, commit_job
from pipeline.errors import InvalidInputError, TransientError
from pipeline.imports import RepoPaths
from pipeline.indexing import JobContext, finish, record_error, settle
from pipeline.jobs import JobStatus
from pipeline.messages import decode_file, decode_repo
from pipeline.producer import IngestOptions, IngestOutcome, ingest
from pipeline.recovery import sweep
from tasks import metrics
from tasks.base import StageTask
from tasks.context import Resources, current

log = logging.getLogger("quarry.jobs")
BUSY_RETRY_S = 2.0
_REPO_PATHS: OrderedDict[int, RepoPaths] = OrderedDict()
_KEPT_SYMBOLS = KeptSymbols()  # empty until a commit runs: each forked process fills its own


def _context() -> tuple[Resources, JobContext]:
    resources = current()
    if resources.jobs is None:
        raise RuntimeError("this worker has no job stores (run the `cpu` profile)")
    return resources, resources.jobs


def workdir_for(data_dir: Path, job_id: str) -> Path:
    """The job's own folder for a clone or an extracted archive."""
    return data_dir / "work" / job_id


class JobTask(StageTask):
    """A stage whose failure for good fails the job."""

    abstract = True

    def on_dead_letter(self, payload: Mapping[str, Any], exc: Exception) -> None:
        job_id = str(payload.get("job_id", ""))
        _resources, ctx = _context()
        job = ctx.jobs.get(job_id)
        if job is not None:
            record_error(ctx, job_id, "", f"{self.name}: {exc}")
            finish(ctx, job, JobStatus.FAILED, f"{self.name} failed: {exc}")


class ChunkTask(StageTask):
    """A chunk batch that fails for good fails its files (the job then fails at commit)."""

    abstract = True

    def on_dead_letter(self, payload: Mapping[str, Any], exc: Exception) -> None:
        job_id = str(payload.get("job_id", ""))
        files = payload.get("files")
        paths = (
            [str(f.get("path")) for f in files if isinstance(f, Mapping)]
            if isinstance(files, list)
            else []
        )
        _resources, ctx = _context()
        for path in paths[:3]:
            record_error(ctx, job_id, path, f"chunking failed: {exc}")
        settle(ctx, job_id, "files.failed", paths)


@shared_task(bind=True, base=JobTask, name=INGEST_JOB_TASK)  # type: ignore[untyped-decorator]
def ingest_job(self: StageTask, job_id: str, attempt: int = 0) -> str | None:
    """List, hash and diff the job's source; enqueue the changed files for chunking."""

    def run() -> str:
        resources, ctx = _context()
        if resources.fetcher is None:
            raise RuntimeError("this worker has no source fetcher (run the `cpu` profile)")
        settings = resources.settings
        # A folder of its own per delivery: a redelivered ingest must not pull the tree
        # from under the chunk tasks of the first one. The commit removes them all.
        workdir = workdir_for(settings.data_dir, job_id) / f"fetch-{uuid.uuid4().hex[:12]}"
        workdir.mkdir(parents=True)
        outcome = ingest(
            ctx,
            job_id,
            fetcher=resources.fetcher,
            workdir=workdir,
            options=IngestOptions(
                max_file_bytes=settings.chunk_max_file_bytes,
                batch_max_files=settings.job_batch_files,
                batch_max_bytes=settings.job_batch_bytes,
            ),
        )
        if outcome in (IngestOutcome.SKIPPED, IngestOutcome.FAILED, IngestOutcome.BUSY):
            shutil.rmtree(workdir, ignore_errors=True)
        if outcome is IngestOutcome.BUSY:
            # Another job of the repository runs: wait for it, without using an attempt.
            countdown = BUSY_RETRY_S * (1 + random.random())  # noqa: S311 (jitter)
            raise self.retry(kwargs={"job_id": job_id, "attempt": attempt}, countdown=countdown)
        return outcome.value

    return self.guarded({"job_id": job_id}, attempt, run)


@shared_task(bind=True, base=ChunkTask, name=CHUNK_FILES_TASK)  # type: ignore[untyped-decorator]
def chunk_files_task(
    self: StageTask,
    *,
    job_id: str,
    repo: dict[str, Any],
    root: str,
    snapshot_id: int,
    files: list[dict[str, Any]],
    attempt: int = 0,
) -> int | None:
    """Chunk a batch of one job's files and send their chunks to the embed queue."""
    payload = {
        "job_id": job_id,
        "repo": repo,
        "root": root,
        "snapshot_id": snapshot_id,
        "files": files,
    }

    def run() -> int:
        resources, ctx = _context()
        if resources.chunking is None:
            raise RuntimeError("this worker has no chunking setup (run the `cpu` profile)")
        if not isinstance(files, list):
            raise InvalidInputError("files: expected a list")
        versions = [decode_file(f, f"files[{i}]") for i, f in enumerate(files)]
        options, counter = resources.chunking
        chunk_files(
            ctx,
            job_id,
            decode_repo(repo),
            Path(root),
            versions,
            options=options,
            counter=counter,
            repo_paths=lambda: _repo_paths(ctx, snapshot_id),
        )
        return len(versions)

    return self.guarded(payload, attempt, run)


def _repo_paths(ctx: JobContext, snapshot_id: int) -> RepoPaths:
    # Import resolution needs every path of the commit; one query per job and process.
    paths = _REPO_PATHS.get(snapshot_id)
    if paths is None:
        paths = RepoPaths(sorted(ctx.snapshots.snapshot_files(snapshot_id)))
        _REPO_PATHS[snapshot_id] = paths
        while len(_REPO_PATHS) > 8:
            _REPO_PATHS.popitem(last=False)
    return paths


@shared_task(bind=True, base=JobTask, name=COMMIT_JOB_TASK)  # type: ignore[untyped-decorator]
def commit_job_task(self: StageTask, job_id: str, attempt: int = 0) -> str | None:
    """Write the job's graph and make its snapshot searchable."""

    def run() -> str:
        resources, ctx = _context()
        if resources.vectors is None or resources.graph is None:
            raise RuntimeError("this worker has no stores (run the `cpu` profile)")
        status = commit_job(
            ctx,
            job_id,
            vectors=resources.vectors,
            graph=resources.graph,
            kept=_KEPT_SYMBOLS,
        )
        shutil.rmtree(workdir_for(resources.settings.data_dir, job_id), ignore_errors=True)
        return status.value if status else "skipped"

    return self.guarded({"job_id": job_id}, attempt, run)


SWEEP_THROTTLE = "sweeper"


@shared_task(name=SWEEP_JOBS_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
def sweep_jobs() -> int:
    """Send stalled jobs on (pipeline.recovery); at most one sweep per interval however
    many cpu workers ask for one. A store that is down skips this sweep."""
    resources, ctx = _context()
    settings = resources.settings
    if resources.in_flight is None:
        raise RuntimeError("this worker has no view of the broker (run the `cpu` profile)")
    interval_s = max(1.0, 0.8 * settings.job_sweep_interval_s)
    try:
        if not ctx.board.throttle(SWEEP_THROTTLE, "sweep", interval_s):
            return 0
        found = sweep(
            ctx,
            resources.in_flight,
            idle_s=settings.job_stall_s,
            max_recoveries=settings.job_max_recoveries,
        )
    except TransientError as exc:
        log.warning("job sweep skipped: %s", exc)
        return 0
    for recovery in found:
        metrics.JOBS_RECOVERED.labels(recovery.action.value).inc()
    return len(found)

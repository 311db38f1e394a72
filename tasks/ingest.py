"""The INGEST stage's Celery shim (pipeline.flow.INGEST; the work: pipeline.stages.ingest),
and the sweeper's task, which sends stalled jobs on (pipeline.stages.recovery).

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
import random
import shutil
import uuid
from collections.abc import Callable

from celery import shared_task

from config.settings import QuarrySettings
from pipeline import flow
from pipeline.analysis.inventory import VersionCache
from pipeline.errors import TransientError
from pipeline.jobs import Job
from pipeline.quotas import default_limits
from pipeline.sources import blobs as blob_policy
from pipeline.sources import uploads as upload_policy
from pipeline.stages.deletion import resume_deletions
from pipeline.stages.indexing import JobContext
from pipeline.stages.ingest import IngestOptions, IngestOutcome, ingest, ingest_more, job_workdir
from pipeline.stages.recovery import sweep
from pipeline.stages.vector_index import offer_start
from tasks import metrics
from tasks.base import JobTask, StageTask
from tasks.context import CpuProfile, cpu_profile, job_resources

log = logging.getLogger("quarry.jobs")
# Each forked process keeps the versions of the folders it listed (pipeline.analysis.
# inventory.VersionCache): a folder indexed again hashes only its changed files.
VERSIONS = VersionCache()
BUSY_RETRY_S = 2.0
SWEEP_THROTTLE = "sweeper"


def _options(settings: QuarrySettings) -> IngestOptions:
    return IngestOptions(
        max_file_bytes=settings.chunk_max_file_bytes,
        batch_max_files=settings.job_batch_files,
        batch_max_bytes=settings.job_batch_bytes,
        slice_files=settings.job_ingest_slice_files,
        window_files=settings.job_window_files,
    )


def _quota_charge(settings: QuarrySettings, cpu: CpuProfile) -> Callable[[Job, int], None] | None:
    """The files-per-day charge of a job's ingest (pipeline.quotas); None without a store."""
    store = cpu.quotas
    if store is None:
        return None
    defaults = default_limits(settings)

    def charge(job: Job, files: int) -> None:
        store.charge_files(job.repo.tenant, job.job_id, files, defaults)

    return charge


@shared_task(bind=True, base=JobTask, name=flow.INGEST.task)  # type: ignore[untyped-decorator]
def ingest_job(self: StageTask, job_id: str, attempt: int = 0) -> str | None:
    """List, hash and diff the job's source; enqueue the changed files for chunking."""

    def run() -> str:
        resources, ctx = job_resources()
        cpu = cpu_profile()[1]
        settings = resources.settings
        # A folder of its own per delivery, so that two deliveries never share a checkout.
        workdir = job_workdir(settings.data_dir, job_id) / f"fetch-{uuid.uuid4().hex[:12]}"
        workdir.mkdir(parents=True)
        options = _options(settings)
        outcome = ingest(
            ctx,
            job_id,
            fetcher=cpu.fetcher,
            blobs=cpu.blobs,
            workdir=workdir,
            options=options,
            charge=_quota_charge(settings, cpu),
            versions=VERSIONS,
        )
        # The checkout is scratch: the files' bytes are in the blob store now.
        shutil.rmtree(workdir, ignore_errors=True)
        if outcome is IngestOutcome.BUSY:
            # Another job of the repository runs: wait for it, without using an attempt.
            countdown = BUSY_RETRY_S * (1 + random.random())  # noqa: S311 (jitter)
            raise self.retry(kwargs={"job_id": job_id, "attempt": attempt}, countdown=countdown)
        return outcome.value

    return self.guarded({"job_id": job_id}, attempt, run)


@shared_task(bind=True, base=JobTask, name=flow.INGEST_MORE.task)  # type: ignore[untyped-decorator]
def ingest_more_task(
    self: StageTask, job_id: str, after: str, attempt: int = 0, run: str = ""
) -> int | None:
    """Send the next slice of a large job's files for chunking (``run``: the ingest run
    whose window released it, pipeline.stages.window)."""

    def send() -> int:
        resources, ctx = job_resources()
        options = _options(resources.settings)
        return ingest_more(ctx, job_id, after, options=options, run=run)

    return self.guarded({"job_id": job_id, "after": after, "run": run}, attempt, send)


# Housekeeping, every job_sweep_interval_s (1 s in the tests): no task events, so that
# Flower's task list shows the work and not a sweep every interval (its sender sends no
# task-sent either: workers/sweep_timer.py). Its own metrics and log lines still count it.
@shared_task(name=flow.SWEEP_TASK, ignore_result=True, send_events=False)  # type: ignore[untyped-decorator]
def sweep_jobs() -> int:
    """Send stalled jobs on (pipeline.stages.recovery); at most one sweep per interval however
    many cpu workers ask for one. A store that is down skips this sweep."""
    resources, ctx = job_resources()
    settings = resources.settings
    in_flight = cpu_profile()[1].in_flight
    interval_s = max(1.0, 0.8 * settings.job_sweep_interval_s)
    try:
        # First the messages of dead workers, so that their jobs are not stalled: every
        # sweep, not throttled (a cheap SCAN when no worker died).
        given_back = in_flight.restore_orphans()
        if given_back:
            log.warning("gave back %d messages held by dead workers", given_back)
            metrics.MESSAGES_RESTORED.inc(given_back)
    except TransientError as exc:
        log.warning("could not give back dead workers' messages: %s", exc)
    try:
        if not ctx.board.throttle(SWEEP_THROTTLE, "sweep", interval_s):
            return 0
        found = sweep(
            ctx,
            in_flight,
            idle_s=settings.job_stall_s,
            max_recoveries=settings.job_max_recoveries,
        )
    except TransientError as exc:
        log.warning("job sweep skipped: %s", exc)
        return 0
    for recovery in found:
        metrics.JOBS_RECOVERED.labels(recovery.action.value).inc()
    _resume_deletions(ctx, cpu_profile()[1], settings)
    _collect(ctx, cpu_profile()[1])
    _index_vectors(ctx, cpu_profile()[1])
    return len(found)


def _resume_deletions(ctx: JobContext, cpu: CpuProfile, settings: QuarrySettings) -> None:
    """Repository deletions whose worker died are sent again (pipeline.stages.deletion)."""

    def send(deletion_id: str) -> None:
        ctx.send(flow.DELETE_REPO_TASK, [{"deletion_id": deletion_id}])

    try:
        resume_deletions(cpu.deletions, send, idle_s=settings.delete_stall_s)
    except TransientError as exc:
        log.warning("repository deletion sweep skipped: %s", exc)


def _index_vectors(ctx: JobContext, cpu: CpuProfile) -> None:
    """Rows still out of the HNSW index (a lost index task, a store that was down) get
    an index task; the waiting rows are the gauge."""
    try:
        pending = cpu.vectors.pending_rows()
        metrics.VECTORS_PENDING.set(pending)
        if pending:
            offer_start(ctx)
    except TransientError as exc:
        log.warning("vector index sweep skipped: %s", exc)


def _collect(ctx: JobContext, cpu: CpuProfile) -> None:
    """Source blobs no snapshot holds, uploads no live job names and file graphs of jobs
    that ended go; at most once per interval whichever worker sweeps."""
    try:
        if ctx.board.throttle(SWEEP_THROTTLE, "blobs", blob_policy.COLLECT_INTERVAL_S):
            blobs = cpu.blobs.collect(
                older_than_s=blob_policy.COLLECT_GRACE_S, limit=blob_policy.COLLECT_LIMIT
            )
            uploads = cpu.uploads.collect(
                older_than_s=upload_policy.COLLECT_GRACE_S, limit=upload_policy.COLLECT_LIMIT
            )
            graphs = ctx.snapshots.collect_staged(limit=blob_policy.COLLECT_LIMIT)
            log.info(
                "collected: %d source blobs, %d uploads, %d file graphs of ended jobs",
                blobs,
                uploads,
                graphs,
            )
    except TransientError as exc:
        log.warning("source blob and upload collection skipped: %s", exc)

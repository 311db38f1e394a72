"""The end of a job: the commit that makes the snapshot searchable.

Runs once the graph stage (pipeline.stages.graph) has written every file graph of the
job. In order, each step idempotent, so that a commit redelivered after a crash (or
retried while a store's breaker is open) ends in the same state:

1. files deleted since the ref's snapshot are removed from the graph (the graph follows
   the default ref only: pipeline/refs.py);
2. one transaction makes the new snapshot the one the job's ref holds (search reads
   chunks through that snapshot's file list, so the ref switches from the old commit to
   the new one at once), unless a job created after this one already published the ref:
   then the ref stays, and the job ends ``done`` without publishing, saying so;
3. the chunk rows of versions of the paths that changed that no held or indexing
   snapshot lists any more go (a version another ref holds stays).

A job with failed files is not published: it fails, naming them, and the previous
snapshot stays searchable (a new job for the commit redoes the work, from the cache).

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import logging

from pipeline.jobs import NOT_PUBLISHED, JobStatus, Stage
from pipeline.ports import GraphStore, VectorStore
from pipeline.stages.indexing import (
    JobContext,
    finish,
    flush_progress,
    public_counters,
    writes_graph,
)
from pipeline.stages.vector_index import offer_start

log = logging.getLogger("quarry.jobs")


def commit_job(
    ctx: JobContext,
    job_id: str,
    *,
    vectors: VectorStore,
    graph: GraphStore,
) -> JobStatus | None:
    """Publish the snapshot; the job's final status (None: skipped)."""
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

    if ctx.snapshots.any_staged(job_id):
        # Not the graph stage's commit (a stale redelivery): the batches still waiting
        # send it, or the sweeper sends the graph stage again if they were lost.
        log.info("job %s: commit skipped, file graphs still wait", job_id)
        return None
    ctx.jobs.set_stage(job_id, Stage.COMMIT)
    # Compared in the store: a one-file change reads that file's row, not the
    # repository's file lists. ``changed``: the paths whose version may lose its last
    # holder, against what the ref held, or for a new ref its base (the default ref's).
    changes = ctx.snapshots.snapshot_changes(job.repo, job.snapshot_id, job.ref_name)
    deleted = list(changes.deleted)
    if deleted and writes_graph(ctx, job):
        graph.delete_files(job.repo, deleted)
    newer = ctx.snapshots.publish(
        job.repo, job.snapshot_id, job.ref_name, job.seq, changed=changes.changed
    )
    if changes.changed:
        held = ctx.snapshots.held_versions(job.repo, changes.changed)
        vectors.retain_versions(job.repo, held)
    ctx.jobs.set_stage(job_id, Stage.DONE)
    message = ""
    if newer is not None:
        ctx.board.set_counters(job_id, {NOT_PUBLISHED: 1})
        flush_progress(ctx, job_id, force=True)
        message = (
            f"not published: ref {job.ref_name!r} already holds commit {newer[:12]}"
            " from a job created after this one"
        )
    finish(ctx, job, JobStatus.DONE, message)
    ctx.board.clear(job_id)
    # The job's rows go into the HNSW index now, off its path (pipeline.stages.vector_index).
    offer_start(ctx)
    log.info(
        "job %s %s %s@%s to ref %s: %d files, %d deleted",
        job_id,
        "did not publish" if message else "published",
        job.repo.key,
        job.commit,
        job.ref_name,
        changes.files,
        len(deleted),
    )
    return JobStatus.DONE

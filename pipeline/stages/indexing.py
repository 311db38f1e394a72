"""The bookkeeping every stage of a job shares: counters, settling files, finishing.

Owns :class:`JobContext` (the ports a stage needs, and how it enqueues the next task)
and the rules that keep a job's numbers exact under redelivery:

* per-file events are *marks* (sets of paths), so a task delivered twice never counts a
  file twice; ``files.settled`` holds every file that reached its end (written, failed,
  or skipped by a content check), and the job's graph stage (then its commit) is
  started by whoever settles the last file, at least once (see
  :func:`maybe_start_graph`, which runs :func:`plan_graph` in that task);
* counters live in Redis while the job runs and are flushed to the job record at most
  once a second, and always when the job finishes;
* finishing is first-caller-wins, and sends the job's webhook event when it has a
  callback URL; the winner alone calls ``on_finish`` (metrics) with the ended job.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline import flow
from pipeline.errors import TransientError
from pipeline.jobs import Job, JobError, JobStatus, Stage, StoreWait, merge_counters
from pipeline.ports import JobBoard, JobStore, SnapshotStore
from pipeline.stages import window

log = logging.getLogger("quarry.jobs")

# Enqueues one task per kwargs mapping, through admission (waiting while a queue is full).
Send = Callable[[str, Sequence[Mapping[str, Any]]], None]
# Observes a job that just ended (its final record), once per job.
OnFinish = Callable[[Job], None]

FLUSH_INTERVAL_S = 1.0
SETTLED = "files.settled"
GRAPH_SENT = "commit.sent"  # a set counter: 1 once the job's graph stage has been sent
# A wait still shows this long after its retry time: the retried task takes a moment to
# run, and if the store is still down it records a new wait.
WAIT_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a stage needs to account for its work and hand it on."""

    jobs: JobStore
    snapshots: SnapshotStore
    board: JobBoard
    send: Send
    clock: Callable[[], float] = field(default=time.time)
    on_finish: OnFinish | None = None
    # A send that never waits for room: a full queue raises QueueFullError at once
    # (for work that may be dropped and is offered again later); None: ``send``.
    offer: Send | None = None


def public_counters(raw: Mapping[str, int]) -> dict[str, int]:
    """The job's counters as reported: ``files.skipped`` is the producer's skips
    (unchanged or excluded) plus the files the chunk stage skipped on content."""
    counters = window.public(raw)  # the fairness window's bookkeeping is not shown
    counters["files.skipped"] = raw.get("files.skipped_listed", 0) + raw.get(
        "files.skipped_content", 0
    )
    return counters


def live_job(ctx: JobContext, job: Job) -> Job:
    """The job record with the live counters of a running job laid over it, and the
    stores it waits on now."""
    if job.status.terminal:
        return job
    now = ctx.clock()
    waiting = tuple(w for w in ctx.board.waits(job.job_id) if w.until + WAIT_GRACE_S > now)
    live = ctx.board.counters(job.job_id)
    if live:
        job = replace(job, counters=public_counters(merge_counters(job.counters, live)))
    return replace(job, waiting=waiting) if waiting else job


def note_wait(ctx: JobContext, job_id: str, store: str, wait_s: float, reason: str) -> None:
    """Record that the job's work waits ``wait_s`` on ``store`` (its breaker is open)."""
    ctx.board.wait_on(job_id, StoreWait(store, ctx.clock() + wait_s, reason[:300]))


def flush_progress(
    ctx: JobContext,
    job_id: str,
    *,
    force: bool = False,
    counters: Mapping[str, int] | None = None,
) -> None:
    """Copy the live counters (``counters`` when the caller just read them) and new
    errors to the job record (throttled)."""
    if not force and not ctx.board.throttle(job_id, "flush", FLUSH_INTERVAL_S):
        return
    live = counters if counters is not None else ctx.board.counters(job_id)
    ctx.jobs.save_progress(job_id, public_counters(live), ctx.board.take_errors(job_id))


def record_error(ctx: JobContext, job_id: str, path: str, message: str) -> None:
    ctx.board.push_error(job_id, JobError(path, message[:500], ctx.clock()))


def settle(ctx: JobContext, job_id: str, counter: str, paths: Sequence[str]) -> None:
    """Count ``paths`` under ``counter`` and as settled; the last file enqueues the graph
    stage."""
    if not paths:
        return
    ctx.board.mark(job_id, counter, paths)
    ctx.board.mark(job_id, SETTLED, paths)
    counters = ctx.board.counters(job_id)
    # Settled files make room in the job's window: its next slice may go (fair sharing).
    window.release(ctx.board, ctx.send, job_id, counters, counters.get(SETTLED, 0))
    maybe_start_graph(ctx, job_id, counters)
    flush_progress(ctx, job_id, counters=counters)


def maybe_start_graph(ctx: JobContext, job_id: str, counters: Mapping[str, int]) -> bool:
    """Start the job's graph stage (which ends with its commit) once every file to do has
    settled: the task that settles the last file runs the graph plan itself
    (:func:`plan_graph`, a few store calls that send the first graph batch, or the
    commit), one queue hop and task fewer than sending it; the GRAPH task is what the
    sweeper sends to recover a job that stalled there.

    At least once, and rarely more: it is marked started only after the plan ran, so a
    task killed in between runs it again when it is delivered again; two tasks settling
    the last files at the same moment may both run it. The plan is idempotent (it sends
    only the graphs still waiting) and skips a job that has ended."""
    todo = counters.get("files.todo")
    if todo is None or counters.get(SETTLED, 0) < todo or counters.get(GRAPH_SENT, 0):
        return False
    plan_graph(ctx, job_id)
    ctx.board.mark(job_id, GRAPH_SENT, ["1"])
    return True


def plan_graph(ctx: JobContext, job_id: str) -> int:
    """Start the job's graph batches (or send its commit when none waits); the number of
    messages sent to the graph-files stage (0 or 1). See pipeline.stages.graph."""
    job = running_job(ctx, job_id)
    if job is None:
        return 0
    if public_counters(ctx.board.counters(job_id)).get("files.failed", 0):
        ctx.send(flow.COMMIT.task, [{"job_id": job_id}])  # which fails the job, naming them
        return 0
    ctx.jobs.set_stage(job_id, Stage.GRAPH)
    if not writes_graph(ctx, job):
        ctx.snapshots.drop_staged(job_id)  # the graph follows the default ref only
    if not ctx.snapshots.any_staged(job_id):
        ctx.send(flow.COMMIT.task, [{"job_id": job_id}])
        return 0
    ctx.send(flow.GRAPH_FILES.task, [{"job_id": job_id}])
    log.info("job %s: graph stage started", job_id)
    return 1


def writes_graph(ctx: JobContext, job: Job) -> bool:
    """Whether the job's graph goes to the graph store: the graph follows the repository's
    default ref only (pipeline/refs.py); a job of another ref writes none, and neither
    does one that a job created after it has overtaken (it will not publish, and the
    graph must keep the commit the ref holds)."""
    if job.ref_name != ctx.snapshots.default_ref(job.repo):
        return False
    return ctx.snapshots.published_seq(job.repo, job.ref_name) <= job.seq


def running_job(ctx: JobContext, job_id: str) -> Job | None:
    """The job, unless it is unknown, ended or cancelled."""
    job = ctx.jobs.get(job_id)
    if job is None or job.status.terminal or ctx.board.cancelled(job_id):
        return None
    return job


def finish(ctx: JobContext, job: Job, status: JobStatus, message: str = "") -> bool:
    """Make the job terminal (first caller wins), flush it, and send its webhook event."""
    flush_progress(ctx, job.job_id, force=True)
    if not ctx.jobs.finish(job.job_id, status, message):
        return False
    try:  # the graphs still waiting are of no use now (the sweeper collects them too)
        ctx.snapshots.drop_staged(job.job_id)
    except TransientError as exc:
        log.warning("job %s: its waiting file graphs stay until collected: %s", job.job_id, exc)
    if status in (JobStatus.FAILED, JobStatus.CANCELLED):
        _abandon_snapshot(ctx, job, status)
    log.info("job %s %s: %s", job.job_id, status.value, message or "ok")
    _observe_finish(ctx, job, status)
    notify(ctx, job, f"job.{status.value}")
    return True


def _abandon_snapshot(ctx: JobContext, job: Job, status: JobStatus) -> None:
    """A failed or cancelled job's snapshot no longer holds its file versions (unless a
    ref holds it): their rows may go at the next commit or ref deletion."""
    try:
        snapshot_id = (ctx.jobs.get(job.job_id) or job).snapshot_id
        if snapshot_id is not None:
            ctx.snapshots.abandon(snapshot_id, status.value)
    except TransientError as exc:
        log.warning("job %s: its snapshot stays listed until the next try: %s", job.job_id, exc)


def _observe_finish(ctx: JobContext, job: Job, status: JobStatus) -> None:
    # An observer never fails the work: the job has ended whatever it does.
    if ctx.on_finish is None:
        return
    try:
        ended = ctx.jobs.get(job.job_id) or replace(job, status=status)
        ctx.on_finish(ended)
    except Exception:
        log.exception("job %s: the end-of-job observer failed", job.job_id)


def notify(ctx: JobContext, job: Job, event: str) -> None:
    """Enqueue the delivery of ``event`` to the job's callback URL, if it has one."""
    if not job.callback_url:
        return
    ctx.send(
        flow.WEBHOOK.task,
        [{"job_id": job.job_id, "event": event, "delivery_id": str(uuid.uuid4())}],
    )


def fail_job(ctx: JobContext, job_id: str, task: str, exc: Exception) -> None:
    """A job stage's ``task`` that failed for good (a dead letter) fails the job."""
    job = ctx.jobs.get(job_id)
    if job is not None:
        record_error(ctx, job_id, "", f"{task}: {exc}")
        finish(ctx, job, JobStatus.FAILED, f"{task} failed: {exc}")


def cancel(ctx: JobContext, job: Job) -> bool:
    """Stop new work for the job and keep the previous snapshot searchable."""
    ctx.board.cancel(job.job_id)
    cancelled = finish(ctx, job, JobStatus.CANCELLED, "cancelled by request")
    current = ctx.jobs.get(job.job_id)
    if cancelled and current is not None and current.snapshot_id is not None:
        ctx.snapshots.abandon(current.snapshot_id, "cancelled")
    return cancelled

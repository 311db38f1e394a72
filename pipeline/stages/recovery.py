"""The job sweeper: a job whose work was lost is sent again, or failed, never left running.

Every stage acknowledges its message late, so a task whose worker dies is delivered
again. One loss remains: kombu's Redis transport pops a message (BRPOP) before it
records it as unacknowledged, so a worker's main process killed in that instant loses
the message, and its job would wait for ever. The sweeper ends that wait:

* a candidate is a queued or running job whose record has not changed for ``idle_s``;
* it is stalled when the broker holds no message naming it (queued or unacknowledged,
  :class:`~pipeline.ports.InFlight`), it waits on no store (an open breaker's retry is
  a message in flight anyway) and it is not cancelled;
* a stalled job is sent on from where it stopped: its ingest again while the file list
  is not known yet or files remain unsettled (ingest sends only the unsettled files),
  else its graph stage (whose plan sends the graphs still waiting, or the commit).
  Every stage is idempotent, so a recovery that races a slow message
  costs work, never correctness;
* a job recovered ``max_recoveries`` times and stalled again fails, with the reason.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from pipeline import flow
from pipeline.jobs import RECOVERIES, Job, JobStatus
from pipeline.ports import InFlight
from pipeline.stages.indexing import (
    SETTLED,
    WAIT_GRACE_S,
    JobContext,
    finish,
    flush_progress,
    record_error,
)

log = logging.getLogger("quarry.jobs")


class Action(enum.StrEnum):
    INGEST = "ingest"  # the ingest sent again: it sends the files not settled yet
    GRAPH = "graph"  # every file settled, the graph stage or commit was lost: sent again
    FAIL = "fail"  # stalled again after max_recoveries: failed with the reason


@dataclass(frozen=True, slots=True)
class Recovery:
    job_id: str
    action: Action
    reason: str


def sweep(
    ctx: JobContext,
    in_flight: InFlight,
    *,
    idle_s: float,
    max_recoveries: int = 3,
    limit: int = 100,
) -> list[Recovery]:
    """Recover every stalled job (see the module doc); what was done, per job."""
    candidates = ctx.jobs.idle(idle_s, limit)
    if not candidates:
        return []
    held = in_flight.job_ids()  # read once, after the candidates: see RedisInFlight
    recoveries = []
    for job in candidates:
        if job.job_id.lower() in held or not _stalled(ctx, job):
            continue
        recovery = recover(ctx, job, idle_s=idle_s, max_recoveries=max_recoveries)
        log.warning("job %s stalled: %s (%s)", job.job_id, recovery.action, recovery.reason)
        recoveries.append(recovery)
    return recoveries


def _stalled(ctx: JobContext, job: Job) -> bool:
    if ctx.board.cancelled(job.job_id):
        return False
    now = ctx.clock()
    return not any(w.until + WAIT_GRACE_S > now for w in ctx.board.waits(job.job_id))


def recover(ctx: JobContext, job: Job, *, idle_s: float, max_recoveries: int) -> Recovery:
    """Send a stalled job on from where it stopped, or fail it (see the module doc)."""
    counters = ctx.board.counters(job.job_id)
    done_before = counters.get(RECOVERIES, 0)
    idle = f"no work in flight and no progress for {idle_s:g} s"
    if done_before >= max_recoveries:
        reason = f"stalled again after {done_before} recoveries: {idle}"
        record_error(ctx, job.job_id, "", f"sweeper: {reason}")
        finish(ctx, job, JobStatus.FAILED, reason)
        return Recovery(job.job_id, Action.FAIL, reason)
    todo, settled = counters.get("files.todo"), counters.get(SETTLED, 0)
    if job.status is JobStatus.RUNNING and todo is not None and settled >= todo:
        action, reason = Action.GRAPH, f"all {todo} files settled, the graph or commit was lost"
        ctx.send(flow.GRAPH.task, [{"job_id": job.job_id}])
    else:
        left = "its files are not listed yet" if todo is None else f"{todo - settled} files left"
        action, reason = Action.INGEST, f"{left}: sent again"
        ctx.send(flow.INGEST.task, [{"job_id": job.job_id}])
    ctx.board.set_counters(job.job_id, {RECOVERIES: done_before + 1})
    record_error(ctx, job.job_id, "", f"sweeper: {idle}; {reason}")
    flush_progress(ctx, job.job_id, force=True)  # touches the record: idle again from now
    return Recovery(job.job_id, action, f"{idle}; {reason}")

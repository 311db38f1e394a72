"""The shared job bookkeeping on fakes: the live status of a running job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.adapters.memory_job_store import InMemoryJobStore
from pipeline.adapters.memory_snapshot_store import InMemorySnapshotStore
from pipeline.adapters.redis_job_board import InMemoryJobBoard
from pipeline.indexing import WAIT_GRACE_S, JobContext, live_job, note_wait
from pipeline.jobs import (
    JobRequest,
    JobSource,
    JobStatus,
    SourceKind,
    Stage,
    StoreWait,
    job_status,
)
from pipeline.models import RepoRef


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _context(clock: Clock) -> JobContext:
    def send(task: str, kwargs: Sequence[Mapping[str, Any]]) -> None:
        raise AssertionError(f"nothing is sent here, got {task}")

    return JobContext(
        InMemoryJobStore(), InMemorySnapshotStore(), InMemoryJobBoard(), send, clock=clock
    )


def _running_job(ctx: JobContext) -> str:
    request = JobRequest(RepoRef("t1", "repo"), JobSource(SourceKind.PATH, "/src"), commit="c1")
    job, _ = ctx.jobs.create(request, job_id="00000000-0000-4000-8000-000000000001", commit="c1")
    assert ctx.jobs.start(job.job_id, Stage.INGEST, "c1")
    return job.job_id


def test_a_running_job_shows_the_stores_it_waits_on_until_the_wait_is_over() -> None:
    clock = Clock(1000.0)
    ctx = _context(clock)
    job_id = _running_job(ctx)
    note_wait(ctx, job_id, "graph", 12.0, "quarry.write.commit: circuit breaker open")
    ctx.board.add(job_id, {"files.total": 3})
    job = ctx.jobs.get(job_id)
    assert job is not None
    status = job_status(live_job(ctx, job), clock())
    assert status["status"] == "running"
    assert status["files"]["total"] == 3
    (wait,) = status["waiting_on"]
    assert wait["store"] == "graph"
    assert wait["reason"] == "quarry.write.commit: circuit breaker open"
    assert wait["until"] == "1970-01-01T00:16:52+00:00"
    clock.now = 1000.0 + 12.0 + WAIT_GRACE_S + 0.1
    assert job_status(live_job(ctx, job), clock())["waiting_on"] == []


def test_a_finished_job_waits_on_nothing() -> None:
    clock = Clock(50.0)
    ctx = _context(clock)
    job_id = _running_job(ctx)
    ctx.board.wait_on(job_id, StoreWait("postgres", 500.0, "breaker open"))
    ctx.jobs.finish(job_id, JobStatus.CANCELLED, "cancelled by the client")
    job = ctx.jobs.get(job_id)
    assert job is not None
    assert job_status(live_job(ctx, job), clock())["waiting_on"] == []

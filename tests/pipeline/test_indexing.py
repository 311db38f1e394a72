"""The shared job bookkeeping on fakes: the live status of a running job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from pipeline import flow
from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
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
from pipeline.stages.indexing import WAIT_GRACE_S, JobContext, live_job, note_wait, settle


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
    ctx.board.set_counters(job_id, {"files.total": 3})
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


def test_the_commit_is_sent_again_by_a_redelivered_task_until_it_was_sent() -> None:
    sent: list[str] = []
    fail = [True]

    def send(task: str, kwargs: Sequence[Mapping[str, Any]]) -> None:
        if fail[0]:
            raise KeyboardInterrupt("killed before the send")
        sent.extend(k["job_id"] for k in kwargs)

    ctx = JobContext(
        InMemoryJobStore(), InMemorySnapshotStore(), InMemoryJobBoard(), send, clock=Clock(1.0)
    )
    job_id = _running_job(ctx)
    ctx.board.set_counters(job_id, {"files.todo": 2})
    settle(ctx, job_id, "files.written", ["a.py"])
    assert sent == []
    with pytest.raises(KeyboardInterrupt):
        settle(ctx, job_id, "files.written", ["b.py"])  # the last file; killed mid-way
    fail[0] = False
    settle(ctx, job_id, "files.written", ["b.py"])  # the same task, delivered again
    assert sent == [job_id]
    settle(ctx, job_id, "files.written", ["b.py"])  # once sent, not again
    assert sent == [job_id]
    assert ctx.board.counters(job_id)["files.written"] == 2


def test_the_task_that_settles_the_last_file_runs_the_graph_plan_itself() -> None:
    """No GRAPH message: the settling task plans, sending the first graph batch (or the
    commit when no graph waits); the job is in its graph stage."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def send(task: str, kwargs: Sequence[Mapping[str, Any]]) -> None:
        sent.extend((task, dict(k)) for k in kwargs)

    ctx = JobContext(
        InMemoryJobStore(), InMemorySnapshotStore(), InMemoryJobBoard(), send, clock=Clock(1.0)
    )
    job_id = _running_job(ctx)
    ctx.snapshots.stage_graphs(job_id, {"a.py": b"graph"})
    ctx.board.set_counters(job_id, {"files.todo": 2})
    settle(ctx, job_id, "files.written", ["a.py"])
    assert sent == []
    settle(ctx, job_id, "files.written", ["b.py"])
    assert sent == [(flow.GRAPH_FILES.task, {"job_id": job_id})]
    job = ctx.jobs.get(job_id)
    assert job is not None and job.stage is Stage.GRAPH

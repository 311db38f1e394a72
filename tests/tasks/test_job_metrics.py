"""A job that ends is counted once, with its duration, files and chunks, however many
times its finishing task runs; an observer that fails never fails the job's end."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY

from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.jobs import Job, JobRequest, JobSource, JobStatus, SourceKind, Stage
from pipeline.models import RepoRef
from pipeline.stages.indexing import JobContext, OnFinish, cancel, finish
from tasks import recording


def _value(name: str, status: str) -> float:
    return REGISTRY.get_sample_value(name, {"status": status}) or 0.0


def _snapshot(status: str) -> dict[str, float]:
    return {
        name: _value(name, status)
        for name in (
            "quarry_jobs_total",
            "quarry_job_seconds_count",
            "quarry_job_files_count",
            "quarry_job_files_sum",
            "quarry_job_chunks_sum",
        )
    }


def _context(on_finish: OnFinish | None) -> JobContext:
    def send(task: str, kwargs: Sequence[Mapping[str, Any]]) -> None:
        pass  # webhook events: none of these jobs has a callback

    return JobContext(
        InMemoryJobStore(), InMemorySnapshotStore(), InMemoryJobBoard(), send, on_finish=on_finish
    )


def _running_job(ctx: JobContext, job_id: str) -> Job:
    request = JobRequest(RepoRef("t1", "repo"), JobSource(SourceKind.PATH, "/src"), commit="c1")
    job, _ = ctx.jobs.create(request, job_id=job_id, commit="c1")
    assert ctx.jobs.start(job.job_id, Stage.INGEST, "c1")
    ctx.board.set_counters(job.job_id, {"files.total": 3, "chunks.total": 7})
    return job


def test_a_finished_job_is_counted_once_even_when_its_commit_runs_twice() -> None:
    ctx = _context(recording.record_job)
    job = _running_job(ctx, "00000000-0000-4000-8000-000000000101")
    before = _snapshot("done")
    assert finish(ctx, job, JobStatus.DONE) is True
    assert finish(ctx, job, JobStatus.DONE) is False  # the commit delivered again
    assert finish(ctx, job, JobStatus.FAILED, "late failure") is False
    after = _snapshot("done")
    assert after["quarry_jobs_total"] == before["quarry_jobs_total"] + 1
    assert after["quarry_job_seconds_count"] == before["quarry_job_seconds_count"] + 1
    assert after["quarry_job_files_count"] == before["quarry_job_files_count"] + 1
    assert after["quarry_job_files_sum"] == before["quarry_job_files_sum"] + 3
    assert after["quarry_job_chunks_sum"] == before["quarry_job_chunks_sum"] + 7


def test_a_cancelled_job_is_counted_as_cancelled_with_its_time_since_creation() -> None:
    ended: list[Job] = []
    ctx = _context(ended.append)
    job = _running_job(ctx, "00000000-0000-4000-8000-000000000102")
    assert cancel(ctx, job) is True
    assert cancel(ctx, job) is False
    assert len(ended) == 1
    final = ended[0]
    assert final.status is JobStatus.CANCELLED
    assert final.finished_at is not None and final.finished_at >= final.created_at > 0
    assert final.counters["files.total"] == 3  # flushed before the end, seen by the observer

    before = _snapshot("cancelled")
    recording.record_job(final)
    after = _snapshot("cancelled")
    assert after["quarry_jobs_total"] == before["quarry_jobs_total"] + 1


def test_an_observer_that_raises_does_not_stop_the_job_from_ending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(job: Job) -> None:
        raise RuntimeError("metrics down")

    ctx = _context(broken)
    job = _running_job(ctx, "00000000-0000-4000-8000-000000000103")
    assert finish(ctx, job, JobStatus.FAILED, "a file failed") is True
    ended = ctx.jobs.get(job.job_id)
    assert ended is not None and ended.status is JobStatus.FAILED
    assert any("end-of-job observer failed" in r.getMessage() for r in caplog.records)

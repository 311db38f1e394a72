"""Tenant quotas, the pure rules (pipeline.quotas) and the ingest's charge on fakes: a
job that would pass its tenant's files per day fails naming the quota before its
snapshot begins, and nothing of it is sent on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.adapters.fakes.blob_store import InMemoryBlobStore
from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.fakes.quota_store import InMemoryQuotaStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.adapters.fakes.source_fetcher import InMemorySourceFetcher
from pipeline.errors import InvalidInputError, QuotaExceededError
from pipeline.jobs import Job, JobRequest, JobSource, JobStatus, SourceKind
from pipeline.models import RepoRef
from pipeline.quotas import (
    Quota,
    QuotaLimits,
    QuotaStatus,
    QuotaUsage,
    check_admission,
    check_limit_values,
    seconds_to_midnight_utc,
)
from pipeline.stages.indexing import JobContext
from pipeline.stages.ingest import IngestOptions, IngestOutcome, ingest
from pipeline.statements import quota_sql

LIMITS = QuotaLimits(concurrent_jobs=2, files_per_day=100, stored_chunks=1000)


def status(jobs: int, files: int, chunks: int) -> QuotaStatus:
    return QuotaStatus("t1", LIMITS, QuotaUsage(jobs, files, chunks))


def test_the_headers_name_each_quota_and_what_is_left() -> None:
    assert status(1, 30, 2000).headers() == {
        "X-Quota-Remaining-Concurrent-Jobs": "1",
        "X-Quota-Remaining-Files-Per-Day": "70",
        "X-Quota-Remaining-Stored-Chunks": "0",  # past the limit: none left, never negative
    }


@pytest.mark.parametrize(
    ("usage", "refused", "retry"),
    [
        ((1, 0, 0), None, None),
        ((2, 99, 999), None, None),  # the new job is the second of two: allowed
        ((3, 0, 0), Quota.CONCURRENT_JOBS, 30.0),
        ((1, 100, 0), Quota.FILES_PER_DAY, "midnight"),
        ((1, 0, 1000), Quota.STORED_CHUNKS, None),
    ],
)
def test_admission_refuses_the_quota_a_new_job_passes(
    usage: tuple[int, int, int], refused: Quota | None, retry: object
) -> None:
    if refused is None:
        check_admission(status(*usage))
        return
    with pytest.raises(QuotaExceededError) as exc:
        check_admission(status(*usage))
    assert exc.value.quota == refused.value
    assert refused.value in str(exc.value) and str(LIMITS.of(refused)) in str(exc.value)
    if retry == "midnight":
        assert exc.value.retry_after_s is not None and exc.value.retry_after_s >= 1
    else:
        assert exc.value.retry_after_s == retry


def test_before_a_job_is_written_a_tenant_at_its_limit_is_refused() -> None:
    """The archive route's check before it reads an upload (no job written yet)."""
    check_admission(status(1, 0, 0), created=0)
    with pytest.raises(QuotaExceededError, match="concurrent_jobs"):
        check_admission(status(2, 0, 0), created=0)


def test_files_per_day_starts_again_at_midnight_utc() -> None:
    at = datetime(2026, 12, 7, 23, 59, 30, tzinfo=UTC)
    assert seconds_to_midnight_utc(at) == 30.0


@pytest.mark.parametrize("changes", [{"files_per_day": -1}, {"queue": 1}, {"stored_chunks": True}])
def test_a_bad_limit_names_it(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match=next(iter(changes))):
        check_limit_values(changes)


def test_the_limits_statement_names_only_known_columns() -> None:
    query = quota_sql.upsert("t1", {"files_per_day": 5, "concurrent_jobs": None})
    assert query.params["set_files_per_day"] and query.params["set_concurrent_jobs"]
    assert not query.params["set_stored_chunks"]
    with pytest.raises(ValueError, match="drop"):
        quota_sql.upsert("t1", {"drop table tenants; --": 1})


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.snapshots = InMemorySnapshotStore()
        self.ctx = JobContext(InMemoryJobStore(), self.snapshots, InMemoryJobBoard(), self._send)
        self.tree = tmp_path / "src"
        self.tree.mkdir()
        for n in range(12):
            (self.tree / f"m{n}.py").write_text(f"def f{n}():\n    return {n}\n")

    def _send(self, task: str, kwargs: Sequence[Mapping[str, Any]]) -> None:
        self.sent.extend((task, dict(k)) for k in kwargs)

    def run(self, job_id: str, quotas: InMemoryQuotaStore) -> IngestOutcome:
        def charge(job: Job, files: int) -> None:
            quotas.charge_files(job.repo.tenant, job.job_id, files, LIMITS)

        return ingest(
            self.ctx,
            job_id,
            fetcher=InMemorySourceFetcher({"/src": self.tree}),
            blobs=InMemoryBlobStore(),
            workdir=self.tree.parent / "w",
            options=IngestOptions(max_file_bytes=1_000_000),
            charge=charge,
        )

    def job(self, n: int) -> str:
        request = JobRequest(RepoRef("t1", f"r{n}"), JobSource(SourceKind.PATH, "/src"))
        job_id = f"00000000-0000-4000-8000-{n:012d}"
        return self.ctx.jobs.create(request, job_id=job_id, commit=None)[0].job_id


def test_a_job_past_its_tenants_files_per_day_fails_naming_it_before_anything_starts(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path)
    quotas = InMemoryQuotaStore()
    quotas.set_limits("t1", {"files_per_day": 20})
    assert h.run(h.job(1), quotas) is IngestOutcome.ENQUEUED  # 12 files: 8 left today
    h.sent.clear()
    second = h.job(2)
    assert h.run(second, quotas) is IngestOutcome.FAILED  # 12 more would pass 20
    job = h.ctx.jobs.get(second)
    assert job is not None and job.status is JobStatus.FAILED
    assert "files_per_day" in job.message and "limit 20" in job.message
    assert job.snapshot_id is None  # no snapshot begun: nothing half-indexed
    assert h.sent == []
    assert quotas.status("t1", LIMITS).usage.files_per_day == 12

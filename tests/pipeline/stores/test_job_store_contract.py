"""One contract for the job store: the fake and PostgreSQL.

The PostgreSQL cases run on a fresh database of the session's real server, migrated with
the shipped migrations; every test works in a tenant of its own.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.postgres.job_store import PgJobStore
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.snapshot_store import PgSnapshotStore
from pipeline.errors import ConfigError, InvalidInputError, StoreUnavailableError
from pipeline.jobs import (
    MAX_ERRORS,
    Job,
    JobError,
    JobRequest,
    JobSource,
    JobStatus,
    SourceKind,
    WebhookDelivery,
)
from pipeline.models import RepoRef
from pipeline.ports import JobStore
from tests.databases import fresh_pg_database

THREADS = 8


@pytest.fixture(scope="module")
def pg_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL with the shipped migrations."""
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_pg_database(endpoints, "jobs") as dsn:
        run(PgMigrationTarget(dsn))
        yield dsn


@pytest.fixture(params=["memory", "postgres"])
def jobs(request: pytest.FixtureRequest) -> Iterator[JobStore]:
    if request.param == "memory":
        yield InMemoryJobStore()
        return
    real = PgJobStore(request.getfixturevalue("pg_dsn"), pool_size=THREADS)
    try:
        yield real
    finally:
        real.close()


@pytest.fixture
def snapshot_of(request: pytest.FixtureRequest, jobs: JobStore) -> Callable[[RepoRef], int]:
    """A snapshot id that the store accepts: any for the fake, a real row for PostgreSQL."""
    if isinstance(jobs, InMemoryJobStore):
        return lambda repo: 7
    store = PgSnapshotStore(request.getfixturevalue("pg_dsn"), pool_size=1)
    request.addfinalizer(store.close)
    return lambda repo: store.begin(repo, "c0ffee", [])


@pytest.fixture
def repo() -> RepoRef:
    return RepoRef(f"t{uuid.uuid4().hex[:8]}", "app")


def new_id() -> str:
    return str(uuid.uuid4())


def ask(
    repo: RepoRef,
    *,
    commit: str | None = None,
    key: str | None = None,
    callback: str | None = None,
) -> JobRequest:
    source = JobSource(SourceKind.GIT, "https://example.com/app.git", "main")
    return JobRequest(repo, source, commit, callback, key)


def make(jobs: JobStore, request: JobRequest, commit: str | None = None) -> Job:
    job, created = jobs.create(request, job_id=new_id(), commit=commit)
    assert created
    return job


def error(n: int) -> JobError:
    return JobError(f"src/f{n}.py", f"failure {n}", 1_700_000_000.0 + n)


def delivery(n: int) -> WebhookDelivery:
    return WebhookDelivery("job.done", "https://hooks.example/x", n, "retrying", 503, "5xx",
                           1_700_000_000.5 + n, 0.25)  # fmt: skip


# --- create and read -------------------------------------------------------------


def test_create_records_a_queued_job_with_its_request(jobs: JobStore, repo: RepoRef) -> None:
    job_id = new_id()
    before = time.time()
    request = ask(repo, key="k1", callback="https://hooks.example/done")
    job, created = jobs.create(request, job_id=job_id, commit="abc123")
    assert created
    assert (job.job_id, job.repo, job.commit) == (job_id, repo, "abc123")
    assert (job.status, job.stage, job.message) == (JobStatus.QUEUED, "queued", "")
    assert job.source == JobSource(SourceKind.GIT, "https://example.com/app.git", "main")
    assert (job.callback_url, job.idempotency_key) == ("https://hooks.example/done", "k1")
    assert (job.counters, job.errors, job.webhooks) == ({}, (), ())
    assert before - 1 <= job.created_at <= time.time() + 1
    assert (job.started_at, job.finished_at, job.snapshot_id) == (None, None, None)
    assert jobs.get(job_id) == job
    assert jobs.get(job_id, repo.tenant) == job


def test_job_ids_are_canonical_uuids_and_a_malformed_one_is_refused(
    jobs: JobStore, repo: RepoRef
) -> None:
    upper = new_id().upper()
    job, _ = jobs.create(ask(repo), job_id=upper, commit=None)
    assert job.job_id == upper.lower()
    assert jobs.get(upper) == job
    with pytest.raises(InvalidInputError, match="job id 'job-1' is not a UUID"):
        jobs.create(ask(repo), job_id="job-1", commit=None)


def test_an_unknown_malformed_or_other_tenants_job_is_none(jobs: JobStore, repo: RepoRef) -> None:
    job = make(jobs, ask(repo))
    assert jobs.get(new_id()) is None
    assert jobs.get("not-a-uuid") is None
    assert jobs.get("") is None
    assert jobs.get(job.job_id, "other-tenant") is None
    assert jobs.get(job.job_id, repo.tenant) == job


def test_a_replayed_create_of_the_same_job_id_returns_it_and_another_repo_is_refused(
    jobs: JobStore, repo: RepoRef
) -> None:
    job_id = new_id()
    first, _ = jobs.create(ask(repo), job_id=job_id, commit=None)
    assert jobs.create(ask(repo), job_id=job_id, commit=None) == (first, False)
    with pytest.raises(InvalidInputError, match=job_id):
        jobs.create(ask(RepoRef(repo.tenant, "other")), job_id=job_id, commit=None)


def test_the_same_idempotency_key_returns_the_first_job_within_its_tenant(
    jobs: JobStore, repo: RepoRef
) -> None:
    first = make(jobs, ask(repo, key="deploy-42"), commit="aaa")
    again, created = jobs.create(ask(repo, key="deploy-42"), job_id=new_id(), commit="bbb")
    assert (again, created) == (first, False)
    jobs.finish(first.job_id, JobStatus.FAILED, "boom")
    failed, created = jobs.create(ask(repo, key="deploy-42"), job_id=new_id(), commit="aaa")
    assert (failed.job_id, created) == (first.job_id, False)
    other = RepoRef(f"{repo.tenant}-b", repo.name)
    assert make(jobs, ask(other, key="deploy-42"), commit="aaa").job_id != first.job_id


def test_the_same_commit_returns_the_live_job_but_not_a_failed_one(
    jobs: JobStore, repo: RepoRef
) -> None:
    first = make(jobs, ask(repo), commit="c1")
    assert jobs.create(ask(repo), job_id=new_id(), commit="c1") == (first, False)
    assert jobs.create(ask(repo, commit="c1"), job_id=new_id(), commit=None)[0] == first
    assert jobs.finish(first.job_id, JobStatus.DONE)
    # Done, but no ref holds c1 (nothing published it here): a new job may publish it.
    again = make(jobs, ask(repo), commit="c1")
    assert again.job_id != first.job_id
    other_repo = make(jobs, ask(RepoRef(repo.tenant, "lib")), commit="c1")
    assert other_repo.job_id != first.job_id

    second = make(jobs, ask(repo), commit="c2")
    assert jobs.finish(second.job_id, JobStatus.FAILED, "clone failed")
    retried = make(jobs, ask(repo), commit="c2")
    assert retried.job_id != second.job_id
    assert jobs.finish(retried.job_id, JobStatus.CANCELLED)
    assert make(jobs, ask(repo), commit="c2").job_id not in {second.job_id, retried.job_id}


def test_a_job_publishes_to_its_ref_and_one_commit_is_a_job_per_ref(
    jobs: JobStore, repo: RepoRef
) -> None:
    first = make(jobs, dataclasses.replace(ask(repo), ref_name="release"), commit="c1")
    # The first job fixes the repository's default ref: a job naming none publishes there.
    assert first.ref_name == "release"
    default = make(jobs, ask(repo), commit="c2")
    assert default.ref_name == "release"
    assert jobs.create(ask(repo), job_id=new_id(), commit="c1") == (first, False)
    branch = make(jobs, dataclasses.replace(ask(repo), ref_name="feature/x"), commit="c1")
    assert branch.job_id != first.job_id and branch.ref_name == "feature/x"
    assert first.seq < default.seq < branch.seq  # creation order
    explicit = dataclasses.replace(ask(RepoRef(repo.tenant, "lib")), default_ref="trunk")
    assert make(jobs, explicit, commit="c1").ref_name == "trunk"


def test_jobs_without_a_commit_are_never_merged(jobs: JobStore, repo: RepoRef) -> None:
    a, b = make(jobs, ask(repo)), make(jobs, ask(repo))
    assert a.job_id != b.job_id
    assert a.commit == b.commit == ""


def test_a_resolved_commit_is_recorded_even_when_another_job_holds_it(
    jobs: JobStore, repo: RepoRef
) -> None:
    done = make(jobs, ask(repo), commit="c1")
    jobs.finish(done.job_id, JobStatus.DONE)
    live = make(jobs, ask(repo), commit="c9")
    late = make(jobs, ask(repo))
    other = make(jobs, ask(repo))
    assert jobs.start(late.job_id, "ingest", commit="c1")
    assert jobs.start(other.job_id, "ingest", commit="c9")
    assert (jobs.get(late.job_id) or late).commit == "c1"
    assert jobs.start(live.job_id, "ingest", commit="other")  # a known commit is kept
    assert (jobs.get(live.job_id) or live).commit == "c9"
    assert (jobs.get(other.job_id) or other).commit == "c9"
    # A create of the commit answers with a job that is not failed or cancelled.
    assert jobs.create(ask(repo), job_id=new_id(), commit="c9")[0].job_id in {
        live.job_id,
        other.job_id,
    }


def test_discard_deletes_only_a_job_that_never_started(jobs: JobStore, repo: RepoRef) -> None:
    refused = make(jobs, ask(repo, key="retry-me"), commit="c1")
    jobs.discard(refused.job_id)
    assert jobs.get(refused.job_id) is None
    assert jobs.list(repo.tenant) == []
    again, created = jobs.create(ask(repo, key="retry-me"), job_id=new_id(), commit="c1")
    assert created and again.job_id != refused.job_id
    jobs.start(again.job_id, "ingest")
    jobs.discard(again.job_id)
    finished = make(jobs, ask(repo))
    jobs.finish(finished.job_id, JobStatus.CANCELLED)
    jobs.discard(finished.job_id)
    assert {j.job_id for j in jobs.list(repo.tenant)} == {again.job_id, finished.job_id}
    jobs.discard(new_id())
    jobs.discard("not-a-uuid")


def test_list_is_newest_first_scoped_by_tenant_and_repository(
    jobs: JobStore, repo: RepoRef
) -> None:
    made = [make(jobs, ask(repo)) for _ in range(3)]
    lib = make(jobs, ask(RepoRef(repo.tenant, "lib")))
    make(jobs, ask(RepoRef(f"{repo.tenant}-b", repo.name)))
    newest_first = [lib.job_id] + [j.job_id for j in reversed(made)]
    assert [j.job_id for j in jobs.list(repo.tenant)] == newest_first
    assert [j.job_id for j in jobs.list(repo.tenant, "app")] == newest_first[1:]
    assert [j.job_id for j in jobs.list(repo.tenant, limit=2)] == newest_first[:2]
    assert jobs.list(repo.tenant, "missing") == []
    assert jobs.list(repo.tenant, limit=0) == []
    assert jobs.list("nobody") == []


def test_list_filters_by_status_and_pages_with_an_offset(jobs: JobStore, repo: RepoRef) -> None:
    made = [make(jobs, ask(repo)) for _ in range(5)]
    jobs.start(made[1].job_id, "ingest")
    jobs.finish(made[2].job_id, JobStatus.DONE)
    jobs.finish(made[3].job_id, JobStatus.FAILED, "boom")
    newest = [j.job_id for j in reversed(made)]  # 4 queued, 3 failed, 2 done, 1 running, 0 queued

    def ids(
        *statuses: JobStatus, limit: int = 50, offset: int = 0, name: str | None = None
    ) -> list[str]:
        listed = jobs.list(repo.tenant, name, limit, statuses=statuses, offset=offset)
        return [j.job_id for j in listed]

    assert ids(JobStatus.QUEUED) == [newest[0], newest[4]]
    assert ids(JobStatus.QUEUED, JobStatus.RUNNING) == [newest[0], newest[3], newest[4]]
    assert ids(JobStatus.DONE, name="app") == [newest[2]]
    assert ids(JobStatus.DONE, name="lib") == []
    assert ids(JobStatus.CANCELLED) == []
    assert ids() == newest
    # pages of two: together the whole list, in order, each job once
    assert ids(limit=2) + ids(limit=2, offset=2) + ids(limit=2, offset=4) == newest
    assert ids(limit=2, offset=4) == newest[4:]
    assert ids(limit=2, offset=5) == []
    assert ids(JobStatus.QUEUED, JobStatus.FAILED, limit=1, offset=1) == [newest[1]]
    assert ids(limit=2, offset=-3) == newest[:2]  # a negative offset is none


# --- lifecycle ----------------------------------------------------------------------


def test_start_runs_a_queued_job_once_and_refuses_a_terminal_one(
    jobs: JobStore, repo: RepoRef
) -> None:
    job = make(jobs, ask(repo))
    assert jobs.start(job.job_id, "ingest", commit="c1")
    started = jobs.get(job.job_id)
    assert started is not None
    assert (started.status, started.stage, started.commit) == (JobStatus.RUNNING, "ingest", "c1")
    assert started.started_at is not None and started.started_at >= job.created_at
    time.sleep(0.01)
    assert jobs.start(job.job_id, "chunk", commit="c2")  # a redelivered start
    again = jobs.get(job.job_id)
    assert again is not None
    assert (again.stage, again.commit, again.started_at) == ("chunk", "c1", started.started_at)
    assert jobs.finish(job.job_id, JobStatus.CANCELLED)
    assert not jobs.start(job.job_id, "ingest")
    assert (jobs.get(job.job_id) or job).status is JobStatus.CANCELLED
    assert not jobs.start(new_id(), "ingest")
    assert not jobs.start("nope", "ingest")


def test_set_stage_is_a_no_op_on_a_terminal_job(jobs: JobStore, repo: RepoRef) -> None:
    job = make(jobs, ask(repo))
    jobs.set_stage(job.job_id, "embed")
    assert (jobs.get(job.job_id) or job).stage == "embed"
    jobs.finish(job.job_id, JobStatus.FAILED, "out of disk")
    jobs.set_stage(job.job_id, "write")
    failed = jobs.get(job.job_id)
    assert failed is not None
    assert (failed.stage, failed.status, failed.message) == ("embed", JobStatus.FAILED,
                                                            "out of disk")  # fmt: skip
    jobs.set_stage(new_id(), "write")  # unknown: nothing happens


def test_progress_overwrites_counters_and_keeps_the_newest_errors(
    jobs: JobStore, repo: RepoRef
) -> None:
    job = make(jobs, ask(repo))
    jobs.save_progress(job.job_id, {"files.total": 10, "files.written": 2}, [error(0)])
    jobs.save_progress(job.job_id, {"files.total": 10, "files.skipped": 3})
    saved = jobs.get(job.job_id)
    assert saved is not None
    assert saved.counters == {"files.total": 10, "files.skipped": 3}
    assert saved.errors == (error(0),)
    jobs.save_progress(job.job_id, {}, [error(n) for n in range(1, 16)])
    jobs.save_progress(job.job_id, {}, [error(n) for n in range(16, 31)])
    capped = jobs.get(job.job_id)
    assert capped is not None
    assert capped.errors == tuple(error(n) for n in range(31 - MAX_ERRORS, 31))
    assert capped.counters == {}
    jobs.finish(job.job_id, JobStatus.DONE)
    jobs.save_progress(job.job_id, {"files.total": 10}, [error(99)])  # the final flush
    final = jobs.get(job.job_id)
    assert final is not None
    assert final.counters == {"files.total": 10}
    assert final.errors[-1] == error(99)


def test_idle_lists_live_jobs_untouched_for_long_enough_oldest_first(
    jobs: JobStore, repo: RepoRef
) -> None:
    quiet, busy, ended = (make(jobs, ask(repo, commit=c)) for c in ("a1", "b2", "c3"))
    jobs.start(quiet.job_id, "chunk")
    jobs.finish(ended.job_id, JobStatus.DONE)
    time.sleep(0.6)
    jobs.save_progress(busy.job_id, {"files.total": 1})

    def mine(idle_s: float) -> list[str]:
        return [j.job_id for j in jobs.idle(idle_s, limit=10_000) if j.repo == repo]

    assert mine(0.4) == [quiet.job_id]
    assert mine(0.0) == [quiet.job_id, busy.job_id]
    assert mine(3600.0) == []
    (found,) = [j for j in jobs.idle(0.4, limit=10_000) if j.repo == repo]
    assert (found.status, found.stage) == (JobStatus.RUNNING, "chunk")
    jobs.finish(quiet.job_id, JobStatus.FAILED, "stalled")
    assert mine(0.0) == [busy.job_id]


def test_finish_is_won_by_the_first_caller(jobs: JobStore, repo: RepoRef) -> None:
    job = make(jobs, ask(repo))
    jobs.start(job.job_id, "commit")
    assert jobs.finish(job.job_id, JobStatus.DONE, "")
    assert not jobs.finish(job.job_id, JobStatus.FAILED, "too late")
    done = jobs.get(job.job_id)
    assert done is not None
    assert (done.status, done.stage, done.message) == (JobStatus.DONE, "done", "")
    assert done.finished_at is not None and done.finished_at >= (done.started_at or 0)
    assert not jobs.finish(new_id(), JobStatus.DONE)
    assert not jobs.finish("bad id", JobStatus.DONE)


def test_concurrent_finishers_have_exactly_one_winner(jobs: JobStore, repo: RepoRef) -> None:
    job = make(jobs, ask(repo))
    barrier = threading.Barrier(THREADS)
    outcomes = [JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED] * 3

    def finish(n: int) -> bool:
        barrier.wait()
        return jobs.finish(job.job_id, outcomes[n], f"caller {n}")

    with ThreadPoolExecutor(THREADS) as pool:
        won = list(pool.map(finish, range(THREADS)))
    assert won.count(True) == 1
    final = jobs.get(job.job_id)
    assert final is not None
    winner = won.index(True)
    assert (final.status, final.message) == (outcomes[winner], f"caller {winner}")


def test_finish_refuses_a_status_that_is_not_terminal(jobs: JobStore, repo: RepoRef) -> None:
    job = make(jobs, ask(repo))
    with pytest.raises(InvalidInputError, match="'running'"):
        jobs.finish(job.job_id, JobStatus.RUNNING)
    assert (jobs.get(job.job_id) or job).status is JobStatus.QUEUED


def test_webhook_deliveries_are_appended_and_the_newest_50_kept(
    jobs: JobStore, repo: RepoRef
) -> None:
    job = make(jobs, ask(repo))
    jobs.add_webhook(job.job_id, delivery(1))
    assert (jobs.get(job.job_id) or job).webhooks == (delivery(1),)
    for n in range(2, 61):
        jobs.add_webhook(job.job_id, delivery(n))
    kept = (jobs.get(job.job_id) or job).webhooks
    assert kept == tuple(delivery(n) for n in range(11, 61))
    refused = WebhookDelivery("job.done", "https://h/x", 1, "refused", None, "", 1.0, 0.0)
    jobs.add_webhook(job.job_id, refused)
    assert (jobs.get(job.job_id) or job).webhooks[-1] == refused


def test_set_snapshot_records_the_jobs_snapshot(
    jobs: JobStore, repo: RepoRef, snapshot_of: Callable[[RepoRef], int]
) -> None:
    job = make(jobs, ask(repo), commit="c0ffee")
    snapshot_id = snapshot_of(repo)
    jobs.set_snapshot(job.job_id, snapshot_id)
    assert (jobs.get(job.job_id) or job).snapshot_id == snapshot_id


# --- races ------------------------------------------------------------------------------


def _race(jobs: JobStore, request: JobRequest, commit: str | None) -> list[tuple[Job, bool]]:
    barrier = threading.Barrier(THREADS)

    def create(_: int) -> tuple[Job, bool]:
        barrier.wait()
        return jobs.create(request, job_id=new_id(), commit=commit)

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(create, range(THREADS)))


@pytest.mark.timeout(60)
def test_concurrent_creates_of_one_commit_make_one_job(jobs: JobStore, repo: RepoRef) -> None:
    for attempt in range(5):
        results = _race(jobs, ask(repo), f"race-{attempt}")
        assert [created for _, created in results].count(True) == 1
        assert len({job.job_id for job, _ in results}) == 1
    assert len(jobs.list(repo.tenant, limit=100)) == 5


@pytest.mark.timeout(60)
def test_concurrent_creates_with_one_idempotency_key_make_one_job(
    jobs: JobStore, repo: RepoRef
) -> None:
    for attempt in range(5):
        results = _race(jobs, ask(repo, key=f"key-{attempt}"), None)
        assert [created for _, created in results].count(True) == 1
        assert len({job.job_id for job, _ in results}) == 1


@pytest.mark.timeout(60)
def test_concurrent_creates_in_a_new_tenant_all_succeed(jobs: JobStore) -> None:
    fresh = RepoRef(f"t{uuid.uuid4().hex[:8]}", "new")
    results = _race(jobs, ask(fresh), None)  # no commit: every create makes a job
    assert all(created for _, created in results)
    assert len(jobs.list(fresh.tenant, limit=100)) == THREADS


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"repo": RepoRef("Bad Tenant", "app")}, "tenant 'Bad Tenant'"),
        ({"source": JobSource(SourceKind.PATH, "/src/\x00x")}, "source location"),
        ({"source": JobSource(SourceKind.PATH, "")}, "source location is empty"),
        ({"callback_url": "https://h/\x00"}, "callback URL"),
        ({"idempotency_key": ""}, "idempotency key is empty"),
        ({"commit": "ab\x00cd"}, "commit"),
    ],
)
def test_bad_requests_are_refused_naming_the_input(
    jobs: JobStore, repo: RepoRef, change: dict[str, Any], named: str
) -> None:
    fields: dict[str, Any] = {"repo": repo, "source": JobSource(SourceKind.PATH, "/src")}
    fields.update(change)
    with pytest.raises(InvalidInputError, match=named):
        jobs.create(JobRequest(**fields), job_id=new_id(), commit=None)
    assert jobs.list(repo.tenant) == []


def test_bad_progress_is_refused_naming_it(jobs: JobStore, repo: RepoRef) -> None:
    job = make(jobs, ask(repo))
    with pytest.raises(InvalidInputError, match=r"counter 'files\.total'"):
        jobs.save_progress(job.job_id, {"files.total": "ten"})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match=r"error message of 'a\.py'"):
        jobs.save_progress(job.job_id, {}, [JobError("a.py", "nul \x00", 1.0)])
    with pytest.raises(InvalidInputError, match="stage"):
        jobs.set_stage(job.job_id, "")
    with pytest.raises(InvalidInputError, match="job message"):
        jobs.finish(job.job_id, JobStatus.FAILED, "\x00")
    assert (jobs.get(job.job_id) or job).status is JobStatus.QUEUED


# --- PostgreSQL only ------------------------------------------------------------------


def test_pg_a_second_live_job_for_a_commit_on_a_ref_is_refused_by_the_database(
    pg_dsn: str,
) -> None:
    store = PgJobStore(pg_dsn, pool_size=1)
    try:
        repo = RepoRef(f"t{uuid.uuid4().hex[:8]}", "app")
        job = make(store, ask(repo), commit="c1")
    finally:
        store.close()
    insert = (
        "INSERT INTO jobs (id, tenant_id, repository_id, commit_sha, dedupe_commit, ref_name)"
        " SELECT gen_random_uuid(), tenant_id, repository_id, 'c1', 'c1', %s FROM jobs"
        " WHERE id = %s"
    )
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(insert, ("feature/x", job.job_id))  # the same commit on another ref
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, ("main", job.job_id))


def test_pg_an_unknown_snapshot_is_refused_naming_it(pg_dsn: str) -> None:
    with PgJobStore(pg_dsn, pool_size=1) as store:
        job = make(store, ask(RepoRef(f"t{uuid.uuid4().hex[:8]}", "app")))
        with pytest.raises(InvalidInputError, match="snapshot 987654321 does not exist"):
            store.set_snapshot(job.job_id, 987654321)
        assert (store.get(job.job_id) or job).snapshot_id is None


def test_pg_an_unmigrated_database_is_a_config_error(endpoints: Endpoints) -> None:
    with (
        fresh_pg_database(endpoints, "bare") as dsn,
        pytest.raises(
            ConfigError, match=r"repositories\.deletion_id does not exist .*quarry migrate"
        ),
    ):
        PgJobStore(dsn)


def test_pg_an_unreachable_or_closed_store_is_unavailable(pg_dsn: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreUnavailableError, match="postgres unavailable"):
        PgJobStore(f"postgresql://postgres@127.0.0.1:{port}/x", timeout_s=1)
    store = PgJobStore(pg_dsn)
    store.close()
    with pytest.raises(StoreUnavailableError):
        store.get(new_id())

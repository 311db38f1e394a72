"""One contract for the repository deletion store: the fake (over InMemoryJobStore) and
PostgreSQL (over PgJobStore, on a fresh migrated database of the session's server).

Every test works in a tenant of its own; the repository is made by its first job, as in
the service.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
import pytest

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.fakes.deletion_store import InMemoryRepoDeletionStore
from pipeline.adapters.fakes.graph_store import InMemoryGraphStore
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.postgres.blob_store import PgBlobStore
from pipeline.adapters.postgres.deletion_store import PgRepoDeletionStore
from pipeline.adapters.postgres.job_store import PgJobStore
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.snapshot_store import PgSnapshotStore
from pipeline.deletions import STAGES, DeletionStatus
from pipeline.errors import ConflictError, NotFoundError
from pipeline.jobs import JobRequest, JobSource, JobStatus, SourceKind
from pipeline.models import FileVersion, RepoRef
from pipeline.ports import JobStore, RepoDeletionStore
from pipeline.sources.blobs import sha256_of
from pipeline.stages.deletion import begin_deletion, resume_deletions, run_deletion
from pipeline.statements import deletion_sql
from tests.databases import fresh_pg_database


@dataclass
class Backend:
    jobs: JobStore
    deletions: RepoDeletionStore


@pytest.fixture(scope="module")
def pg_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_pg_database(endpoints, "deletions") as dsn:
        run(PgMigrationTarget(dsn))
        yield dsn


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        jobs = InMemoryJobStore()
        yield Backend(jobs, InMemoryRepoDeletionStore(jobs))
        return
    dsn = request.getfixturevalue("pg_dsn")
    with PgJobStore(dsn, pool_size=2) as pg_jobs, PgRepoDeletionStore(dsn) as pg_deletions:
        yield Backend(pg_jobs, pg_deletions)


@pytest.fixture
def repo() -> RepoRef:
    return RepoRef(f"t{uuid.uuid4().hex[:8]}", "team/app")


def ask(repo: RepoRef, commit: str = "c1") -> JobRequest:
    return JobRequest(repo, JobSource(SourceKind.GIT, "https://example.com/a.git", "main"), commit)


def finished_job(backend: Backend, repo: RepoRef, commit: str = "c1") -> str:
    job, _ = backend.jobs.create(ask(repo, commit), job_id=str(uuid.uuid4()), commit=commit)
    assert backend.jobs.start(job.job_id, "ingest")
    assert backend.jobs.finish(job.job_id, JobStatus.DONE)
    return job.job_id


def test_an_unknown_repository_is_not_found(backend: Backend, repo: RepoRef) -> None:
    with pytest.raises(NotFoundError, match="team/app"):
        backend.deletions.begin(repo)


def test_a_repository_with_a_job_in_progress_is_refused_naming_the_job(
    backend: Backend, repo: RepoRef
) -> None:
    job, _ = backend.jobs.create(ask(repo), job_id=str(uuid.uuid4()), commit="c1")
    with pytest.raises(ConflictError, match=job.job_id):
        backend.deletions.begin(repo)
    backend.jobs.start(job.job_id, "ingest")
    with pytest.raises(ConflictError, match=job.job_id):
        backend.deletions.begin(repo)


def test_begin_queues_once_and_refuses_new_jobs_of_the_repository(
    backend: Backend, repo: RepoRef
) -> None:
    finished_job(backend, repo)
    deletion, created = backend.deletions.begin(repo)
    assert created and deletion.status is DeletionStatus.QUEUED and deletion.repo == repo
    again, created_again = backend.deletions.begin(repo)
    assert not created_again and again.deletion_id == deletion.deletion_id
    with pytest.raises(ConflictError, match=deletion.deletion_id):
        backend.jobs.create(ask(repo, "c2"), job_id=str(uuid.uuid4()), commit="c2")
    other = RepoRef(repo.tenant, "team/other")
    finished_job(backend, other)  # another repository of the tenant takes jobs


@pytest.mark.parametrize("round_", range(4))
def test_a_deletion_racing_new_jobs_either_refuses_them_all_or_is_refused(
    backend: Backend, round_: int
) -> None:
    repo = RepoRef(f"r{round_}{uuid.uuid4().hex[:8]}", "team/app")
    finished_job(backend, repo)
    threads = 6
    barrier = threading.Barrier(threads + 1)

    def create(n: int) -> str:
        barrier.wait()
        try:
            job, _ = backend.jobs.create(
                ask(repo, f"r{n}"), job_id=str(uuid.uuid4()), commit=f"r{n}"
            )
        except ConflictError:
            return "refused"
        return job.job_id

    def delete() -> str:
        barrier.wait()
        try:
            return backend.deletions.begin(repo)[0].deletion_id
        except ConflictError as exc:
            return f"refused: {exc}"

    with ThreadPoolExecutor(threads + 1) as pool:
        creates = [pool.submit(create, n) for n in range(threads)]
        deleting = pool.submit(delete)
        created = [f.result(timeout=30) for f in creates]
        deletion = deleting.result(timeout=30)
    made = [c for c in created if c != "refused"]
    if deletion.startswith("refused"):
        assert made and any(job_id in deletion for job_id in made), (deletion, created)
    else:
        assert made == [], f"jobs {made} were created for a repository being deleted"
        queued = backend.jobs.list(repo.tenant, repo.name, statuses=[JobStatus.QUEUED])
        assert queued == []


def test_a_repeated_request_returns_the_deletion_without_sending_it_again(
    backend: Backend, repo: RepoRef
) -> None:
    finished_job(backend, repo)
    sent: list[str] = []
    first, created = begin_deletion(backend.deletions, repo, sent.append)
    again, created_again = begin_deletion(backend.deletions, repo, sent.append)
    assert (created, created_again) == (True, False)
    assert again.deletion_id == first.deletion_id and sent == [first.deletion_id]


def test_a_deletion_is_read_by_its_tenant_only(backend: Backend, repo: RepoRef) -> None:
    finished_job(backend, repo)
    deletion, _ = backend.deletions.begin(repo)
    assert backend.deletions.get(deletion.deletion_id, repo.tenant) == deletion
    assert backend.deletions.get(deletion.deletion_id, "someone-else") is None
    assert backend.deletions.get(str(uuid.uuid4()), repo.tenant) is None
    assert backend.deletions.get("not-a-uuid", repo.tenant) is None


def test_run_removes_the_repository_counts_it_and_ends_done_once(
    backend: Backend, repo: RepoRef
) -> None:
    finished_job(backend, repo, "c1")
    finished_job(backend, repo, "c2")
    deletion, _ = backend.deletions.begin(repo)
    graph = InMemoryGraphStore()
    done = run_deletion(backend.deletions, graph, deletion.deletion_id, batch_rows=1)
    assert done is not None and done.status is DeletionStatus.DONE, done
    assert done.stage == "done" and done.finished_at is not None
    assert done.counters["jobs"] == 2 and done.counters["repository"] == 1
    assert backend.jobs.list(repo.tenant, repo.name) == []
    # Ended: a second delivery does nothing, and the name is free for a new repository.
    assert run_deletion(backend.deletions, graph, deletion.deletion_id, batch_rows=1) is None
    with pytest.raises(NotFoundError):
        backend.deletions.begin(repo)
    finished_job(backend, repo, "c3")


def test_a_deletion_stopped_mid_way_resumes_where_it_stopped(
    backend: Backend, repo: RepoRef
) -> None:
    finished_job(backend, repo)
    deletion, _ = backend.deletions.begin(repo)
    assert backend.deletions.start(deletion.deletion_id) is not None
    backend.deletions.set_stage(deletion.deletion_id, "jobs")  # a worker died here
    sent: list[str] = []  # the database is shared: other tests' deletions may be sent too
    assert deletion.deletion_id in resume_deletions(backend.deletions, sent.append, idle_s=0.0)
    assert deletion.deletion_id in sent
    done = run_deletion(
        backend.deletions, InMemoryGraphStore(), deletion.deletion_id, batch_rows=10
    )
    assert done is not None and done.status is DeletionStatus.DONE
    assert "graph_nodes" not in done.counters  # the stages before "jobs" were not run again
    assert deletion.deletion_id not in resume_deletions(backend.deletions, sent.append, idle_s=0)


def test_erase_refuses_the_graph_and_unknown_stages(backend: Backend, repo: RepoRef) -> None:
    finished_job(backend, repo)
    deletion, _ = backend.deletions.begin(repo)
    for stage in ("graph", "everything"):
        with pytest.raises(ValueError, match=stage):
            backend.deletions.erase(deletion.deletion_id, stage, 10)
    assert set(STAGES) >= {"chunks", "files", "blobs", "cache", "repository"}


def test_finish_with_an_error_fails_it_and_the_first_end_wins(
    backend: Backend, repo: RepoRef
) -> None:
    finished_job(backend, repo)
    deletion, _ = backend.deletions.begin(repo)
    backend.deletions.finish(deletion.deletion_id, error="graph refused")
    backend.deletions.finish(deletion.deletion_id)
    failed = backend.deletions.get(deletion.deletion_id)
    assert failed is not None and failed.status is DeletionStatus.FAILED
    assert failed.error == "graph refused"
    assert backend.deletions.start(deletion.deletion_id) is None


def test_a_failed_deletion_runs_again_on_a_new_request(backend: Backend, repo: RepoRef) -> None:
    finished_job(backend, repo)
    sent: list[str] = []
    deletion, _ = begin_deletion(backend.deletions, repo, sent.append)
    backend.deletions.finish(deletion.deletion_id, error="graph refused")
    # The repository stays marked (hidden, refusing jobs) until a new DELETE runs the
    # deletion again: never stuck for good.
    again, created = begin_deletion(backend.deletions, repo, sent.append)
    assert created and again.deletion_id == deletion.deletion_id
    assert again.status is DeletionStatus.QUEUED and again.error is None
    assert sent == [deletion.deletion_id, deletion.deletion_id]
    done = run_deletion(backend.deletions, InMemoryGraphStore(), deletion.deletion_id, batch_rows=5)
    assert done is not None and done.status is DeletionStatus.DONE


def test_a_stalled_deletion_is_sent_again_once_per_idle_period(
    backend: Backend, repo: RepoRef
) -> None:
    finished_job(backend, repo)
    deletion, _ = backend.deletions.begin(repo)
    sent: list[str] = []
    assert deletion.deletion_id in resume_deletions(backend.deletions, sent.append, idle_s=0.0)
    # Its message may wait behind a long queue: the next sweeps do not send it again
    # before another idle period has passed.
    for _ in range(3):
        again = resume_deletions(backend.deletions, sent.append, idle_s=30.0)
        assert deletion.deletion_id not in again
    assert sent.count(deletion.deletion_id) == 1


# --- PostgreSQL only: the shared content -------------------------------------------


def test_a_blob_another_snapshot_is_taking_meanwhile_is_kept(pg_dsn: str) -> None:
    """The race of blob collection with another repository's job that holds the same
    content: the job's snapshot start (files committed, under the shared advisory lock)
    and the collection (the exclusive one) run one after the other, so the collection
    either sees the new files row and keeps the blob, or runs first and the job, which
    asks for missing blobs only after its snapshot started, stores it again."""
    shared, own = b"shared = 1\n", b"only_mine = 2\n"
    shared_sha, own_sha = sha256_of(shared), sha256_of(own)
    one, two = (
        RepoRef(f"t{uuid.uuid4().hex[:8]}", "one"),
        RepoRef(f"u{uuid.uuid4().hex[:8]}", "two"),
    )
    with (
        PgJobStore(pg_dsn, pool_size=2) as jobs,
        PgSnapshotStore(pg_dsn, pool_size=2) as snapshots,
        PgBlobStore(pg_dsn) as blobs,
        PgRepoDeletionStore(pg_dsn) as deletions,
    ):
        backend = Backend(jobs, deletions)
        finished_job(backend, one)
        snapshots.begin(
            one,
            "c1",
            [
                FileVersion("a.py", shared_sha, "python", len(shared)),
                FileVersion("b.py", own_sha, "python", len(own)),
            ],
        )
        blobs.put_many({shared_sha: shared, own_sha: own})
        other_snapshot = snapshots.begin(two, "c2", [])
        deletion, _ = deletions.begin(one)
        assert deletions.start(deletion.deletion_id) is not None
        for stage in ("chunks", "files"):
            while deletions.erase(deletion.deletion_id, stage, 1):
                pass
        # Another tenant's job starts a snapshot holding the shared content, not committed yet.
        with psycopg.connect(pg_dsn) as racing:
            lock = deletion_sql.blob_lock(shared=True)
            racing.execute(lock.text, lock.params)
            racing.execute(
                "INSERT INTO files (snapshot_id, repository_id, path, content_sha256, language,"
                " size_bytes) SELECT %s, repository_id, 'c.py', %s, 'python', %s"
                " FROM snapshots WHERE id = %s",
                (other_snapshot, shared_sha, len(shared), other_snapshot),
            )
            with ThreadPoolExecutor(1) as pool:
                collecting = pool.submit(deletions.erase, deletion.deletion_id, "blobs", 10)
                time.sleep(0.5)
                assert not collecting.done(), "the collection must wait for the snapshot"
                racing.commit()
                assert collecting.result(timeout=10) == 2
        assert blobs.missing([shared_sha, own_sha]) == {own_sha}
        counted = deletions.get(deletion.deletion_id)
        assert counted is not None and counted.counters["blobs"] == 1
        assert deletions.erase(deletion.deletion_id, "blobs", 10) == 0  # the batch was forgotten

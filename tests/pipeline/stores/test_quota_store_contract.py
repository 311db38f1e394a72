"""One contract for the quota store: the fake and PostgreSQL. A job's files are charged
once, whole or not at all; concurrent charges never pass the limit together; deleting a
tenant's jobs gives nothing back; limits are set and unset per tenant.

The PostgreSQL cases run on a fresh database of the session's real server, migrated with
the shipped migrations; every test works in tenants of its own.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.fakes.quota_store import InMemoryQuotaStore
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.quota_store import PgQuotaStore
from pipeline.errors import InvalidInputError, QuotaExceededError
from pipeline.ports import QuotaStore
from pipeline.quotas import Quota, QuotaLimits
from tests.databases import fresh_pg_database

DEFAULTS = QuotaLimits(concurrent_jobs=3, files_per_day=100, stored_chunks=1000)


@pytest.fixture(scope="module")
def pg_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_pg_database(endpoints, "quotas") as dsn:
        run(PgMigrationTarget(dsn))
        yield dsn


@pytest.fixture(params=["memory", "postgres"])
def quotas(request: pytest.FixtureRequest) -> Iterator[QuotaStore]:
    if request.param == "memory":
        yield InMemoryQuotaStore()
        return
    with PgQuotaStore(request.getfixturevalue("pg_dsn"), pool_size=4) as real:
        yield real


@pytest.fixture
def tenant(request: pytest.FixtureRequest) -> str:
    name = f"q{uuid.uuid4().hex[:8]}"
    if "postgres" in request.node.callspec.params.get("quotas", ""):
        with psycopg.connect(request.getfixturevalue("pg_dsn"), autocommit=True) as conn:
            conn.execute("INSERT INTO tenants (id) VALUES (%s)", (name,))
    return name


def job() -> str:
    return str(uuid.uuid4())


def test_a_new_tenant_has_the_defaults_and_nothing_used(quotas: QuotaStore, tenant: str) -> None:
    status = quotas.status(tenant, DEFAULTS)
    assert status.limits == DEFAULTS
    assert status.remaining() == {
        Quota.CONCURRENT_JOBS: 3,
        Quota.FILES_PER_DAY: 100,
        Quota.STORED_CHUNKS: 1000,
    }
    assert quotas.overrides(tenant) == dict.fromkeys(
        ("concurrent_jobs", "files_per_day", "stored_chunks", "search_concurrency")
    )


def test_a_jobs_files_are_charged_once_however_often_its_ingest_runs(
    quotas: QuotaStore, tenant: str
) -> None:
    first = job()
    assert quotas.charge_files(tenant, first, 40, DEFAULTS) == 40
    assert quotas.charge_files(tenant, first, 40, DEFAULTS) == 40  # the ingest ran again
    assert quotas.charge_files(tenant, job(), 60, DEFAULTS) == 100  # exactly the limit
    assert quotas.status(tenant, DEFAULTS).remaining()[Quota.FILES_PER_DAY] == 0


def test_a_job_that_would_pass_the_limit_is_refused_whole_and_charges_nothing(
    quotas: QuotaStore, tenant: str
) -> None:
    quotas.charge_files(tenant, job(), 90, DEFAULTS)
    with pytest.raises(QuotaExceededError) as refused:
        quotas.charge_files(tenant, job(), 11, DEFAULTS)
    assert refused.value.quota == "files_per_day"
    assert refused.value.limit == 100 and refused.value.used == 90
    assert "files_per_day" in str(refused.value) and "100" in str(refused.value)
    assert refused.value.retry_after_s is not None and refused.value.retry_after_s > 0
    assert quotas.status(tenant, DEFAULTS).usage.files_per_day == 90
    assert quotas.charge_files(tenant, job(), 10, DEFAULTS) == 100  # what fits still goes


def test_concurrent_charges_never_pass_the_limit_together(quotas: QuotaStore, tenant: str) -> None:
    """Eight ingests of 30 files at once against 100 a day: three fit, the rest refused."""
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def charge() -> None:
        start.wait()
        try:
            quotas.charge_files(tenant, job(), 30, DEFAULTS)
            outcomes.append("charged")
        except QuotaExceededError:
            outcomes.append("refused")

    threads = [threading.Thread(target=charge) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["charged"] * 3 + ["refused"] * 5
    assert quotas.status(tenant, DEFAULTS).usage.files_per_day == 90


def test_limits_are_set_per_tenant_and_unset_back_to_the_default(
    quotas: QuotaStore, tenant: str
) -> None:
    assert quotas.set_limits(tenant, {"files_per_day": 5})["files_per_day"] == 5
    quotas.set_limits(tenant, {"concurrent_jobs": 1})  # the other limit keeps its value
    status = quotas.status(tenant, DEFAULTS)
    assert status.limits == QuotaLimits(concurrent_jobs=1, files_per_day=5, stored_chunks=1000)
    with pytest.raises(QuotaExceededError):
        quotas.charge_files(tenant, job(), 6, DEFAULTS)
    assert quotas.set_limits(tenant, {"files_per_day": None})["files_per_day"] is None
    assert quotas.status(tenant, DEFAULTS).limits.files_per_day == 100
    other = f"q{uuid.uuid4().hex[:8]}"
    assert quotas.overrides(other)["concurrent_jobs"] is None  # another tenant's untouched


def test_a_tenants_search_concurrency_is_set_kept_beside_the_others_and_unset(
    quotas: QuotaStore, tenant: str
) -> None:
    assert quotas.status(tenant, DEFAULTS).limits.search_concurrency == 0  # DEFAULTS'
    assert quotas.set_limits(tenant, {"search_concurrency": 12})["search_concurrency"] == 12
    quotas.set_limits(tenant, {"files_per_day": 7})
    limits = quotas.status(tenant, replace(DEFAULTS, search_concurrency=4)).limits
    assert (limits.search_concurrency, limits.files_per_day) == (12, 7)
    quotas.set_limits(tenant, {"search_concurrency": 0})  # 0 is a value: no bound
    assert quotas.status(tenant, replace(DEFAULTS, search_concurrency=4)).limits == replace(
        DEFAULTS, files_per_day=7, search_concurrency=0
    )
    quotas.set_limits(tenant, {"search_concurrency": None})
    assert quotas.status(tenant, replace(DEFAULTS, search_concurrency=4)).limits == replace(
        DEFAULTS, files_per_day=7, search_concurrency=4
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"files_per_day": -1},
        {"disk": 5},
        {"concurrent_jobs": True},
        {"stored_chunks": 2**63},
        {"search_concurrency": -1},
        {"search_concurrency": 2**31},  # past the integer column: named here, not by the server
        {"concurrent_jobs": 2**31},
    ],
)
def test_a_bad_limit_is_refused_naming_it(
    quotas: QuotaStore, tenant: str, changes: dict[str, int]
) -> None:
    with pytest.raises(InvalidInputError, match=next(iter(changes))):
        quotas.set_limits(tenant, changes)


def test_postgres_counts_active_jobs_and_stored_chunks_and_deleting_jobs_refunds_nothing(
    pg_dsn: str,
) -> None:
    """The status reads the tenant's queued and running jobs and its chunk rows; the day's
    charges outlive the jobs (deleting a repository gives no budget back)."""
    tenant = f"q{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (id) VALUES (%s)", (tenant,))
        repo_id = conn.execute(
            "INSERT INTO repositories (tenant_id, name) VALUES (%s, 'r') RETURNING id", (tenant,)
        ).fetchone()[0]  # type: ignore[index]
        jobs = [job() for _ in range(3)]
        for job_id, status in zip(jobs, ("queued", "running", "done"), strict=True):
            conn.execute(
                "INSERT INTO jobs (id, tenant_id, repository_id, commit_sha, status, ref_name)"
                " VALUES (%s, %s, %s, 'c', %s, 'main')",
                (job_id, tenant, repo_id, status),
            )
        for n in range(4):
            conn.execute(
                "INSERT INTO chunks (repository_id, id, path, file_sha256, start_line, end_line,"
                " start_byte, end_byte, kind, language, content, content_sha256, tsv)"
                " VALUES (%s, %s, 'a.py', 'f', 1, 1, 0, 1, 'code', 'python', 'x', 'c',"
                " ''::tsvector)",
                (repo_id, f"c{n}"),
            )
    with PgQuotaStore(pg_dsn) as store:
        store.charge_files(tenant, jobs[0], 7, DEFAULTS)
        usage = store.status(tenant, DEFAULTS).usage
        assert (usage.concurrent_jobs, usage.files_per_day, usage.stored_chunks) == (2, 7, 4)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM repositories WHERE id = %s", (repo_id,))
        usage = store.status(tenant, DEFAULTS).usage
        assert (usage.concurrent_jobs, usage.files_per_day, usage.stored_chunks) == (0, 7, 0)

"""``quarry quota show | set``, the real console script on the session stack: an
operator's limits per tenant over PostgreSQL, unset back to the default, bad input named;
the API's answers then carry the new figures."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from config.endpoints import Endpoints
from config.settings import child_environment
from devstack.stack import Stack
from pipeline.adapters.postgres.token_store import PgTokenStore
from tests.stackutil import run_quarry

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def env(stack: Stack) -> dict[str, str]:
    return {k: v for k, v in child_environment(stack.settings).items() if k.startswith("QUARRY_")}


def _show(env: dict[str, str], tenant: str) -> dict[str, dict[str, int | bool]]:
    shown = run_quarry("quota", "show", "--tenant", tenant, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    quotas: dict[str, dict[str, int | bool]] = json.loads(shown.stdout)["quotas"]
    return quotas


def test_set_show_and_unset_a_tenants_quotas(
    env: dict[str, str], stack: Stack, endpoints: Endpoints
) -> None:
    tenant = f"cli-quota-{uuid.uuid4().hex[:8]}"
    before = _show(env, tenant)
    assert before["concurrent_jobs"] == {
        "limit": stack.settings.quota_concurrent_jobs,
        "used": 0,
        "remaining": stack.settings.quota_concurrent_jobs,
        "set": False,
    }
    made = run_quarry(
        "quota", "set", "--tenant", tenant, "--concurrent-jobs", "3", "--files-per-day", "50",
        env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "concurrent_jobs=3" in made.stdout and "stored_chunks=default" in made.stdout
    after = _show(env, tenant)
    assert after["concurrent_jobs"]["limit"] == 3 and after["concurrent_jobs"]["set"] is True
    assert after["files_per_day"]["remaining"] == 50
    with PgTokenStore(endpoints.postgres_dsn) as tokens:
        token = tokens.create(tenant, "quota cli test")
    with httpx.Client(base_url=endpoints.api_url, timeout=30) as http:
        answer = http.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    assert answer.headers["X-Quota-Remaining-Files-Per-Day"] == "50"
    unset = run_quarry("quota", "set", "--tenant", tenant, "--default", "files_per_day", env=env)
    assert unset.returncode == 0, unset.stderr
    assert _show(env, tenant)["files_per_day"]["limit"] == stack.settings.quota_files_per_day
    assert _show(env, tenant)["concurrent_jobs"]["limit"] == 3  # the other one kept


def test_a_tenants_search_concurrency_is_set_shown_and_unset(
    env: dict[str, str], stack: Stack
) -> None:
    tenant = f"cli-quota-{uuid.uuid4().hex[:8]}"
    default = stack.settings.search_tenant_concurrency
    assert _show(env, tenant)["search_concurrency"] == {"limit": default, "set": False}
    made = run_quarry("quota", "set", "--tenant", tenant, "--search-concurrency", "16", env=env)
    assert made.returncode == 0, made.stderr
    assert "search_concurrency=16" in made.stdout
    assert _show(env, tenant)["search_concurrency"] == {"limit": 16, "set": True}
    table = run_quarry("quota", "show", "--tenant", tenant, env=env)
    assert table.returncode == 0 and "search_concurrency" in table.stdout, table.stderr
    unset = run_quarry(
        "quota", "set", "--tenant", tenant, "--default", "search_concurrency", env=env
    )
    assert unset.returncode == 0, unset.stderr
    assert _show(env, tenant)["search_concurrency"] == {"limit": default, "set": False}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--concurrent-jobs", "-1"], "concurrent-jobs"),
        (["--search-concurrency", "-1"], "search-concurrency"),
        (["--search-concurrency", str(2**31)], "search_concurrency"),
        (["--default", "disk"], "disk"),
        ([], "nothing to set"),
        (["--files-per-day", "5", "--default", "files_per_day"], "pick one"),
    ],
)
def test_bad_input_is_named(env: dict[str, str], args: list[str], said: str) -> None:
    done = run_quarry("quota", "set", "--tenant", "cli-quota-bad", *args, env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert said in done.stderr

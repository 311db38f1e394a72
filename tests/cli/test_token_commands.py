"""``quarry token create | list | revoke``, the real console script on the session stack:
scopes chosen or every scope by default, a listing without the token, revocation by id
(within a tenant when ``--tenant`` is given) that the API honours."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from config.endpoints import Endpoints
from config.settings import child_environment
from devstack.stack import Stack
from tests.stackutil import run_quarry

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def env(stack: Stack) -> dict[str, str]:
    return {k: v for k, v in child_environment(stack.settings).items() if k.startswith("QUARRY_")}


def _create(env: dict[str, str], tenant: str, *args: str) -> tuple[str, str]:
    made = run_quarry("token", "create", "--tenant", tenant, *args, env=env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    token_id = made.stderr.split()[1]
    assert token.startswith("qk_") and token_id.startswith("tk_"), made.stderr
    assert token not in made.stderr
    return token, token_id


def test_create_list_and_revoke_a_token(env: dict[str, str], endpoints: Endpoints) -> None:
    tenant = f"cli-tok-{uuid.uuid4().hex[:8]}"
    reader, reader_id = _create(env, tenant, "--scope", "read", "--label", "dashboard")
    every, every_id = _create(env, tenant)

    listed = run_quarry("token", "list", "--tenant", tenant, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    records = {r["id"]: r for r in json.loads(listed.stdout)}
    assert set(records) == {reader_id, every_id}
    assert records[reader_id]["scopes"] == ["read"]
    assert records[reader_id]["label"] == "dashboard"
    assert records[every_id]["scopes"] == ["read", "write", "admin"]
    assert reader not in listed.stdout and every not in listed.stdout
    table = run_quarry("token", "list", "--tenant", tenant, env=env)
    assert table.returncode == 0 and reader_id in table.stdout

    with httpx.Client(base_url=endpoints.api_url, timeout=30) as http:
        bearer = {"Authorization": f"Bearer {reader}"}
        assert http.get("/v1/repos", headers=bearer).status_code == 200
        assert http.post("/v1/jobs", json={}, headers=bearer).status_code == 403

        as_reader = {**env, "QUARRY_API_TOKEN": reader}
        cancel = run_quarry("cancel", "00000000-0000-4000-8000-000000000000", env=as_reader)
        assert cancel.returncode == 2, cancel.stderr
        assert "lacks the 'write' scope" in cancel.stderr
        assert "set QUARRY_API_TOKEN to one with that scope" in " ".join(cancel.stderr.split())
        assert reader not in cancel.stderr

        other = run_quarry("token", "revoke", reader_id, "--tenant", f"{tenant}-x", env=env)
        assert other.returncode == 2 and "no token" in other.stderr
        bad = run_quarry("token", "revoke", "qk_looks-like-a-token", env=env)
        assert bad.returncode == 2 and "not a token id" in bad.stderr
        revoked = run_quarry("token", "revoke", every_id, env=env)
        assert revoked.returncode == 0, revoked.stderr
        assert revoked.stdout.startswith(f"{every_id} of tenant {tenant} revoked at ")
        # Never used, so no API process kept an answer for it: refused at once.
        assert (
            http.get("/v1/repos", headers={"Authorization": f"Bearer {every}"}).status_code == 401
        )

    after = json.loads(run_quarry("token", "list", "--tenant", tenant, "--json", env=env).stdout)
    assert {r["id"]: r["revoked"] for r in after} == {reader_id: False, every_id: True}


@pytest.mark.parametrize(
    ("args", "named"),
    [(["--scope", "root"], "'root'"), (["--tenant", "Bad Tenant"], "tenant 'Bad Tenant'")],
)
def test_a_bad_scope_or_tenant_exits_2_naming_it(
    env: dict[str, str], args: list[str], named: str
) -> None:
    base = ["--tenant", "cli-ok"] if args[0] != "--tenant" else []
    refused = run_quarry("token", "create", *base, *args, env=env)
    assert refused.returncode == 2, refused.stderr
    assert named in refused.stderr

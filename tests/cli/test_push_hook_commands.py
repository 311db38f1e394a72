"""``quarry push-hook add | list | remove``, the real console script against the session
stack's API: add prints the settings to paste on stderr and the secret alone on stdout;
list never shows the secret; remove makes the hook's URL answer 404."""

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
def env(stack: Stack, endpoints: Endpoints) -> dict[str, str]:
    found = {k: v for k, v in child_environment(stack.settings).items() if k.startswith("QUARRY_")}
    return found | {"QUARRY_API_URL": endpoints.api_url, "QUARRY_API_TOKEN": endpoints.api_token}


def test_add_list_and_remove_a_push_hook(env: dict[str, str], endpoints: Endpoints) -> None:
    repo = f"cli-hook-{uuid.uuid4().hex[:8]}/widgets"
    clone_url = f"https://gitlab.example.com/{repo}.git"
    made = run_quarry("push-hook", "add", "--platform", "gitlab", "--clone-url", clone_url, env=env)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("phsec_") and "\n" not in secret
    assert secret not in made.stderr
    assert "Secret token" in made.stderr and "Tag push events" in made.stderr
    url = next(w for w in made.stderr.split() if "/v1/hooks/gitlab/ph_" in w)
    hook_id = url.rsplit("/", 1)[1]

    listed = run_quarry("push-hook", "list", "--repo", repo, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    hooks = json.loads(listed.stdout)
    assert [(h["hook_id"], h["clone_url"], h["url"]) for h in hooks] == [(hook_id, clone_url, url)]
    assert secret not in listed.stdout

    body = {"ref": "refs/heads/main", "after": "0" * 40, "project": {}}
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}
    removed = run_quarry("push-hook", "remove", hook_id, env=env)
    assert removed.returncode == 0, removed.stderr
    gone = httpx.post(url, json=body, headers=headers, timeout=30)
    assert gone.status_code == 404
    again = run_quarry("push-hook", "remove", hook_id, env=env)
    assert again.returncode != 0 and "not found" in again.stderr

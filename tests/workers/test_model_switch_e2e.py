"""A model switch on a running stack (issue 21 item 5), with real services: the pathspec
package indexed with the bundled model (384 dimensions), then `quarry model switch` to a
model of 192 dimensions cut from it, while a thread searches through the API in a loop
and an index job runs. Every search answers 200 with results, before, during and after
the backfill; the switch happens; the old vectors are dropped; the new vectors have the
new dimension. A tenant token can neither start, see nor cancel a switch.

A private stack: the switch is deployment-wide, and the session stack's other tests
expect the bundled model.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from config.endpoints import resolve_endpoints
from config.settings import child_environment, load_settings
from devstack.stack import Stack
from pipeline.adapters.postgres.token_store import PgTokenStore
from tests.small_model import cut_model
from tests.stackutil import SHARED_MODEL_DIR, run_quarry, stack_env, stack_folder
from tests.workers.jobs_api import corpus, enqueue, wait

pytestmark = pytest.mark.timeout(900)
QUERIES = ("match_file", "check whether a file path matches the patterns", "GitWildMatchPattern")


@pytest.fixture(scope="module")
def switch_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A private stack whose query-model folder holds the bundled model's export (linked
    from the checkout's) and, later, the cut model's; short backfill steps and waits."""
    models = tmp_path_factory.mktemp("query-models")
    for item in SHARED_MODEL_DIR.iterdir():
        if not item.name.endswith(".lock"):
            (models / item.name).symlink_to(item)
    with stack_folder("quarry-model-switch-") as data_dir:
        env = stack_env(data_dir) | {
            "QUARRY_QUERY_MODEL_DIR": str(models),
            # One chunk row per backfill step, each step a task of its own: the backfill
            # of the small corpus lasts long enough to search through it.
            "QUARRY_MODEL_BACKFILL_STEP_S": "0.01",
            "QUARRY_MODEL_BACKFILL_BATCH_ROWS": "1",
            "QUARRY_MODEL_REGISTRY_REFRESH_S": "1",
            "QUARRY_MODEL_DROP_GRACE_S": "3",
        }
        stack = Stack(load_settings(env=env))
        try:
            stack.up()
            yield stack
        finally:
            stack.down()


def quarry_env(stack: Stack) -> dict[str, str]:
    return {k: v for k, v in child_environment(stack.settings).items() if k.startswith("QUARRY_")}


def status(stack: Stack) -> dict[str, dict[str, Any]]:
    run = run_quarry("model", "status", "--json", env=quarry_env(stack))
    assert run.returncode == 0, run.stderr
    return {m["model_id"]: m for m in json.loads(run.stdout)["models"]}


class SearchLoop(threading.Thread):
    """Searches through the API until stopped; keeps every answer's status and count."""

    def __init__(self, api: httpx.Client, repo: str) -> None:
        super().__init__(daemon=True)
        self.api, self.repo = api, repo
        self.answers: list[tuple[str, str, int, int]] = []
        self.times: list[float] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for query in QUERIES:
                for mode in ("hybrid", "vector"):
                    params = {"q": query, "repo": self.repo, "mode": mode, "k": 5}
                    try:
                        response = self.api.get("/v1/search", params=params)
                        count = len(response.json().get("results", []))
                        self.answers.append((query, mode, response.status_code, count))
                        self.times.append(time.monotonic())
                    except (httpx.HTTPError, ValueError) as exc:
                        self.answers.append((query, mode, -1, 0))
                        self.times.append(time.monotonic())
                        print("search failed:", exc)
            time.sleep(0.05)


def test_a_model_switch_on_a_running_stack_never_leaves_search_failing_or_empty(
    switch_stack: Stack, tmp_path: Path
) -> None:
    endpoints = resolve_endpoints(switch_stack.settings)
    headers = {"Authorization": f"Bearer {endpoints.api_token}"}
    with httpx.Client(base_url=endpoints.api_url, headers=headers, timeout=60) as api:
        switch_on_a_running_stack(switch_stack, api, tmp_path)


def switch_on_a_running_stack(switch_stack: Stack, api: httpx.Client, tmp_path: Path) -> None:
    endpoints = resolve_endpoints(switch_stack.settings)
    env = quarry_env(switch_stack)
    root = tmp_path / "pathspec"
    shutil.copytree(corpus(), root, ignore=shutil.ignore_patterns("__pycache__"))
    repo = f"switch-{uuid.uuid4().hex[:6]}"
    assert wait(api, enqueue(api, source=str(root), repo=repo), timeout_s=400)["status"] == "done"
    before = status(switch_stack)
    assert [(m["state"], m["dimension"], m["storage"]) for m in before.values()] == [
        ("active", 384, "chunks")
    ]

    model = cut_model(tmp_path / "minilm-cut")
    refused = run_quarry("model", "switch", str(model), env=env)
    assert refused.returncode == 2, refused.stderr
    assert "no query-model export for the API" in refused.stderr
    assert f"quarry model export --model {model}" in refused.stderr
    exported = run_quarry("model", "export", "--model", str(model), env=env, timeout_s=400)
    assert exported.returncode == 0, exported.stderr
    unknown = run_quarry("model", "switch", str(tmp_path / "nothing-here"), env=env)
    assert unknown.returncode == 2 and "unknown model" in unknown.stderr, unknown.stderr

    loop = SearchLoop(api, repo)
    loop.start()
    try:
        progress, switch_s = switch_while_searching(switch_stack, api, root, repo, model)
    finally:
        loop.stopped.set()
        loop.join(timeout=60)

    final = status(switch_stack)
    assert final["minilm-cut"]["state"] == "active", (final, progress)
    assert final["all-MiniLM-L6-v2"]["state"] == "retired"
    assert final["all-MiniLM-L6-v2"]["vectors_dropped"]
    failed = [a for a in loop.answers if a[2] != 200]
    empty = [a for a in loop.answers if a[2] == 200 and a[3] == 0]
    during = [p for p in progress if p[0] == "backfilling" and 0 < p[1] < p[2]]
    assert during, progress  # the backfill was seen part way ...
    searched = [t for t in loop.times if during[0][3] <= t <= during[-1][3]]
    print(f"model switch: {len(loop.answers)} searches, {len(searched)} of them while the"
          f" backfill was part way ({during[0][1:3]} to {during[-1][1:3]}); switch and"
          f" drop done {switch_s:.1f} s after `quarry model switch` began")  # fmt: skip
    assert searched  # ... and searches ran then
    assert len(loop.answers) > 50
    assert failed == [] and empty == [], (failed[:5], empty[:5])

    storage = final["minilm-cut"]["storage"]
    with psycopg.connect(endpoints.postgres_dsn) as conn:
        dims = conn.execute(
            f"SELECT DISTINCT vector_dims(embedding) FROM {storage} WHERE embedding IS NOT NULL"
        ).fetchall()
        covered = conn.execute(
            f"SELECT (SELECT count(*) FROM chunks), (SELECT count(*) FROM {storage})"
        ).fetchone()
        old = conn.execute("SELECT count(*) FROM chunks WHERE embedding IS NOT NULL").fetchone()
    assert dims == [(192,)]
    assert covered is not None and covered[0] == covered[1] > 0
    assert old == (0,)
    body = api.get("/v1/search", params={"q": "brand_new_helper", "repo": f"{repo}-b",
                                         "mode": "vector"}).json()  # fmt: skip
    assert body["results"], body


def switch_while_searching(
    stack: Stack, api: httpx.Client, root: Path, repo: str, model: Path
) -> tuple[list[tuple[str, int, int, float]], float]:
    """Switch, run an index job meanwhile, and wait until the old vectors are dropped:
    the progress seen, and the seconds the switch took."""
    env = quarry_env(stack)
    time.sleep(2)
    started_at = time.monotonic()
    switched = run_quarry("model", "switch", str(model), env=env, timeout_s=400)
    assert switched.returncode == 0, switched.stderr
    assert "minilm-cut (192 dimensions" in switched.stdout
    # An index job during the backfill: its chunks get both models' vectors.
    other = root.parent / "pathspec-copy"
    shutil.copytree(root, other)
    (other / "extra_module.py").write_text("def brand_new_helper():\n    return 42\n")
    job = enqueue(api, source=str(other), repo=f"{repo}-b")
    resumed = run_quarry("model", "resume", env=env)  # a second chain of steps: harmless
    assert resumed.returncode == 0 or "no switch is running" in resumed.stderr, resumed.stderr
    again = run_quarry("model", "switch", str(model), env=env, timeout_s=400)
    # A second switch while one runs is refused (or, once it is done, the model is active).
    assert again.returncode != 0, again.stdout
    assert "is running" in again.stderr or "already the active model" in again.stderr

    progress: list[tuple[str, int, int, float]] = []
    deadline = time.monotonic() + 600
    dsn = resolve_endpoints(stack.settings).postgres_dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            seen = {
                row[0]: row[1:]
                for row in conn.execute(
                    "SELECT model_id, state, chunks_done, chunks_total, dropped_at IS NOT NULL"
                    " FROM embedding_models"
                )
            }
            state, done, total, _ = seen.get("minilm-cut", ("", 0, 0, False))
            progress.append((state, done, total, time.monotonic()))
            if state == "active" and seen["all-MiniLM-L6-v2"][3]:
                break
            time.sleep(0.2)
    switch_s = time.monotonic() - started_at
    assert wait(api, job, timeout_s=300)["status"] == "done"
    time.sleep(3)  # searches on the new model, after the drop
    return progress, switch_s


def test_a_tenant_token_reaches_no_model_switch(switch_stack: Stack) -> None:
    """Switching is deployment-wide: no API route starts, shows or cancels one, even for
    a token with every scope of its tenant; only the operator's `quarry model` does.
    Runs after the switch above (the module's order)."""
    endpoints = resolve_endpoints(switch_stack.settings)
    with PgTokenStore(endpoints.postgres_dsn) as tokens:
        token = tokens.create(f"hostile-{uuid.uuid4().hex[:6]}")  # read, write and admin
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=endpoints.api_url, timeout=30, headers=headers) as client:
        answers, paths = hostile_tries(client)
        # After the switch (the test above), search reads the new model's own table:
        # still only the caller's repositories.
        found = client.get("/v1/search", params={"q": "match_file", "mode": "vector"})
    assert found.status_code == 200 and found.json()["results"] == [], found.text
    assert all(code in (404, 405) for code in answers.values()), answers
    assert not [p for p in paths if "model" in p], paths
    before = status(switch_stack)
    assert all(m["state"] != "backfilling" for m in before.values())


def hostile_tries(client: httpx.Client) -> tuple[dict[str, int], list[str]]:
    """What a tenant's token gets from every route a model switch could have."""
    tries = [
        ("POST", "/v1/models/switch", {"model": "/tmp/evil"}),
        ("POST", "/v1/models", {"model": "/tmp/evil"}),
        ("GET", "/v1/models", None),
        ("GET", "/v1/models/status", None),
        ("DELETE", "/v1/models/all-MiniLM-L6-v2", None),
        ("POST", "/v1/admin/models/switch", {"model": "/tmp/evil"}),
    ]
    answers = {
        f"{method} {path}": client.request(method, path, json=body).status_code
        for method, path, body in tries
    }
    spec = client.get("/openapi.json")
    paths = list(spec.json().get("paths", {})) if spec.status_code == 200 else []
    return answers, paths

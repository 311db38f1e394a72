"""Two "hosts" that share no filesystem run one job, and one of them dies mid-job.

Each host is a mount and UTS namespace of its own (``unshare``, as root): its own
hostname, a private tmpfs over its data folder, and a tmpfs over the stack's data folder
(so neither the stack's secrets nor the other host's checkouts are in sight). Each runs
a worker of every profile (``cpu`` and ``embed``) against the one Redis, PostgreSQL and
graph server of a private stack on 127.0.0.1 that runs no worker of its own. The source
is a git repository both hosts can clone (``file://``, standing in for a git server):
the ingest's checkout is scratch on whichever host took it, and the chunk workers of
both hosts read the files' bytes from PostgreSQL.

Checked: one job's files are chunked and embedded on both hosts (their logs); after
SIGKILL of one host's whole worker set mid-job, the job finishes on the other within
2 minutes, with both stores matching an independently computed oracle. The stack runs
with the production defaults (the broker's visibility timeout of an hour): the dead
host's messages come back because its workers' leases lapse and the survivor's sweep
gives them back (tasks/transport.py, workers/lease.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.endpoints import Endpoints, resolve_endpoints
from config.settings import QuarrySettings, load_settings
from devstack.hosts import Host, handled, start_host
from devstack.oracle import assert_stores_match
from devstack.stack import Stack
from pipeline.models import RepoRef
from tests.stackutil import stack_env, stack_folder
from tests.workers.jobs_api import wait

pytestmark = pytest.mark.timeout(900)
REPO = Path(__file__).resolve().parents[2]
FIGURES = REPO / "test-artifacts" / "multi_host.json"  # what bench/results/multi_host.md quotes
HOSTS = ("host-a", "host-b")
TASKS = ("quarry.chunk.files", "quarry.embed.chunks")
PRODUCTION_DEFAULTS = (
    "QUARRY_BROKER_VISIBILITY_TIMEOUT_S",
    "QUARRY_TASK_TIME_LIMIT_S",
    "QUARRY_QUEUE_WAIT_S",
    "QUARRY_JOB_SWEEP_INTERVAL_S",
    "QUARRY_JOB_STALL_S",
)
CORPUS_FILES = 60
GIT = ["git", "-c", "user.name=Quarry Test", "-c", "user.email=test@example.com"]


@pytest.fixture(scope="module")
def quiet_stack() -> Iterator[Stack]:
    """A private stack with no worker: the hosts below are its only workers. Small
    chunk batches and embed flushes, so that one job's work spreads over both."""
    assert os.geteuid() == 0, "the multi-host test makes namespaces with unshare: run as root"
    assert shutil.which("unshare"), "util-linux's unshare is needed"
    with stack_folder("quarry-multi-host-") as data_dir:
        env = stack_env(data_dir) | {
            "QUARRY_STACK_WORKERS": "",
            "QUARRY_JOB_BATCH_FILES": "2",
            "QUARRY_EMBED_FLUSH_MESSAGES": "2",
        }
        # Production defaults for everything that decides how fast a dead worker's
        # messages come back: the broker's visibility timeout (an hour), the task time
        # limit, the sweep interval and the stall time.
        for key in PRODUCTION_DEFAULTS:
            env.pop(key)
        stack = Stack(load_settings(env=env))
        try:
            stack.up()
            yield stack
        finally:
            stack.down()


def git_server(root: Path, name: str) -> Path:
    """A bare repository of real code (kombu's first modules) that both hosts can clone."""
    import kombu

    source = Path(str(kombu.__file__)).parent
    work = root / "work" / name
    files = sorted(p for p in source.rglob("*.py") if "__pycache__" not in p.parts)
    for path in files[:CORPUS_FILES]:
        target = work / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    subprocess.run([*GIT, "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*GIT, "-C", str(work), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(work), "commit", "-q", "-m", "corpus"], check=True)
    bare = root / "server" / f"{name}.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return work


def test_a_job_runs_on_two_hosts_and_survives_one_dying(quiet_stack: Stack, tmp_path: Path) -> None:
    settings = quiet_stack.settings
    endpoints = resolve_endpoints(settings)
    root = tmp_path
    root.chmod(0o755)
    hosts = [start_host(name, settings, endpoints, root / "hosts") for name in HOSTS]
    headers = {"Authorization": f"Bearer {endpoints.api_token}"}
    figures: dict[str, Any] = {"hosts": list(HOSTS)}
    try:
        with httpx.Client(base_url=endpoints.api_url, headers=headers, timeout=30) as api:
            started = time.monotonic()
            first = _index(api, root, "spread")
            assert first["status"] == "done", first
            figures["spread"] = {
                "files": first["files"]["total"],
                "chunks": first["chunks"]["total"],
                "done_s": round(time.monotonic() - started, 1),
                "tasks": {
                    h.name: {
                        t: handled(h, t) for t in ("quarry.chunk.files", "quarry.embed.chunks")
                    }
                    for h in hosts
                },
            }
            for host in hosts:
                for task in TASKS:
                    assert handled(host, task) > 0, f"{host.name} ran no {task}"
            figures["killed"] = _kill_mid_job(api, root, hosts, settings, endpoints)
    finally:
        for host in hosts:
            host.kill()
        FIGURES.parent.mkdir(exist_ok=True)
        FIGURES.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


def _index(api: httpx.Client, root: Path, name: str) -> dict[str, Any]:
    work = git_server(root, name)
    repo = f"{name}-{uuid.uuid4().hex[:6]}"
    url = f"file://{root / 'server' / f'{name}.git'}"
    response = api.post("/v1/jobs", json={"source": url, "repo": repo, "ref": "main"})
    assert response.status_code == 202, response.text
    status = wait(api, response.json()["job_id"], timeout_s=400)
    status["_work"], status["_repo"] = str(work), repo
    return status


def _kill_mid_job(
    api: httpx.Client,
    root: Path,
    hosts: list[Host],
    settings: QuarrySettings,
    endpoints: Endpoints,
) -> dict[str, Any]:
    work = git_server(root, "killed")
    repo = f"killed-{uuid.uuid4().hex[:6]}"
    url = f"file://{root / 'server' / 'killed.git'}"
    started = time.monotonic()
    response = api.post("/v1/jobs", json={"source": url, "repo": repo, "ref": "main"})
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    victim, survivor = hosts
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # mid-job: some files chunked, not all written
        status = api.get(f"/v1/jobs/{job_id}").json()
        files = status["files"]
        if files["chunked"] > 0 and files["written"] < files["todo"]:
            break
        assert status["status"] not in ("done", "failed"), status
        time.sleep(0.2)
    at_kill = dict(files)
    victim.kill()
    killed_at = time.monotonic()
    final = wait(api, job_id, timeout_s=180)
    took_s = time.monotonic() - killed_at
    assert final["status"] == "done", final
    assert took_s < 120, f"the job took {took_s:.0f} s after the kill"
    assert survivor.process.poll() is None
    check = assert_stores_match(Path(work), RepoRef("default", repo), settings, endpoints)
    assert check.expected > 100
    return {
        "files": final["files"]["total"],
        "chunks_expected": check.expected,
        "killed": victim.name,
        "killed_after_s": round(killed_at - started, 1),
        "files_at_kill": {k: at_kill[k] for k in ("todo", "chunked", "embedded", "written")},
        "done_after_kill_s": round(took_s, 1),
        "missing": check.missing,
        "duplicated": check.duplicated,
        "ghosts": check.ghosts,
    }

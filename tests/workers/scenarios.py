"""Reliability scenarios (issue 9), shared by the CI tests (small scale) and the long
run (bench/reliability.py): a job is disturbed mid-way (a worker killed, a store
stopped, Redis killed), then must end ``done`` with both stores exactly as the oracle
expects; a burst over the admission bound must lose nothing it accepted.

Each scenario returns a record: what was done, how the job ended, the store check.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import redis
from celery import Celery

from config.endpoints import Endpoints, read_stack_secrets
from config.queues import ALL_QUEUES
from devstack.oracle import check_stores
from devstack.services import GraphService, PostgresService, RedisService
from devstack.stack import Stack
from devstack.supervisor import read_state
from pipeline.adapters.redis.client import connect_redis
from pipeline.adapters.redis.in_flight import job_ids_in
from pipeline.models import RepoRef
from pipeline.webhooks.events import verify
from tasks.app import create_app
from tests.workers.jobs_api import enqueue, tenant_secret_of, until, wait
from workers.main import node_name

KILL_TARGETS = ("cpu-child", "cpu-main", "embed-main")


@dataclass
class Record:
    scenario: str
    detail: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    seconds: float = 0.0
    expected: int = 0
    missing: int = 0
    duplicated: int = 0
    ghosts: int = 0
    recoveries: int = 0

    @property
    def clean(self) -> bool:
        return self.status == "done" and self.missing == self.duplicated == self.ghosts == 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"clean": self.clean}


def _mid_job(api: httpx.Client, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    """Wait until the job has files chunked but not all written (work in every stage)."""

    def check() -> dict[str, Any] | None:
        status: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        if status["status"] not in ("queued", "running"):
            return status
        files = status["files"]
        started = files["chunked"] > 0 or status["chunks"]["total"] > 0
        return status if started and files["written"] < files["todo"] else None

    return dict(until(check, timeout_s, f"job {job_id} mid-way", every_s=0.05))


def run_job(
    api: httpx.Client,
    stack: Stack,
    endpoints: Endpoints,
    tree: Path,
    scenario: str,
    disrupt: Callable[[str], dict[str, Any]],
    *,
    timeout_s: float = 300,
) -> Record:
    """Enqueue a job for ``tree`` as a new repository, ``disrupt`` it, wait for its end
    and check both stores against the oracle."""
    repo = f"{scenario}-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    job_id = enqueue(api, source=str(tree), repo=repo)
    detail = disrupt(job_id)
    try:
        final = wait(api, job_id, timeout_s=timeout_s)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnose(stack, endpoints)}") from exc
    record = Record(scenario, detail, final["status"], round(time.monotonic() - started, 1))
    record.recoveries = int(final.get("recoveries", 0))
    sweeper = [e["message"] for e in final["errors"] if e["message"].startswith("sweeper")]
    if sweeper:
        record.detail["sweeper"] = sweeper
    check = check_stores(tree, RepoRef("default", repo), stack.settings, endpoints)
    record.expected, record.missing = check.expected, check.missing
    record.duplicated, record.ghosts = check.duplicated, check.ghosts
    return record


def diagnose(stack: Stack, endpoints: Endpoints) -> str:
    """What the broker holds and what the workers last said: for a job that hangs."""
    client = connect_redis(endpoints.redis_url)
    try:
        queues = {q: client.llen(q) for q in ALL_QUEUES}
        unacked = client.hlen("unacked")
    finally:
        client.close()
    lines = [f"queues {queues}, unacked {unacked}", f"supervisor {read_state(stack.layout)}"]
    for worker in ("worker-cpu", "worker-embed"):
        log = stack.layout.logfile(worker)
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        lines += [f"--- {worker}", *tail]
    return "\n".join(lines)


# --- disruptions ------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def _running(app: Celery, worker: str, job_id: str) -> dict[int, list[str]]:
    """The tasks of the job each process of ``worker`` runs now, by Celery's inspect."""
    profile = worker.removeprefix("worker-")
    try:
        replies = app.control.inspect(destination=[node_name(profile)], timeout=1.0).active()
    except Exception:  # noqa: BLE001 (a figure for the record, not a condition of the run)
        return {}
    running: dict[int, list[str]] = {}
    for tasks in (replies or {}).values():
        for task in tasks:
            if job_id not in json.dumps(task):
                continue
            running.setdefault(int(task.get("worker_pid") or 0), []).append(str(task["name"]))
    return running


def _held_by_broker(client: redis.Redis[Any], job_id: str) -> int:
    """Messages of the job delivered to a worker and not yet acknowledged."""
    return sum(job_id in job_ids_in(raw) for raw in client.hvals("unacked"))


def kill_worker(
    api: httpx.Client, stack: Stack, endpoints: Endpoints, target: str, *, catch_s: float = 30
) -> Callable[[str], dict[str, Any]]:
    """SIGKILL a cpu pool child or a worker's main process in the middle of the job's
    work: once a cpu process runs a task (a child, for ``cpu-child``), or the embed worker
    holds messages of the job unacknowledged, polled for up to ``catch_s`` (then killed
    anyway, and the record says it was not caught). The supervisor restarts a dead main
    process."""
    worker = "worker-embed" if target == "embed-main" else "worker-cpu"
    app = create_app(stack.settings)  # one for the inspect calls of every poll

    def disrupt(job_id: str) -> dict[str, Any]:
        status = _mid_job(api, job_id)
        main = int(read_state(stack.layout)[worker]["pid"])
        deadline = time.monotonic() + catch_s
        victim, tasks, held = main, [], 0
        broker = connect_redis(endpoints.redis_url)  # one client for every poll
        try:
            while time.monotonic() < deadline:
                if target == "embed-main":
                    held = _held_by_broker(broker, job_id)
                    if held:
                        break
                    time.sleep(0.05)
                    continue
                running = _running(app, worker, job_id)
                busy = {pid: names for pid, names in running.items() if pid != main and names}
                if busy:
                    victim = main if target == "cpu-main" else min(busy)
                    tasks = sorted({n for names in busy.values() for n in names})
                    break
        finally:
            broker.close()
        os.kill(victim, signal.SIGKILL)
        if victim == main:
            until(
                lambda: read_state(stack.layout).get(worker, {}).get("pid") not in (None, main),
                60,
                f"{worker} restarted",
                every_s=0.2,
            )
        return {
            "target": target,
            "pid": victim,
            "caught": bool(tasks or held),
            "running": tasks,
            "held_messages": held,
            "files": status["files"],
        }

    return disrupt


def store_outage(
    api: httpx.Client, stack: Stack, endpoints: Endpoints, store: str, outage_s: float
) -> Callable[[str], dict[str, Any]]:
    """Stop PostgreSQL or the graph server for ``outage_s`` once the job is mid-way,
    then start it again (as a restart policy would)."""

    def disrupt(job_id: str) -> dict[str, Any]:
        _mid_job(api, job_id)
        if store == "postgres":
            PostgresService(stack.settings, stack.layout, endpoints).stop()
        else:
            secrets = read_stack_secrets(stack.settings)
            assert secrets is not None
            GraphService(stack.settings, stack.layout, endpoints, secrets).stop()
        stopped = time.monotonic()
        waits: set[str] = set()
        while time.monotonic() - stopped < outage_s:
            try:
                status = api.get(f"/v1/jobs/{job_id}").json()
                waits |= {w["store"] for w in status.get("waiting_on", [])}
            except (httpx.HTTPError, ValueError):
                pass  # the API reads jobs from PostgreSQL: it may answer 503 meanwhile
            time.sleep(0.5)
        stack.up()
        return {"store": store, "outage_s": outage_s, "job_waited_on": sorted(waits)}

    return disrupt


def redis_kill(api: httpx.Client, stack: Stack, endpoints: Endpoints) -> Callable[[str], Any]:
    """SIGKILL Redis (append-only file on) while the job has queued work, restart it."""

    def disrupt(job_id: str) -> dict[str, Any]:
        _mid_job(api, job_id)
        service = RedisService(stack.settings, stack.layout, endpoints)
        pid = service.pid()
        assert pid is not None, "the stack's Redis is not running"
        os.kill(pid, signal.SIGKILL)
        time.sleep(1.0)
        stack.up()
        return {"killed_pid": pid}

    return disrupt


# --- a webhook delivery killed -------------------------------------------------------------
class HoldingReceiver:
    """A loopback webhook receiver that holds its first request for ``hold_s`` before it
    answers (the delivering process is killed meanwhile), then answers 200 at once."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.arrived = threading.Event()
        self.completed: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                first = not receiver.arrived.is_set()
                receiver.arrived.set()
                if first:
                    time.sleep(receiver.hold_s)
                try:
                    self.send_response(200)
                    self.end_headers()
                except OSError:
                    return  # the deliverer died meanwhile
                if not first:
                    receiver.completed.append((dict(self.headers.items()), body))

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def webhook_kill(
    api: httpx.Client, stack: Stack, endpoints: Endpoints, tree: Path, *, hold_s: float = 5.0
) -> Record:
    """A job with a callback URL; while the ``job.done`` delivery is in progress, every
    pool child of the cpu worker (one of them delivers) is killed. The event must still
    arrive, signed, and the job stay ``done`` with its stores exact."""
    receiver = HoldingReceiver(hold_s)
    repo = f"webhook-kill-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    try:
        job_id = enqueue(api, source=str(tree), repo=repo, callback_url=receiver.url)
        final = wait(api, job_id)
        assert receiver.arrived.wait(60), "the job.done delivery never arrived"
        main = int(read_state(stack.layout)["worker-cpu"]["pid"])
        killed = _children(main)
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        until(lambda: receiver.completed, 90, "the delivery again after the kill", every_s=0.2)
        headers, body = receiver.completed[0]
        verify(tenant_secret_of(api), headers, body, now=time.time())
        event = json.loads(body)
        assert event["event"] == "job.done" and event["job"]["job_id"] == job_id, event
    finally:
        receiver.close()
    record = Record("webhook-kill", {"killed": killed, "deliveries": len(receiver.completed)})
    record.status, record.seconds = final["status"], round(time.monotonic() - started, 1)
    check = check_stores(tree, RepoRef("default", repo), stack.settings, endpoints)
    record.expected, record.missing = check.expected, check.missing
    record.duplicated, record.ghosts = check.duplicated, check.ghosts
    return record


# --- burst --------------------------------------------------------------------------------
@dataclass
class BurstOutcome:
    submitted: int = 0
    accepted: int = 0
    refused: int = 0
    refused_without_retry_after: int = 0
    done: int = 0
    not_done: list[str] = field(default_factory=list)


def burst(
    api: Any, tree: Path, *, seconds: float, finish: Callable[[str], dict[str, Any]]
) -> BurstOutcome:
    """Submit jobs (one new repository each) as fast as ``api`` answers for ``seconds``:
    each answer is 202 (accepted) or 429 with Retry-After (refused, and not kept).
    Every accepted job must then end ``done`` (``finish`` waits for it)."""
    outcome, accepted = BurstOutcome(), []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = api.post(
            "/v1/jobs", json={"source": str(tree), "repo": f"burst-{uuid.uuid4().hex[:8]}"}
        )
        outcome.submitted += 1
        if response.status_code == 429:
            outcome.refused += 1
            if int(response.headers.get("Retry-After", "0")) < 1:
                outcome.refused_without_retry_after += 1
            continue
        assert response.status_code == 202, response.text
        accepted.append(response.json()["job_id"])
    outcome.accepted = len(accepted)
    for job_id in accepted:
        if finish(job_id)["status"] == "done":
            outcome.done += 1
        else:
            outcome.not_done.append(job_id)
    return outcome

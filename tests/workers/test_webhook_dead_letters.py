"""A webhook given up by the session stack's workers is a dead letter that ``quarry dlq``
lists and replays: a receiver that answers 503 to every attempt gets the stack's
``webhook_max_attempts`` (4, tests/stackutil.py) deliveries of one event, then the event
is listed with its job, event and URL; replayed once the receiver is back, it arrives
signed, with the same delivery id, as attempt 1.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.endpoints import Endpoints
from config.queues import WEBHOOK_DELIVER_TASK
from config.settings import child_environment
from devstack.stack import Stack
from pipeline.webhooks.events import DELIVERY_HEADER, verify
from tests.stackutil import run_quarry
from tests.workers.jobs_api import enqueue, tenant_secret_of, wait

pytestmark = pytest.mark.timeout(300)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        server: _Receiver = self.server  # type: ignore[assignment]
        server.received.append((dict(self.headers.items()), body, server.status))
        if server.hang:
            server.released.wait(120)  # never answers while the test runs
            return
        self.send_response(server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _Receiver(ThreadingHTTPServer):
    """Answers every POST with ``status`` and records (headers, body, status)."""

    status = 503
    hang = False  # True: read the request, never answer
    received: list[tuple[dict[str, str], bytes, int]]
    released: threading.Event

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver(("127.0.0.1", 0), _Handler)
    server.received, server.released = [], threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.released.set()
        server.shutdown()
        server.server_close()


def _until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _listed(env: dict[str, str], job_id: str) -> list[dict[str, Any]]:
    listed = run_quarry("dlq", "list", "--json", "--limit", "10000", env=env, timeout_s=60)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    return [r for r in rows if r["payload"].get("job_id") == job_id]


def _job_with_callback(api: httpx.Client, tmp_path: Path, url: str) -> str:
    source = tmp_path / "src"
    source.mkdir()
    (source / "ledger.py").write_text("def settle(amount):\n    return amount * 2\n")
    job_id = enqueue(
        api, source=str(source), repo=f"hook-dlq-{uuid.uuid4().hex[:8]}", callback_url=url
    )
    assert wait(api, job_id)["status"] == "done"
    return job_id


def _env(stack: Stack) -> dict[str, str]:
    return {k: v for k, v in child_environment(stack.settings).items() if k.startswith("QUARRY_")}


def test_a_webhook_given_up_is_listed_and_replays_to_a_receiver_that_is_back(
    api: httpx.Client, stack: Stack, endpoints: Endpoints, receiver: _Receiver, tmp_path: Path
) -> None:
    job_id = _job_with_callback(api, tmp_path, receiver.url)
    env = _env(stack)
    attempts = stack.settings.webhook_max_attempts

    (row,) = _until(lambda: _listed(env, job_id), 60, "the webhook's dead letter")
    assert len(receiver.received) == attempts
    assert {status for _, _, status in receiver.received} == {503}
    assert row["task"] == WEBHOOK_DELIVER_TASK
    assert row["attempts"] == attempts
    assert row["payload"]["event"] == "job.done"
    assert set(row["payload"]) == {"job_id", "event", "delivery_id"}  # no attempt, no URL
    for part in (job_id, "job.done", receiver.url, "answered 503"):
        assert part in row["error"], row["error"]
    deliveries = api.get(f"/v1/jobs/{job_id}").json()["webhooks"]
    assert [d["outcome"] for d in deliveries] == ["retrying"] * (attempts - 1) + ["failed"]

    receiver.status = 200
    replayed = run_quarry("dlq", "replay", row["id"], env=env, timeout_s=60)
    assert replayed.returncode == 0, replayed.stderr
    _until(lambda: len(receiver.received) > attempts, 60, "the replayed delivery")
    headers, body, status = receiver.received[-1]
    assert status == 200
    verify(tenant_secret_of(api), headers, body, now=time.time())
    event = json.loads(body)
    assert event["event"] == "job.done" and event["job"]["job_id"] == job_id
    assert headers[DELIVERY_HEADER] == event["delivery_id"] == row["payload"]["delivery_id"]

    def delivered() -> list[dict[str, Any]]:
        log = api.get(f"/v1/jobs/{job_id}").json()["webhooks"]
        return [d for d in log if d["outcome"] == "delivered"]

    (done,) = _until(delivered, 30, "the replay in the job's delivery log")
    assert done["attempt"] == 1  # a fresh attempt count
    assert _listed(env, job_id) == []
    time.sleep(1.0)  # nothing more arrives: the replay was delivered once
    assert len(receiver.received) == attempts + 1


def test_a_callback_that_never_answers_costs_bounded_attempts_and_one_letter(
    api: httpx.Client, stack: Stack, receiver: _Receiver, tmp_path: Path
) -> None:
    """A tenant's receiver that takes the request and never answers: each attempt ends at
    webhook_timeout_s, the delivery gives up after webhook_max_attempts, one letter."""
    receiver.hang = True
    settings = stack.settings
    started = time.monotonic()
    job_id = _job_with_callback(api, tmp_path, receiver.url)
    env = _env(stack)
    bound_s = settings.webhook_max_attempts * (settings.webhook_timeout_s + 5) + (
        settings.webhook_max_attempts * settings.webhook_retry_cap_s
    )
    (row,) = _until(lambda: _listed(env, job_id), bound_s, "the dead letter of a hung callback")
    assert time.monotonic() - started < bound_s + 60
    assert "timed out" in row["error"] and row["attempts"] == settings.webhook_max_attempts
    time.sleep(settings.webhook_retry_cap_s + 1)  # nothing is tried after the give-up
    assert len(receiver.received) == settings.webhook_max_attempts
    assert len(_listed(env, job_id)) == 1

"""Helpers of the security tests: a tenant and its token, jobs through the API, and a
webhook receiver."""

from __future__ import annotations

import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

TERMINAL = ("done", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    token: str


def enqueue(api: httpx.Client, **body: Any) -> str:
    response = api.post("/v1/jobs", json=body)
    assert response.status_code in (200, 202), response.text
    job_id: str = response.json()["job_id"]
    return job_id


def wait(api: httpx.Client, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = api.get(f"/v1/jobs/{job_id}").json()
        if status["status"] in TERMINAL:
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {status}")


def index(api: httpx.Client, **body: Any) -> dict[str, Any]:
    """Enqueue a job and wait for it; it must end done."""
    status = wait(api, enqueue(api, **body))
    assert status["status"] == "done", status
    return status


class RecordingHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        server: Receiver = self.server  # type: ignore[assignment]
        server.received.append((dict(self.headers.items()), body))
        self.send_response(server.answers.pop(0) if server.answers else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Receiver(ThreadingHTTPServer):
    """Records each POST: (headers, the exact body); answers the statuses in ``answers``
    first, then 200."""

    received: list[tuple[dict[str, str], bytes]]
    answers: list[int]

    @property
    def port(self) -> int:
        return int(self.server_address[1])

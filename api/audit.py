"""The audit log: one JSON line for each request a token made with the write or admin
scope (it passed the token check: whatever it answered), for each refused request
(401 or 403), and for each push-hook delivery (api/routes_push_hooks.py: accepted ones
as ``write`` with the ``hook_id``, any 4xx as refused), written to the audit file
(``QUARRY_AUDIT_LOG_FILE``) by a background thread.

A line holds the time, the outcome (``"event"``: ``write``, ``admin`` or ``refused``),
the tenant and the token's public id when known, the method, the path (never the query
string, where a client may have put a token), the status, the reason of a refusal, the
client's address as the socket gives it (a forwarded-for header is the client's word,
not evidence) and the request id (``X-Request-Id`` when the client sent a plain one,
else a new one; answered in the response either way). Never the token or its digest.
Every value is JSON-encoded, so a path or header holding a newline or a quote cannot
forge a line.

An observer: the request only puts a record on a queue; a failure to build or write a
line is logged and the request goes on.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.logging import audit_file_handler

NOTES = "quarry.audit"  # the request scope's key of what the token check found
AUDITED_SCOPES = frozenset({"write", "admin"})
REQUEST_ID_HEADER = "x-request-id"
_PLAIN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_MAX_PATH_CHARS = 2000
log = logging.getLogger("quarry.api")


def note(connection: HTTPConnection, **fields: object) -> None:
    """Attach what the token check learnt (tenant, token id, scope, reason) to the
    request's audit line; outside an audited app, nothing."""
    notes = connection.scope.get(NOTES)
    if isinstance(notes, dict):
        notes.update(fields)


class AuditLog:
    """JSON lines to a file through Python logging's queue: :meth:`write` only enqueues;
    the listener thread (:meth:`start`, :meth:`stop` flushes) writes them."""

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._enqueue = QueueHandler(self._queue)
        self._file = audit_file_handler(path, max_bytes=max_bytes, backups=backups)
        self._listener = QueueListener(self._queue, self._file)
        self._started = False

    def start(self) -> None:
        if self._started:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("audit log folder %s cannot be made: %s", self.path.parent, exc)
        self._listener.start()
        self._started = True

    def stop(self) -> None:
        if self._started:
            self._listener.stop()
            self._started = False
        self._file.close()

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=True, separators=(",", ":"))
        record = logging.makeLogRecord(
            {"name": "quarry.audit", "levelno": logging.INFO, "levelname": "INFO", "msg": line}
        )
        self._enqueue.handle(record)


class RefusalBudget:
    """At most ``per_s`` refused-request lines a second in this process; the lines past
    it are counted and the next one written says how many were left out
    (``"suppressed": N``). Anyone can make a refused request: without a bound, a flood
    of them would rotate the write and admin lines out of the log (or fill its disk).
    Write and admin lines need a valid token and are never left out."""

    def __init__(self, per_s: float = 20.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_s = per_s
        self._clock = clock
        self._tokens = per_s
        self._at = self._clock()
        self._suppressed = 0
        self._lock = threading.Lock()

    def admit(self, entry: dict[str, Any]) -> bool:
        """Whether ``entry`` (a refused line) is written; adds the suppressed count."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.per_s, self._tokens + (now - self._at) * self.per_s)
            self._at = now
            if self._tokens < 1:
                self._suppressed += 1
                return False
            self._tokens -= 1
            if self._suppressed:
                entry["suppressed"] = self._suppressed
                self._suppressed = 0
            return True


class AuditMiddleware:
    """Pure ASGI: gives each HTTP request a notes dict and a request id, and writes its
    line once the response has started (or the app failed: status 500)."""

    def __init__(
        self, app: ASGIApp, audit: AuditLog, refusals: RefusalBudget | None = None
    ) -> None:
        self.app = app
        self.audit = audit
        self.refusals = refusals or RefusalBudget()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        notes: dict[str, Any] = {}
        scope[NOTES] = notes
        status = 500

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            try:
                entry = audit_entry(scope, notes, status, request_id)
                refused = entry is not None and entry["event"] == "refused"
                if entry is not None and (not refused or self.refusals.admit(entry)):
                    self.audit.write(entry)
            except Exception:  # an observer: the request is answered anyway
                log.exception("audit line of %s %s not written", scope["method"], scope["path"])


def audit_entry(
    scope: Scope, notes: dict[str, Any], status: int, request_id: str
) -> dict[str, Any] | None:
    """The line of a request, or None when it is not audited (a read, a public route)."""
    # A push-hook delivery (no token: its hook's secret proves it) is refused by any 4xx.
    hook = notes.get("hook_id")
    refused = status in (401, 403) or (hook is not None and 400 <= status < 500)
    if not refused and notes.get("scope") not in AUDITED_SCOPES:
        return None
    client = scope.get("client")
    entry: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "event": "refused" if refused else notes["scope"],
        "method": scope["method"],
        "path": str(scope["path"])[:_MAX_PATH_CHARS],
        "status": status,
        "tenant": notes.get("tenant"),
        "token_id": notes.get("token_id"),
        "scope": notes.get("scope"),
        "remote": client[0] if client else None,
        "request_id": request_id,
    }
    if hook is not None:
        entry["hook_id"] = hook
    if refused:
        entry["reason"] = notes.get("reason", "refused")
    return entry


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            given = bytes(value).decode("latin-1")
            if _PLAIN_ID.match(given):
                return given
            break
    return uuid.uuid4().hex

"""The audit log's file, without a stack: which requests make a line, rotation by size,
and a file that logrotate moves away or truncates (QUARRY_AUDIT_LOG_MAX_BYTES=0)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from api.audit import AuditLog, audit_entry

SCOPE: dict[str, Any] = {"method": "POST", "path": "/v1/jobs", "client": ("10.0.0.7", 5123)}


@pytest.mark.parametrize(
    ("notes", "status", "event"),
    [
        ({"scope": "read", "tenant": "acme", "token_id": "tk_1"}, 200, None),
        ({}, 200, None),  # a public route
        ({"scope": "write", "tenant": "acme", "token_id": "tk_1"}, 202, "write"),
        ({"scope": "write", "tenant": "acme", "token_id": "tk_1"}, 500, "write"),
        ({"scope": "admin", "tenant": "acme", "token_id": "tk_1"}, 404, "admin"),
        ({"reason": "missing bearer token"}, 401, "refused"),
        (
            {"scope": "read", "tenant": "acme", "token_id": "tk_1", "reason": "lacks"},
            403,
            "refused",
        ),
    ],
)
def test_writes_admin_calls_and_refusals_make_a_line_and_reads_do_not(
    notes: dict[str, Any], status: int, event: str | None
) -> None:
    entry = audit_entry(SCOPE, notes, status, "rid")
    if event is None:
        assert entry is None
        return
    assert entry is not None
    assert entry["event"] == event and entry["status"] == status
    assert entry["remote"] == "10.0.0.7" and entry["request_id"] == "rid"
    assert ("reason" in entry) == (event == "refused")


def _written(path: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.02)
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_the_file_rotates_past_its_size(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    log = AuditLog(path, max_bytes=400, backups=2)
    log.start()
    try:
        for n in range(20):
            log.write({"n": n, "pad": "x" * 100})
    finally:
        log.stop()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    kept = [
        json.loads(line)["n"]
        for name in reversed(files)
        for line in (path.parent / name).read_text(encoding="utf-8").splitlines()
    ]
    assert kept == sorted(kept) and kept[-1] == 19  # the newest lines, in order
    assert all(p.stat().st_size <= 400 for p in path.parent.iterdir())


def test_without_rotation_a_moved_file_is_reopened_and_a_truncated_one_appended(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=0, backups=0)
    log.start()
    try:
        log.write({"n": 1})
        assert _written(path, 1) == ['{"n":1}']
        path.rename(tmp_path / "audit.jsonl.1")  # logrotate's default: move, then create
        log.write({"n": 2})
        assert _written(path, 1) == ['{"n":2}']
        path.write_bytes(b"")  # copytruncate
        log.write({"n": 3})
        assert _written(path, 1) == ['{"n":3}']
    finally:
        log.stop()
    assert (tmp_path / "audit.jsonl.1").read_text(encoding="utf-8") == '{"n":1}\n'


def test_refused_lines_are_bounded_per_second_and_the_next_says_how_many_were_left_out() -> None:
    from api.audit import RefusalBudget

    now = [100.0]
    budget = RefusalBudget(per_s=5, clock=lambda: now[0])
    entries = [{"event": "refused"} for _ in range(12)]
    admitted = [budget.admit(e) for e in entries]
    assert admitted == [True] * 5 + [False] * 7  # a flood within one second
    now[0] += 1.0  # a second later: room again, and the count of what was left out
    nxt: dict[str, object] = {"event": "refused"}
    assert budget.admit(nxt) and nxt["suppressed"] == 7
    later: dict[str, object] = {"event": "refused"}
    assert budget.admit(later) and "suppressed" not in later


@pytest.mark.parametrize(
    ("notes", "status", "event"),
    [
        ({"hook_id": "ph_1"}, 404, "refused"),  # unknown hook
        ({"hook_id": "ph_1", "tenant": "acme", "reason": "too big"}, 413, "refused"),
        ({"hook_id": "ph_1", "tenant": "acme", "reason": "not JSON"}, 400, "refused"),
        ({"hook_id": "ph_1", "tenant": "acme"}, 202, None),  # an ignored event
        ({"hook_id": "ph_1", "tenant": "acme", "scope": "write"}, 202, "write"),
        ({"hook_id": "ph_1", "tenant": "acme", "scope": "write"}, 503, "write"),  # queue full
    ],
)
def test_every_refused_push_hook_delivery_makes_a_refused_line_with_its_hook(
    notes: dict[str, Any], status: int, event: str | None
) -> None:
    entry = audit_entry(SCOPE, notes, status, "rid")
    if event is None:
        assert entry is None
        return
    assert entry is not None and entry["event"] == event and entry["hook_id"] == "ph_1"
    # A refused line, so the refusal budget bounds a flood of them (RefusalBudget).
    assert ("reason" in entry) == (event == "refused")

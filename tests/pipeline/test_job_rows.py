"""The job, snapshot and token stores' shared checks and statement texts, without a driver."""

from __future__ import annotations

import hashlib
import re
import uuid

import pytest

from pipeline.errors import InvalidInputError
from pipeline.jobs import JobRequest, JobSource, JobStatus, SourceKind
from pipeline.models import FileVersion, RepoRef
from pipeline.statements import job_rows, job_sql, snapshot_sql, token_sql
from pipeline.statements.sql import Query

REPO = RepoRef("acme", "app")
JOB_ID = "0b8f2f3e-4c55-4a43-9a0e-2b1c2c4b7f10"
REQUEST = JobRequest(REPO, JobSource(SourceKind.GIT, "https://x/app.git", "main"), None)


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        (JOB_ID, JOB_ID),
        (JOB_ID.upper(), JOB_ID),
        ("{" + JOB_ID + "}", JOB_ID),
        (JOB_ID.replace("-", ""), JOB_ID),
        ("", None),
        ("job-1", None),
        (JOB_ID + "0", None),
        (None, None),
    ],
)
def test_job_ids_parse_to_the_canonical_uuid_or_none(given: object, parsed: str | None) -> None:
    assert job_rows.parse_job_id(given) == parsed


def test_the_commit_of_a_create_is_the_given_one_else_the_requests() -> None:
    asked = JobRequest(REPO, REQUEST.source, commit="req")
    assert job_rows.check_request(asked, JOB_ID, "given") == (JOB_ID, "given")
    assert job_rows.check_request(asked, JOB_ID, None) == (JOB_ID, "req")
    assert job_rows.check_request(REQUEST, JOB_ID, "") == (JOB_ID, None)


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING, "done!", ""])
def test_only_terminal_statuses_finish_a_job(status: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(repr(status))):
        job_rows.check_terminal(status)


@pytest.mark.parametrize(
    ("counters", "named"),
    [({"a": 1.5}, "counter 'a' is 1.5"), ({"a": True}, "counter 'a' is True"), ({"": 1}, "empty")],
)
def test_counters_must_be_integers_with_names(counters: dict[str, int], named: str) -> None:
    with pytest.raises(InvalidInputError, match=named):
        job_rows.check_counters(counters)


def test_file_rows_keep_order_and_refuse_what_the_table_would() -> None:
    rows = job_rows.file_rows([FileVersion("b", "2", "go", 3), FileVersion("a", "1", "", 0)])
    assert rows == [("b", "2", "go", 3), ("a", "1", "", 0)]
    with pytest.raises(InvalidInputError, match="size of 'a' is 9223372036854775808"):
        job_rows.file_rows([FileVersion("a", "1", "go", 2**63)])


def test_symbols_round_trip_through_their_json_rows() -> None:
    found = [("f", "m.f", "function"), ("C", "m.C", "class")]
    rows = job_rows.symbol_rows({("m.py", "s1"): found})
    assert rows == [{"path": "m.py", "sha": "s1", "symbols": [list(s) for s in found]}]
    assert job_rows.symbols_from_json(rows[0]["symbols"]) == found


def test_tokens_are_random_prefixed_and_stored_as_their_sha256() -> None:
    made = {job_rows.new_token() for _ in range(100)}
    assert len(made) == 100
    assert all(re.fullmatch(r"qk_[A-Za-z0-9_-]{43}", t) for t in made)
    token = made.pop()
    assert job_rows.token_digest(token) == hashlib.sha256(token.encode()).digest()
    assert len(job_rows.token_digest("\udc80")) == 32  # any string hashes, none raises


@pytest.mark.parametrize("token", ["x" * 15, "x" * 513, "with space-xxxxxxxx", "é" * 20])
def test_a_chosen_token_must_be_plain_and_long_enough(token: str) -> None:
    with pytest.raises(InvalidInputError, match="tenant 'acme'") as refused:
        job_rows.check_token("acme", token)
    assert token not in str(refused.value)


def _queries() -> list[Query]:
    digest = b"\x00" * 32
    return [
        job_sql.ensure_tenant("acme"),
        job_sql.job_by_id(JOB_ID, None),
        job_sql.job_by_key("acme", "k"),
        job_sql.job_by_commit(1, None, "c"),
        job_sql.job_by_commit(1, "feature/x", "c"),
        job_sql.insert_job(REQUEST, JOB_ID, 1, "c"),
        job_sql.list_jobs("acme", None, 5),
        job_sql.list_jobs("acme", "app", 5, statuses=["queued"], offset=10),
        job_sql.start_job(JOB_ID, "ingest", None),
        job_sql.set_stage(JOB_ID, "chunk"),
        job_sql.save_progress(JOB_ID, "{}", "[]"),
        job_sql.finish_job(JOB_ID, "done", ""),
        job_sql.set_snapshot(JOB_ID, 3),
        job_sql.add_webhook(JOB_ID, "[]"),
        token_sql.insert_token("acme", digest, "", "tk_0123456789abcdef", ["read"]),
        token_sql.token_owner(digest),
        token_sql.identify(digest),
        token_sql.revoke_token(digest),
        token_sql.list_tokens("acme"),
        token_sql.list_tokens(None),
        token_sql.revoke_by_id("tk_0123456789abcdef", "acme"),
        token_sql.revoke_by_id("tk_0123456789abcdef", None),
        job_sql.schema_column("jobs", "webhooks"),
        snapshot_sql.lock_repository(REPO, exclusive=True),
        snapshot_sql.lock_repository(REPO, exclusive=False),
        snapshot_sql.begin_snapshot(1, "c"),
        snapshot_sql.delete_snapshot_files(2),
        snapshot_sql.searchable_files(REPO, None),
        snapshot_sql.searchable_files(REPO, "feature/x", or_default=True),
        snapshot_sql.searchable_versions(REPO, ["a"], "v1"),
        snapshot_sql.held_versions(1, ["a"]),
        snapshot_sql.snapshot_files(2),
        snapshot_sql.lock_snapshot(1, 2),
        snapshot_sql.lock_ref(1, "main"),
        *snapshot_sql.publish(1, "main", 2, 7, 1),
        *snapshot_sql.release(1, 3),
        snapshot_sql.delete_ref(1, "feature/x"),
        snapshot_sql.list_refs(REPO),
        snapshot_sql.default_ref(REPO),
        snapshot_sql.abandon(2, "failed"),
        snapshot_sql.put_symbols(1, "[]"),
        snapshot_sql.symbols(REPO, ["a"], ["s"]),
        snapshot_sql.repositories("acme"),
    ]


@pytest.mark.parametrize("query", _queries(), ids=lambda q: " ".join(q.text.split())[:40])
def test_every_placeholder_has_its_parameter(query: Query) -> None:
    placeholders = set(re.findall(r"%\((\w+)\)s", query.text))
    assert placeholders
    assert placeholders <= set(query.params)
    assert re.sub(r"%\(\w+\)s", "", query.text).count("%") == 0  # no stray % for psycopg


def test_list_limit_and_offset_are_never_negative() -> None:
    params = job_sql.list_jobs("acme", "app", -5, offset=-2).params
    assert params["limit"] == 0 and params["offset"] == 0
    assert job_sql.list_jobs("acme", None, 5, statuses=("done",)).params["statuses"] == ["done"]


def test_abandon_and_begin_leave_a_snapshot_a_ref_holds_alone() -> None:
    begin = " ".join(snapshot_sql.begin_snapshot(1, "c").text.split())
    held = "EXISTS (SELECT 1 FROM refs AS h WHERE h.snapshot_id = s.id)"
    assert f"CASE WHEN {held} THEN s.status ELSE 'indexing' END" in begin
    abandon = " ".join(snapshot_sql.abandon(2, "failed").text.split())
    assert f"NOT {held}" in abandon
    assert "s.status IN ('indexing', 'ready')" in abandon


def test_new_job_ids_stay_valid_after_a_round_trip() -> None:
    fresh = str(uuid.uuid4())
    assert job_rows.check_job_id(fresh) == fresh

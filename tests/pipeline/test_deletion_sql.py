"""The statements of repository deletion, without a database: every row stage is one
bounded batch keyed by the repository, the shared content is only what the deletion
recorded and nothing else holds, and the locks are the ones the stores rely on."""

from __future__ import annotations

import pytest

from pipeline.deletions import STAGES, counter_of, parse_deletion_id
from pipeline.models import RepoRef
from pipeline.statements import deletion_sql

DELETION = "00000000-0000-4000-8000-000000000001"


def test_every_stage_but_the_graph_has_a_statement() -> None:
    assert set(deletion_sql.ERASE) == set(STAGES) - {"graph"}


@pytest.mark.parametrize("stage", sorted(set(STAGES) - {"graph", "repository"}))
def test_each_batch_is_bounded_by_its_limit(stage: str) -> None:
    query = deletion_sql.erase(stage, DELETION, 42, 5000)
    assert "LIMIT %(limit)s" in query.text
    assert query.params["limit"] == 5000
    assert query.params["repository_id"] == 42 and query.params["deletion_id"] == DELETION


@pytest.mark.parametrize(
    ("stage", "kind"), [("chunks", "cache"), ("files", "blob"), ("jobs", ""), ("symbols", "")]
)
def test_deleted_content_hashes_are_recorded_in_the_same_statement(stage: str, kind: str) -> None:
    query = deletion_sql.erase(stage, DELETION, 1, 10)
    assert query.params["kind"] == kind
    assert ("INSERT INTO repo_deletion_hashes" in query.text) == bool(kind)


@pytest.mark.parametrize(("stage", "held_by"), [("blobs", "files"), ("cache", "chunks")])
def test_shared_content_goes_only_when_no_row_of_any_repository_holds_it(
    stage: str, held_by: str
) -> None:
    text = deletion_sql.erase(stage, DELETION, 1, 10).text
    assert f"NOT EXISTS (SELECT 1 FROM {held_by}" in text
    assert "repository_id" not in text  # every tenant's rows count, not only this one's


def test_the_repository_row_goes_only_with_this_deletions_mark() -> None:
    assert (
        "deletion_id = %(deletion_id)s::uuid"
        in deletion_sql.erase("repository", DELETION, 1, 1).text
    )


def test_a_bad_stage_or_limit_is_refused() -> None:
    with pytest.raises(KeyError):
        deletion_sql.erase("graph", DELETION, 1, 10)
    with pytest.raises(ValueError, match="limit 0"):
        deletion_sql.erase("chunks", DELETION, 1, 0)


def test_a_deletion_locks_the_row_for_update_and_a_job_for_key_share() -> None:
    repo = RepoRef("acme", "team/app")
    assert deletion_sql.lock_repository(repo, for_job=False).text.endswith("FOR UPDATE")
    assert deletion_sql.lock_repository(repo, for_job=True).text.endswith("FOR KEY SHARE")
    shared = deletion_sql.blob_lock(shared=True)
    assert "pg_advisory_xact_lock_shared" in shared.text
    assert deletion_sql.blob_lock(shared=False).params == shared.params


def test_counters_and_ids() -> None:
    assert [counter_of(s) for s in ("graph", "cache", "chunks")] == [
        "graph_nodes",
        "cache_rows",
        "chunks",
    ]
    assert parse_deletion_id(DELETION.upper()) == DELETION
    assert parse_deletion_id("../etc") is None

"""Refs end to end on the session stack (pipeline/refs.py): a branch of a real package
costs only the files it changed, is searched on its own, shares every unchanged row with
the default ref, and is deleted without touching what the default ref holds.

The corpus is ``pathspec`` (a dependency nobody here wrote), committed to a bare git
repository with a branch that changes three of its files.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import httpx
import pytest

from config.endpoints import Endpoints
from pipeline.adapters.neo4j.graph_store import Neo4jGraphStore
from pipeline.adapters.postgres.vector_store import PgVectorStore
from pipeline.models import RepoRef
from tests.security.git_servers import git
from tests.workers.jobs_api import corpus, enqueue, searchable_chunks, wait

pytestmark = pytest.mark.timeout(600)

MARKER = "zanzibar_quokka_refs_marker"


def _repository(tmp_path: Path) -> tuple[Path, list[str]]:
    """A bare repository of pathspec: main, and feature/x changing three files."""
    work = tmp_path / "work"
    shutil.copytree(corpus(), work, ignore=shutil.ignore_patterns("__pycache__"))
    git("init", "-q", "-b", "main", str(work))
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "pathspec", cwd=work)
    git("checkout", "-q", "-b", "feature/x", cwd=work)
    changed = sorted(p.relative_to(work).as_posix() for p in work.rglob("*.py"))[:3]
    for n, rel in enumerate(changed):
        path = work / rel
        path.write_text(
            path.read_text() + f"\n\ndef {MARKER}_{n}():\n    return {n}\n", encoding="utf-8"
        )
    git("commit", "-q", "-am", "feature", cwd=work)
    bare = tmp_path / "pathspec.git"
    git("clone", "-q", "--bare", str(work), str(bare))
    return bare, changed


def test_a_branch_costs_its_changed_files_and_is_searched_and_deleted_on_its_own(
    api: httpx.Client,
    tmp_path: Path,
    vectors: PgVectorStore,
    graph: Neo4jGraphStore,
    endpoints: Endpoints,
) -> None:
    bare, changed = _repository(tmp_path)
    repo = f"refs-{uuid.uuid4().hex[:8]}"
    main = wait(api, enqueue(api, source=str(bare), repo=repo, ref="main"))
    assert main["status"] == "done" and main["published"], main
    assert main["ref"] == "main"
    ref = RepoRef("default", repo)
    main_rows = vectors.chunk_keys(ref)
    graph_files = graph.file_versions(ref)

    branch = wait(api, enqueue(api, source=str(bare), repo=repo, ref="refs/heads/feature/x"))
    assert branch["status"] == "done" and branch["published"], branch
    assert branch["ref"] == "feature/x"
    # Only the changed files were chunked and embedded; the rest was the default ref's.
    assert branch["files"]["todo"] == len(changed) == 3
    assert branch["files"]["written"] == 3
    assert branch["files"]["total"] == main["files"]["total"]
    rows = vectors.chunk_keys(ref)
    added = rows - main_rows
    assert main_rows <= rows  # nothing of the default ref was copied or replaced
    assert {p for p, _, _ in added} == set(changed)
    # The graph follows the default ref: the branch job wrote none of it.
    assert graph.file_versions(ref) == graph_files
    assert len(searchable_chunks(endpoints, repo)) == len(main_rows)

    listed = api.get("/v1/refs", params={"repo": repo}).json()["refs"]
    assert [(r["name"], r["default"]) for r in listed] == [("main", True), ("feature/x", False)]
    assert listed[1]["commit"] == branch["commit"] != main["commit"]

    on_branch = api.get("/v1/search", params={"q": MARKER, "repo": repo, "ref": "feature/x"})
    assert on_branch.status_code == 200, on_branch.text
    paths = {r["path"] for r in on_branch.json()["results"] if MARKER in r["snippet"]}
    assert paths == set(changed)
    on_main = api.get("/v1/search", params={"q": MARKER, "repo": repo, "mode": "lexical"})
    assert [r for r in on_main.json()["results"] if MARKER in r["snippet"]] == []
    # As of a commit a ref holds, by its prefix.
    as_of = api.get(
        "/v1/search", params={"q": MARKER, "repo": repo, "commit": branch["commit"][:10]}
    )
    assert {r["path"] for r in as_of.json()["results"] if MARKER in r["snippet"]} == set(changed)
    unknown = api.get("/v1/search", params={"q": "x", "repo": repo, "ref": "nope"})
    assert unknown.status_code == 404 and "no ref 'nope'" in unknown.json()["detail"]

    symbol = api.get(
        "/v1/graph/symbol", params={"repo": repo, "name": "PathSpec", "ref": "feature/x"}
    )
    assert symbol.status_code == 200, symbol.text
    assert symbol.json()["graph_ref"] == "main"
    assert symbol.json()["differs"] == changed and symbol.json()["differs_total"] == 3

    refused = api.delete("/v1/refs", params={"repo": repo, "ref": "main"})
    assert refused.status_code == 409 and "default ref" in refused.json()["detail"]
    gone = api.delete("/v1/refs", params={"repo": repo, "ref": "feature/x"})
    assert gone.status_code == 200, gone.text
    assert gone.json()["chunks_deleted"] == len(added)
    assert vectors.chunk_keys(ref) == main_rows
    again = api.get("/v1/search", params={"q": MARKER, "repo": repo, "ref": "feature/x"})
    assert again.status_code == 404
    assert api.delete("/v1/refs", params={"repo": repo, "ref": "feature/x"}).status_code == 404

"""``/v1/refs``: a repository's refs (branches, tags, pull requests), listed and deleted.

Query parameters, not path segments: both a repository name and a ref name may hold
``/``. Deleting a ref frees what no other ref holds (its snapshot's file list, and the
chunk rows and symbols of file versions no other ref or running job lists); the default
ref cannot be deleted (409: delete the repository). See pipeline/refs.py.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.auth import ReadTenant, State, WriteTenant
from pipeline.errors import NotFoundError
from pipeline.models import RepoRef
from pipeline.refs import RefState, index_ref_name
from pipeline.stages.ref_deletion import delete_ref

router = APIRouter(prefix="/v1/refs", tags=["repositories"])

RepoName = Annotated[str, Query(min_length=1, max_length=200, description="The repository.")]
RefName = Annotated[
    str,
    Query(min_length=1, max_length=256, description="The ref: feature/x or refs/heads/feature/x"),
]


def ref_json(state: RefState) -> dict[str, Any]:
    return {
        "name": state.name,
        "commit": state.commit,
        "default": state.default,
        "files": state.files,
        "published_at": datetime.fromtimestamp(state.published_at, UTC).isoformat(),
    }


def _known(state: State, tenant: str, repo: str) -> RepoRef:
    # The scope lookup search and the graph route use: no file or chunk counts read.
    if state.searcher_index.missing_repositories(tenant, [repo]):
        raise NotFoundError(f"repo: no repository named {repo!r}")
    return RepoRef(tenant, repo)


@router.get("")
def list_refs(tenant: ReadTenant, state: State, repo: RepoName) -> dict[str, Any]:
    """The repository's refs, the default ref first: name, commit, files, when published."""
    repository = _known(state, tenant, repo)
    return {"repo": repo, "refs": [ref_json(r) for r in state.jobs.snapshots.refs(repository)]}


@router.delete("")
def delete(tenant: WriteTenant, state: State, repo: RepoName, ref: RefName) -> dict[str, Any]:
    """Delete a ref (not the default ref: 409). Its snapshot stays while another ref holds
    the same commit; the chunk rows of file versions no other ref or running job lists
    are deleted. 404 for an unknown repository or ref."""
    repository = _known(state, tenant, repo)
    name = index_ref_name(ref)
    if name is None:
        raise NotFoundError(f"ref: {ref!r} is a commit id, not a ref")
    return delete_ref(state.jobs.snapshots, state.vectors, repository, name)

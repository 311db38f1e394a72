"""``/v1/repos``: the tenant's repositories and what is searchable of each.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from api.auth import State, Tenant

router = APIRouter(prefix="/v1/repos", tags=["repositories"])


@router.get("")
def list_repos(tenant: Tenant, state: State) -> dict[str, Any]:
    """Each repository with its searchable commit, files and chunks."""
    return {"repos": state.jobs.snapshots.repositories(tenant)}


@router.get("/{name:path}")
def get_repo(name: str, tenant: Tenant, state: State) -> dict[str, Any]:
    """One repository (names may contain `/`)."""
    found = state.jobs.snapshots.repository(tenant, name)
    if found is None:
        raise HTTPException(404, f"repository {name!r} not found")
    return found

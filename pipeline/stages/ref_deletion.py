"""Deleting one ref of a repository (``DELETE /v1/refs``, a push webhook's branch delete).

The ref goes and its snapshot is released in one transaction (superseded with its file
list, unless another ref holds the same commit); then the chunk rows of the versions of
that snapshot's paths that no held or indexing snapshot lists any more are deleted. The
graph is untouched: it follows the default ref, which cannot be deleted this way.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline.errors import NotFoundError
from pipeline.models import RepoRef
from pipeline.ports import SnapshotStore, VectorStore

log = logging.getLogger("quarry.jobs")


def delete_ref(
    snapshots: SnapshotStore, vectors: VectorStore, repo: RepoRef, ref: str
) -> dict[str, Any]:
    """Delete the ref and the chunk rows of the versions it alone held; what was freed.
    NotFoundError for no such ref, ConflictError for the default ref."""
    held = {r.name: r for r in snapshots.refs(repo)}
    gone = held.get(ref)
    if gone is None:
        raise NotFoundError(f"ref: repository {repo.name!r} has no ref {ref!r}")
    paths = list(snapshots.snapshot_files(gone.snapshot_id))
    if not snapshots.delete_ref(repo, ref):
        raise NotFoundError(f"ref: repository {repo.name!r} has no ref {ref!r}")
    rows = vectors.retain_versions(repo, snapshots.held_versions(repo, paths)) if paths else 0
    log.info(
        "ref %s of %s deleted (commit %s): %d chunk rows freed", ref, repo.key, gone.commit, rows
    )
    return {"repo": repo.name, "ref": ref, "commit": gone.commit, "chunks_deleted": rows}

"""Repository deletion, the work: begin (mark and record, from the API) and run (the
write-queue task, pipeline.flow.DELETE_REPO), and the sweep that resumes a deletion whose
worker died.

``run`` goes through pipeline.deletions.STAGES from the stage the record names: the
graph's nodes first (while the repository row still says what is being deleted), then
the rows, each stage in batches of ``batch_rows`` until a batch finds none, then the
shared content only this repository held. Every step is idempotent, so a message
delivered twice, a retry after a transient error and a resumption by the sweep all end
in the same state. A transient error propagates (the task retries it); a permanent one
fails the deletion with its reason.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pipeline.deletions import STAGES, RepoDeletion
from pipeline.errors import PermanentError
from pipeline.models import RepoRef
from pipeline.ports import GraphStore, RepoDeletionStore

log = logging.getLogger("quarry.deletions")


def begin_deletion(
    store: RepoDeletionStore, repo: RepoRef, send: Callable[[str], None]
) -> tuple[RepoDeletion, bool]:
    """Mark the repository and record its deletion, then send the task; a deletion in
    progress is returned as it is and not sent again (a request repeated many times
    must not start as many runs: the sweep sends one that stalled)."""
    deletion, created = store.begin(repo)
    if created:
        send(deletion.deletion_id)
    return deletion, created


def run_deletion(
    store: RepoDeletionStore, graph: GraphStore, deletion_id: str, *, batch_rows: int
) -> RepoDeletion | None:
    """Run the deletion to its end from where it stopped; its record, None if it had
    already ended or is unknown."""
    deletion = store.start(deletion_id)
    if deletion is None:
        return None
    start = STAGES.index(deletion.stage) if deletion.stage in STAGES else 0
    try:
        for stage in STAGES[start:]:
            store.set_stage(deletion_id, stage)
            if stage == "graph":
                # Counted per batch: the count is progress, which keeps the sweep away
                # from a deletion that works through a large graph.
                graph.delete_repository(
                    deletion.repo,
                    on_batch=lambda n: store.count(deletion_id, "graph_nodes", n),
                )
                continue
            while store.erase(deletion_id, stage, batch_rows):
                pass
    except PermanentError as exc:
        log.error("deletion %s of %s failed: %s", deletion_id, deletion.repo.key, exc)
        store.finish(deletion_id, error=str(exc))
        return store.get(deletion_id)
    store.finish(deletion_id)
    log.info("deletion %s of %s done", deletion_id, deletion.repo.key)
    return store.get(deletion_id)


def resume_deletions(
    store: RepoDeletionStore, send: Callable[[str], None], *, idle_s: float, limit: int = 20
) -> list[str]:
    """Send again each deletion that made no progress for ``idle_s`` (its worker died or
    its message was lost); the ids sent."""
    ids = store.unfinished(idle_s, limit)
    for deletion_id in ids:
        log.warning("deletion %s stalled for %g s: sent again", deletion_id, idle_s)
        send(deletion_id)
    return ids

"""The repository deletion's Celery shim (pipeline.flow.DELETE_REPO_TASK; the work:
pipeline.stages.deletion.run_deletion), on the write queue.

Transient errors are retried by StageTask's policy (a breaker open waits, never
dropped); a deletion whose retries ran out stays running and the sweep sends it again.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

from celery import shared_task

from pipeline import flow
from pipeline.stages.deletion import run_deletion
from tasks.base import StageTask
from tasks.context import cpu_profile


@shared_task(bind=True, base=StageTask, name=flow.DELETE_REPO_TASK)  # type: ignore[untyped-decorator]
def delete_repository(self: StageTask, deletion_id: str, attempt: int = 0) -> str | None:
    """Remove one repository's graph, rows and unshared content; returns its status."""

    def run() -> str:
        resources, cpu = cpu_profile()
        batch = resources.settings.delete_batch_rows
        done = run_deletion(cpu.deletions, cpu.graph, deletion_id, batch_rows=batch)
        return "ended before" if done is None else str(done.status)

    return self.guarded({"deletion_id": deletion_id}, attempt, run)

"""The COMMIT stage's Celery shim (pipeline.flow.COMMIT; the work: pipeline.stages.commit).

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import shutil

from celery import shared_task

from pipeline import flow
from pipeline.stages.commit import commit_job
from pipeline.stages.ingest import job_workdir
from tasks.base import JobTask, StageTask
from tasks.context import cpu_profile, job_resources


@shared_task(bind=True, base=JobTask, name=flow.COMMIT.task)  # type: ignore[untyped-decorator]
def commit_job_task(self: StageTask, job_id: str, attempt: int = 0) -> str | None:
    """Make the job's snapshot searchable (its graph is written)."""

    return self.guarded({"job_id": job_id}, attempt, lambda: commit_here(job_id))


def commit_here(job_id: str) -> str:
    """Commit the job in this task (the COMMIT task's work; the graph-files task that
    wrote the job's last batch runs it too), then drop its scratch folder."""
    resources, ctx = job_resources()
    cpu = cpu_profile()[1]
    status = commit_job(ctx, job_id, vectors=cpu.vectors, graph=cpu.graph)
    shutil.rmtree(job_workdir(resources.settings.data_dir, job_id), ignore_errors=True)
    return status.value if status else "skipped"

"""The GRAPH and GRAPH_FILES stages' Celery shims (pipeline.flow; the work:
pipeline.stages.graph).

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

from celery import shared_task

from pipeline import flow
from pipeline.stages.graph import write_graph_files
from pipeline.stages.indexing import plan_graph
from tasks.base import JobTask, StageTask
from tasks.commit import commit_here
from tasks.context import cpu_profile, job_resources


@shared_task(bind=True, base=JobTask, name=flow.GRAPH.task)  # type: ignore[untyped-decorator]
def plan_graph_task(self: StageTask, job_id: str, attempt: int = 0) -> int | None:
    """Send the job's waiting file graphs to be written, a bounded batch per message."""

    def run() -> int:
        return plan_graph(job_resources()[1], job_id)

    return self.guarded({"job_id": job_id}, attempt, run)


@shared_task(bind=True, base=JobTask, name=flow.GRAPH_FILES.task)  # type: ignore[untyped-decorator]
def write_graph_files_task(self: StageTask, job_id: str, attempt: int = 0) -> int | None:
    """Resolve and write the job's next batch of file graphs, then send the next."""

    def run() -> int:
        resources, ctx = job_resources()
        batch = resources.settings.graph_task_files
        return write_graph_files(
            ctx,
            job_id,
            graph=cpu_profile()[1].graph,
            batch_files=batch,
            commit=lambda: commit_here(job_id),
        )

    return self.guarded({"job_id": job_id}, attempt, run)

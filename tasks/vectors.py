"""The vector index task's Celery shim (pipeline.flow.INDEX_VECTORS_TASK; the work:
pipeline.stages.vector_index): rows the write stage wrote go into the HNSW index after
their job, a bounded step at a time, one chain of steps at a time.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging

from celery import shared_task

from pipeline import flow
from pipeline.errors import TransientError
from pipeline.stages.vector_index import index_step
from tasks import metrics
from tasks.context import cpu_profile, job_resources, send_tasks

log = logging.getLogger("quarry.vectors")
RETRY_S = 5.0


@shared_task(name=flow.INDEX_VECTORS_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
def index_vectors(holder: str | None = None) -> int:
    """One step of the vector index; the rows it added. ``holder``: the chain's id, sent
    by the step before (which holds the chain's lease); None starts a chain."""
    resources, ctx = job_resources()
    settings = resources.settings

    def send_next(chain: str) -> None:
        send_tasks(index_vectors.app, flow.INDEX_VECTORS_TASK, [{"holder": chain}])

    try:
        step = index_step(
            cpu_profile()[1].vectors,
            ctx.board,
            send_next,
            holder=holder,
            batch_rows=settings.vector_index_batch_rows,
            budget_s=settings.vector_index_step_s,
        )
    except TransientError as exc:
        log.warning("vector index step failed, a new start in %.0f s: %s", RETRY_S, exc)
        index_vectors.apply_async(countdown=RETRY_S)
        return 0
    metrics.VECTORS_INDEXED.inc(step.added)
    return step.added

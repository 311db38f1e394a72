"""The WRITE stage's Celery shim (pipeline.flow.WRITE; the work: pipeline.stages.write).

The store sits behind its circuit breaker; the retry policy is StageTask's
(``Retry.STAGE``, tasks/base.py); a message that fails for good fails its file.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import shared_task

from pipeline import flow
from pipeline.stages.write import fail_file, write_file
from tasks import metrics
from tasks.base import StageTask
from tasks.context import cpu_profile, current


class WriteTask(StageTask):
    abstract = True

    def on_dead_letter(self, payload: Mapping[str, Any], exc: Exception) -> None:
        fail_file(current().jobs, payload.get("message"), exc)


@shared_task(bind=True, base=WriteTask, name=flow.WRITE.task)  # type: ignore[untyped-decorator]
def write_chunks(self: StageTask, message: dict[str, Any], attempt: int = 0) -> int | None:
    """Upsert one file version's chunks with their vectors; returns the rows written."""

    def run() -> int:
        resources, cpu = cpu_profile()
        written = write_file(resources.jobs, cpu.vectors, message)
        metrics.WRITTEN.labels("postgres", "chunks").inc(written)
        return written

    return self.guarded({"message": message}, attempt, run)

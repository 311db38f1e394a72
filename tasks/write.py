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
from pipeline.errors import InvalidInputError
from pipeline.stages.write import fail_file, fail_files, write_files
from tasks import metrics
from tasks.base import StageTask
from tasks.context import cpu_profile, current


class WriteTask(StageTask):
    abstract = True

    def on_dead_letter(self, payload: Mapping[str, Any], exc: Exception) -> None:
        if "messages" in payload:
            fail_files(current().jobs, payload.get("messages"), exc)
        else:
            fail_file(current().jobs, payload.get("message"), exc)


@shared_task(bind=True, base=WriteTask, name=flow.WRITE.task)  # type: ignore[untyped-decorator]
def write_chunks(
    self: StageTask,
    message: dict[str, Any] | None = None,
    attempt: int = 0,
    messages: list[dict[str, Any]] | None = None,
) -> int | None:
    """Upsert the chunks with their vectors of one file version (``message``) or of
    several of one job (``messages``); returns the rows written."""
    payload: dict[str, Any] = {"message": message} if messages is None else {"messages": messages}

    def run() -> int:
        resources, cpu = cpu_profile()
        if messages is not None and not isinstance(messages, list):
            raise InvalidInputError("messages: expected a list")
        batch = [message] if messages is None else messages
        written = write_files(
            resources.jobs,
            cpu.vectors,
            batch,
            defer_index_max_files=resources.settings.vector_index_defer_max_files,
        )
        metrics.WRITTEN.labels("postgres", "chunks").inc(written)
        return written

    return self.guarded(payload, attempt, run)

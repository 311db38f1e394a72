"""The retry policy of every stage task, in one base class.

* :class:`BreakerOpenError`: the store is known to be down. The task is retried after
  the breaker's remaining timeout plus jitter, for as long as it takes: never dropped,
  never counted against the task's attempts.
* Any other :class:`TransientError`: retried with exponential backoff and jitter, up to
  ``write_max_retries`` attempts, then kept as a dead letter.
* :class:`PermanentError` (bad input, a constraint the data breaks): never retried,
  kept as a dead letter at once.

Attempts travel in the task's ``attempt`` keyword, so that breaker waits do not use
them up. Anything else is a bug: it propagates (and Celery records the failure).

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from celery import Task

from pipeline.errors import BreakerOpenError, PermanentError, TransientError
from pipeline.models import DeadLetter
from pipeline.stages.indexing import fail_job, note_wait
from tasks import metrics
from tasks.context import current, job_resources

log = logging.getLogger("quarry.tasks")
T = TypeVar("T")

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0


def backoff_s(attempt: int, *, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter: 1, 2, 4 ... s (capped), each scaled by 0.5-1.0."""
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0**attempt) * (0.5 + rng() / 2)


def breaker_wait_s(retry_after_s: float, *, rng: Callable[[], float] = random.random) -> float:
    """The breaker's remaining timeout plus up to 20 % (at least 0.5 s) of jitter."""
    return retry_after_s + max(0.5, 0.2 * retry_after_s) * rng()


def dead_letter(
    task: str,
    letter_id: str,
    payload: Mapping[str, Any],
    exc: Exception,
    *,
    attempts: int,
    context: str = "",
) -> None:
    """Keep a task that failed for good, with its arguments, and count it. ``context``
    leads the letter's error (what failed, where the exception alone does not say)."""
    error = f"{type(exc).__name__}: {exc}"
    letter = DeadLetter(
        # A task called directly (not from a queue) has no id; it still gets a letter.
        letter_id=letter_id or f"direct-{uuid.uuid4()}",
        task=task,
        payload=dict(payload),
        error=f"{context}: {error}" if context else error,
        attempts=attempts,
        failed_at=time.time(),
    )
    dead_letters = current().dead_letters
    if dead_letters is None:
        raise RuntimeError(f"no dead-letter store in this worker; {task} {letter_id} failed: {exc}")
    dead_letters.add(letter)
    metrics.DEAD_LETTERS.labels(task).inc()
    log.error("task %s %s dead-lettered after %d attempts: %s", task, letter_id, attempts, exc)


def job_id_of(payload: Mapping[str, Any]) -> str:
    """The job a task's payload belongs to: ``job_id``, or its message's (a multi-file
    write's: its first message's, all of one job); "" if none."""
    job_id = payload.get("job_id")
    message = payload.get("message")
    several = payload.get("messages")
    if message is None and isinstance(several, list) and several:
        message = several[0]
    if not job_id and isinstance(message, Mapping):
        job_id = message.get("job_id")
    return job_id if isinstance(job_id, str) else ""


class StageTask(Task):  # type: ignore[misc]
    """Base of the stage tasks: late acknowledgement and the retry policy above."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    max_retries = None  # attempts are counted in the `attempt` keyword, see the module doc

    def guarded(self, payload: Mapping[str, Any], attempt: int, fn: Callable[[], T]) -> T | None:
        """Run ``fn`` under the policy; None when the task was dead-lettered."""
        try:
            return fn()
        except BreakerOpenError as exc:
            wait_s = breaker_wait_s(exc.retry_after_s)
            log.warning("%s waits %.1f s for %s: %s", self.name, wait_s, exc.store, exc)
            self._note_wait(payload, exc, wait_s)
            raise self.retry(kwargs={**payload, "attempt": attempt}, countdown=wait_s) from exc
        except TransientError as exc:
            limit = current().settings.write_max_retries
            if attempt >= limit:
                dead_letter(self.name, self.request.id, payload, exc, attempts=attempt + 1)
                self._after_dead_letter(payload, exc)
                return None
            wait_s = backoff_s(attempt)
            log.warning(
                "%s attempt %d failed, retry in %.1f s: %s", self.name, attempt + 1, wait_s, exc
            )
            raise self.retry(kwargs={**payload, "attempt": attempt + 1}, countdown=wait_s) from exc
        except PermanentError as exc:
            dead_letter(self.name, self.request.id, payload, exc, attempts=attempt + 1)
            self._after_dead_letter(payload, exc)
            return None

    def _note_wait(self, payload: Mapping[str, Any], exc: BreakerOpenError, wait_s: float) -> None:
        # The job's status says which store it waits on. Bookkeeping only: a failure
        # here (Redis down too) must not stop the retry.
        jobs = current().jobs
        job_id = job_id_of(payload)
        if jobs is None or not job_id:
            return
        try:
            note_wait(jobs, job_id, exc.store, wait_s, f"{self.name}: {exc}")
        except Exception:
            log.exception(
                "%s: could not record the wait on %s in job %s", self.name, exc.store, job_id
            )

    def on_dead_letter(self, payload: Mapping[str, Any], exc: Exception) -> None:
        """What else fails with this task: its job or its files (subclasses say)."""

    def _after_dead_letter(self, payload: Mapping[str, Any], exc: Exception) -> None:
        # The letter is kept; failing the job or its files is bookkeeping that must not
        # turn a dead letter into a crash loop.
        try:
            self.on_dead_letter(payload, exc)
        except Exception:
            log.exception("%s: could not record the failure in its job", self.name)


class JobTask(StageTask):
    """A stage whose failure for good fails the job (INGEST, COMMIT)."""

    abstract = True

    def on_dead_letter(self, payload: Mapping[str, Any], exc: Exception) -> None:
        fail_job(job_resources()[1], str(payload.get("job_id", "")), self.name, exc)

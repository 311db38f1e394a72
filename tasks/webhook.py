"""``quarry.webhook.deliver``: one job event to the job's callback URL, signed.

The body is the job's status at delivery time. A timeout, a connection error, 408, 429
or 5xx is retried on the schedule of :mod:`pipeline.webhooks.retries` (by default 10
attempts over 30 to 60 minutes), up to ``webhook_max_attempts``; a 3xx/4xx or a refused
address is not. Every attempt is appended to the job's delivery log (``webhooks`` in its
status) and counted in ``quarry_webhook_deliveries_total``. A delivery that ends
undelivered (``failed``: the retries ran out; ``refused``) is kept as a dead letter of
this task with the job id, event and delivery id, so that ``quarry dlq replay`` sends
the same event again with a fresh attempt count; the URL is never in the letter's
payload: every attempt, a replayed one too, reads it from the job.

A retry waits as a Celery countdown, unacknowledged in the worker that took it; the
settings keep the longest wait (plus the task time limit) below the broker's visibility
timeout, past which Redis would deliver the waiting message a second time.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from celery import Task, shared_task

from config.settings import QuarrySettings
from pipeline import flow
from pipeline.errors import PipelineError, TransientError, WebhookDeliveryError
from pipeline.jobs import WebhookDelivery, job_status
from pipeline.stages.indexing import live_job
from pipeline.webhooks.events import build_event, redact_url, signed_headers
from pipeline.webhooks.retries import RetrySchedule
from pipeline.webhooks.tenant_keys import signing_secrets
from tasks import recording
from tasks.base import dead_letter
from tasks.context import cpu_profile, job_resources

log = logging.getLogger("quarry.webhooks")


def retry_schedule(settings: QuarrySettings) -> RetrySchedule:
    """The retry schedule the settings choose."""
    return RetrySchedule(
        base_s=settings.webhook_retry_base_s,
        cap_s=settings.webhook_retry_cap_s,
        max_attempts=settings.webhook_max_attempts,
    )


@shared_task(  # type: ignore[untyped-decorator]
    bind=True,
    name=flow.WEBHOOK.task,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
)
def deliver_webhook(self: Task, job_id: str, event: str, delivery_id: str, attempt: int = 1) -> str:
    """Deliver ``event`` of job ``job_id``; returns the outcome."""
    payload = {"job_id": job_id, "event": event, "delivery_id": delivery_id}
    resources, ctx = job_resources()
    cpu = cpu_profile()[1]
    sender = cpu.webhooks
    job = ctx.jobs.get(job_id)
    if job is None or not job.callback_url:
        return "no-callback"
    url = job.callback_url
    now = time.time()
    started = time.perf_counter()
    schedule = retry_schedule(resources.settings)
    outcome, status_code, error = "delivered", None, ""
    failure: PipelineError | None = None
    try:
        body = build_event(
            event, job_status(live_job(ctx, job), now), delivery_id=delivery_id, now=now
        )
        # The job's tenant's secret (two during a rotation's overlap), never the master:
        # a tenant can verify its own events and forge nobody else's.
        keys = cpu.webhook_keys.state(job.repo.tenant)
        headers = signed_headers(
            signing_secrets(resources.webhook_secret.encode(), job.repo.tenant, keys, now),
            body,
            event=event,
            delivery_id=delivery_id,
            timestamp=int(now),
        )
        status_code = sender.send(url, body, headers)
    except (WebhookDeliveryError, TransientError) as exc:  # the receiver, or our store, down
        error, failure = str(exc), exc
        outcome = "failed" if schedule.gives_up(attempt) else "retrying"
    except PipelineError as exc:  # 4xx, a refused address, a bad URL or secret: final
        error, failure, outcome = str(exc), exc, "refused"
    delivery = WebhookDelivery(
        event=event,
        url=redact_url(url),
        attempt=attempt,
        outcome=outcome,
        status_code=status_code,
        error=error[:300],
        at=now,
        duration_s=time.perf_counter() - started,
    )
    ctx.jobs.add_webhook(job_id, delivery)
    recording.record_webhook(event, outcome)
    if outcome == "retrying":
        wait_s = schedule.delay_s(attempt)
        log.warning("webhook %s of job %s: %s; retry in %.1f s", event, job_id, error, wait_s)
        raise self.retry(kwargs={**payload, "attempt": attempt + 1}, countdown=wait_s)
    if failure is not None:
        log.error("webhook %s of job %s %s: %s", event, job_id, outcome, error)
        _keep_letter(self, payload, url=url, attempts=attempt, exc=failure)
    return outcome


def _keep_letter(
    task: Task, event: Mapping[str, str], *, url: str, attempts: int, exc: PipelineError
) -> None:
    # The letter's payload is the task's arguments less ``attempt`` (``event``: job_id,
    # event, delivery_id), so a replay starts again at 1. An event ends undelivered once,
    # so a job has at most one letter per event however its receiver fails. The delivery
    # log already holds the failure, so a letter that cannot be kept (Redis down) is
    # logged, not retried: retrying would deliver the event again.
    try:
        dead_letter(
            task.name,
            task.request.id,
            event,
            exc,
            attempts=attempts,
            context=f"webhook {event['event']} of job {event['job_id']} to {redact_url(url)}",
        )
    except Exception:
        log.exception("webhook %s: could not keep the dead letter", event)

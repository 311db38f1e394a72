"""``quarry.webhook.deliver``: one job event to the job's callback URL, signed.

The body is the job's status at delivery time. A timeout, a connection error, 429 or
5xx is retried with exponential backoff and jitter, up to ``webhook_max_attempts``; a
4xx or a refused address is not. Every attempt is appended to the job's delivery log
(``webhooks`` in its status) and counted in ``quarry_webhook_deliveries_total``.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
import time

from celery import Task, shared_task

from pipeline import flow
from pipeline.errors import PipelineError, WebhookDeliveryError
from pipeline.jobs import WebhookDelivery, job_status
from pipeline.stages.indexing import live_job
from pipeline.webhooks.events import build_event, redact_url, retry_delay_s, signed_headers
from tasks import recording
from tasks.context import cpu_profile, job_resources

log = logging.getLogger("quarry.webhooks")


@shared_task(  # type: ignore[untyped-decorator]
    bind=True,
    name=flow.WEBHOOK.task,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
)
def deliver_webhook(self: Task, job_id: str, event: str, delivery_id: str, attempt: int = 1) -> str:
    """Deliver ``event`` of job ``job_id``; returns the outcome."""
    resources, ctx = job_resources()
    sender = cpu_profile()[1].webhooks
    job = ctx.jobs.get(job_id)
    if job is None or not job.callback_url:
        return "no-callback"
    url = job.callback_url
    now = time.time()
    started = time.perf_counter()
    outcome, status_code, error = "delivered", None, ""
    try:
        body = build_event(
            event, job_status(live_job(ctx, job), now), delivery_id=delivery_id, now=now
        )
        headers = signed_headers(
            resources.webhook_secret.encode(),
            body,
            event=event,
            delivery_id=delivery_id,
            timestamp=int(now),
        )
        status_code = sender.send(url, body, headers)
    except WebhookDeliveryError as exc:
        error = str(exc)
        last = attempt >= resources.settings.webhook_max_attempts
        outcome = "failed" if last else "retrying"
    except PipelineError as exc:  # 4xx, a refused address, a bad URL or secret: final
        error, outcome = str(exc), "refused"
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
        wait_s = retry_delay_s(attempt)
        log.warning("webhook %s of job %s: %s; retry in %.1f s", event, job_id, error, wait_s)
        raise self.retry(
            kwargs={
                "job_id": job_id,
                "event": event,
                "delivery_id": delivery_id,
                "attempt": attempt + 1,
            },
            countdown=wait_s,
        )
    if outcome != "delivered":
        log.error("webhook %s of job %s %s: %s", event, job_id, outcome, error)
    return outcome
